"""How the experiments fine-tune: the recipe of the config they train, over their own run.

`continual` and `active-learning` fine-tune for a few hundred steps, not for the config's
`total_steps`. They take the optimizer and dropout of the config of the pipeline they train
(`active-learning`: the config file it is given; `continual`: the base pipeline's own, as
`spacy train` saved it) and fit its learning-rate schedule to their run: the same peak rate and
warm-up share, over their steps. The config is thereby the one home of the recipe, and no rate
is written here; a peak rate given on the command line replaces the config's.

The batches are cut as `spacy train`'s `batch_by_words` cuts them, in a new seeded order each
epoch, so that every variant or chain of an experiment sees the same ones.
"""

import copy
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from spacy.training import Example
from spacy.training.batchers import minibatch_by_words
from spacy.util import registry
from thinc.api import Config, Optimizer

from ..errors import BertNERError

#: Schedule arguments that give its length in steps (thinc's `warmup_linear.v1`,
#: `slanted_triangular.v1`); `warmup_steps` is scaled with them.
_LENGTH_KEYS = ("total_steps", "num_steps")
#: Schedule arguments that hold the peak rate, in the order they are looked for.
_PEAK_KEYS = ("initial_rate", "max_rate", "rate", "base_rate")


@dataclass(frozen=True)
class Recipe:
    """A config's `[training.optimizer]` block (interpolated) and `[training] dropout`."""

    optimizer: dict[str, Any]
    dropout: float

    @classmethod
    def of(cls, config: Config) -> "Recipe":
        """The recipe of `config`: a config file's, or a pipeline's `nlp.config`."""
        training = Config(config).interpolate()["training"]
        return cls(copy.deepcopy(dict(training["optimizer"])), float(training["dropout"]))

    def optimizer_for(self, total_steps: int, peak_rate: float | None = None) -> Optimizer:
        """The config's optimizer, its schedule fitted to a run of `total_steps` steps, with
        `peak_rate` instead of the config's when given."""
        block = copy.deepcopy(self.optimizer)
        if "learn_rate" in block or peak_rate is not None:
            block["learn_rate"] = fitted_rate(block.get("learn_rate"), total_steps, peak_rate)
        return registry.resolve({"optimizer": block})["optimizer"]


def fitted_rate(rate: Any, total_steps: int, peak_rate: float | None) -> Any:
    """A config's `learn_rate` (a number or a schedule block) for a run of `total_steps`.

    A schedule with a length is stretched or squeezed to the run, its warm-up kept as the same
    share of it; one without (a constant, a decay) is kept. `peak_rate` replaces the number,
    or the schedule's peak argument; a schedule without one cannot take it.
    """
    if not isinstance(rate, dict):
        return rate if peak_rate is None else peak_rate
    schedule = dict(rate)
    length_key = next((key for key in _LENGTH_KEYS if key in schedule), None)
    if length_key is not None:
        steps = max(1, total_steps)
        if "warmup_steps" in schedule:
            share = schedule["warmup_steps"] / max(1, schedule[length_key])
            schedule["warmup_steps"] = max(1, round(share * steps))
        schedule[length_key] = steps
    if peak_rate is not None:
        peak_key = next((key for key in _PEAK_KEYS if key in schedule), None)
        if peak_key is None:
            raise BertNERError(
                f"--learn-rate: the config's schedule {schedule.get('@schedules')} has no peak "
                f"rate ({', '.join(_PEAK_KEYS)}) to replace; change the config instead"
            )
        schedule[peak_key] = peak_rate
    return schedule


def shuffled_batches(
    examples: Sequence[Example], epochs: int, words_per_batch: int, seed: int
) -> list[list[Example]]:
    """`epochs` passes over `examples`, each in a new seeded order, cut into batches of about
    `words_per_batch` words as `spacy train`'s `batch_by_words` cuts them."""
    rng = random.Random(seed)
    batches: list[list[Example]] = []
    for _ in range(epochs):
        order = list(examples)
        rng.shuffle(order)
        batches += list(minibatch_by_words(order, size=words_per_batch, tolerance=0.2))
    return batches
