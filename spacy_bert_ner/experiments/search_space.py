"""A hyperparameter search space: dotted config keys and the values each may take, from YAML.

```yaml
training.optimizer.learn_rate.initial_rate: {low: 2.0e-5, high: 1.5e-4, log: true}
components.bert_ner.model.head_lr_scale: {low: 10, high: 300, log: true}
corpora.train.max_words: {low: 40, high: 200, step: 20}      # ints when low/high/step are
components.bert_ner.model.max_length: [64, 128, 256]          # a list: one of these
```

A key is the path `spacy train` overrides take (`--training.dropout 0.2`), so a trial is a
config with a few overrides and every search engine (Optuna, Ray Tune) reads the same file:
both take Optuna's distributions.
"""

from pathlib import Path
from typing import Any

from ..errors import BertNERError, one_line

#: Fields a range may have; `low`/`high` are required.
RANGE_FIELDS = {"low", "high", "log", "step"}


def load_search_space(path: Path | str) -> dict[str, Any]:
    """The YAML file at `path` as `{dotted key: optuna distribution}`; a bad entry is a
    one-line error naming the file and the key."""
    import yaml

    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf8"))
    except (OSError, yaml.YAMLError) as err:
        raise BertNERError(f"{path}: cannot read the search space ({one_line(err)})") from None
    if not isinstance(raw, dict) or not raw:
        raise BertNERError(f"{path}: expected a mapping of dotted config keys to ranges")
    return {str(key): _distribution(path, str(key), value) for key, value in raw.items()}


def _distribution(path: Path, key: str, value: Any) -> Any:
    import optuna.distributions as dist

    if "." not in key:
        raise BertNERError(f"{path}: {key}: expected a dotted config key such as training.dropout")
    if isinstance(value, list) and value:
        return dist.CategoricalDistribution(value)
    if not isinstance(value, dict) or not {"low", "high"} <= set(value) <= RANGE_FIELDS:
        raise BertNERError(
            f"{path}: {key}: expected a list of values or a mapping with low and high "
            "(and optionally log, step)"
        )
    try:
        low, high = _number(value["low"]), _number(value["high"])
        step = None if value.get("step") is None else _number(value["step"])
    except ValueError:
        raise BertNERError(f"{path}: {key}: low, high and step must be numbers") from None
    log = bool(value.get("log", False))
    if low >= high:
        raise BertNERError(f"{path}: {key}: low ({low}) must be below high ({high})")
    try:
        if isinstance(low, int) and isinstance(high, int) and isinstance(step or 1, int):
            return dist.IntDistribution(low, high, log=log, step=int(step or 1))
        return dist.FloatDistribution(float(low), float(high), log=log, step=step)
    except ValueError as err:
        raise BertNERError(f"{path}: {key}: {err}") from None


def _number(value: Any) -> int | float:
    """A YAML number; PyYAML (YAML 1.1) reads `1e-4`, without a dot, as a string."""
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, int | float):
        return value
    return float(value)
