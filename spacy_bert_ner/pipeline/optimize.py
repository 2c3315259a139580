"""`optimize`: measure each inference path this CPU can run on the user's texts, and save a
copy of the pipeline set to the fastest one whose entities agree with torch fp32's.

No table of CPUs predicts the fastest path (docs/cpu-inference.md: bf16 wins on one AMD
generation and loses 4x on the one before, ONNX Runtime wins on AMD and not on an Intel Xeon
with AMX), so the machine that will run the pipeline is asked instead. Every path is loaded
at once and timed in interleaved rounds, so that a noisy spell of a shared machine hits every
path rather than one; each figure is the median of the rounds. The copy is written whole or
not at all (`io.atomic_directory`), and its config names the path, so `spacy.load`, `serve`
and `annotate` run it with no flag.

The built-in texts (`optimize_texts.txt`, 300 news-like English sentences written for this
project from templates, with invented people: freely redistributable, unlike CoNLL-2003)
stand in when the user gives none.
"""

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import spacy
import torch
from spacy.language import Language
from wasabi import msg

from ..errors import BertNERError, ModelLoadError, one_line
from ..io import atomic_directory
from ..models.runtime import cpu_bf16_kind, cpu_name
from .inference_paths import (
    TORCH_FP32,
    Entities,
    InferencePath,
    PathSpeed,
    agreement,
    choose_path,
    entity_sets,
    runnable_paths,
)
from .loading import bert_ner_pipes, entity_getter, load_pipeline

BUILT_IN_TEXTS = "optimize_texts.txt"
WARM_UP_TEXTS = 32


@dataclass
class Optimized:
    """What `optimize` measured and chose, and on what."""

    measured: list[PathSpeed]
    chosen: PathSpeed
    cpu: str
    n_texts: int
    n_words: int
    rounds: int


def read_texts(path: Path | None) -> list[str]:
    """One text per non-blank line of a UTF-8 file; the built-in texts when `path` is None. A
    file that cannot be read is refused in one line naming it (and the line, for bad bytes)."""
    if path is None:
        source = resources.files(__package__).joinpath(BUILT_IN_TEXTS)
        return [line for line in source.read_text("utf8").splitlines() if line.strip()]
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise BertNERError(f"{path}: cannot read the texts ({err.strerror or err})") from None
    texts = []
    for line_no, line in enumerate(data.splitlines(), start=1):
        try:
            text = line.decode("utf8")
        except UnicodeDecodeError as err:
            raise BertNERError(f"{path}:{line_no}: not UTF-8 text ({err.reason})") from None
        if text.strip():
            texts.append(text)
    if not texts:
        raise BertNERError(f"{path}: no texts (one text per line)")
    return texts


def optimize_pipeline(
    model: str,
    output: Path,
    *,
    texts: Sequence[str],
    lossy: bool = False,
    min_agreement: float = 0.99,
    rounds: int = 3,
) -> Optimized:
    """Measure every runnable path of `model` on `texts` and save the chosen one to `output`."""
    if not 0.0 <= min_agreement <= 1.0:
        raise BertNERError(f"--min-agreement must be between 0 and 1, not {min_agreement}")
    if rounds < 1:
        raise BertNERError(f"--rounds must be >= 1, not {rounds}")
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise BertNERError(f"{output}: exists and is not an empty directory; give a new one")
    source = load_pipeline(model)
    names = [name for name, _ in bert_ner_pipes(source)]
    if not names:
        raise BertNERError(f"{model}: the pipeline has no bert_ner component to optimize")
    directory = source.path if source.path is not None else model
    del source  # loaded again once per path below
    paths = runnable_paths(lossy=lossy)
    pipelines = {path: _load_as(directory, path, names, model) for path in paths}
    seconds, entities = _time_rounds(pipelines, texts, rounds)
    n_words = _count_words(pipelines[TORCH_FP32], texts)
    measured = [
        PathSpeed(
            path,
            n_words / statistics.median(seconds[path]),
            agreement(entities[path], entities[TORCH_FP32]),
        )
        for path in paths
    ]
    chosen = choose_path(measured, min_agreement)
    with atomic_directory(output) as tmp_dir:
        pipelines[chosen.path].to_disk(tmp_dir)
    return Optimized(measured, chosen, describe_cpu(), len(texts), n_words, rounds)


def print_report(optimized: Optimized) -> None:
    """The table: each path's words/s, its speed-up over torch fp32 and its agreement."""
    reference = next(m for m in optimized.measured if m.path == TORCH_FP32).words_per_s
    # Not wrapped as wasabi's text is: the CPU's name, then what was timed, on one line each.
    print(f"{optimized.cpu}; torch threads {torch.get_num_threads()}")
    print(
        f"{optimized.n_texts} texts, {optimized.n_words} words; median of {optimized.rounds} rounds"
    )
    rows = [
        (
            m.path.name,
            f"{m.words_per_s:,.0f}",
            f"{m.words_per_s / reference:.2f}",
            f"{m.agreement:.3f}",
            "<-" if m is optimized.chosen else "",
        )
        for m in optimized.measured
    ]
    header = ("path", "words/s", "x torch fp32", "agreement", "picked")
    msg.table(rows, header=header, aligns=("l", "r", "r", "r", "l"), divider=True)


def describe_cpu() -> str:
    """The CPU and its bf16 instructions, for the table's title."""
    kind = cpu_bf16_kind()
    return f"{cpu_name()} (bf16 instructions: {kind or 'none'})"


def _load_as(directory: object, path: InferencePath, names: list[str], model: str) -> Language:
    try:
        nlp = spacy.load(directory, config=path.overrides(names))  # type: ignore[arg-type]
    except (OSError, ValueError) as err:
        if isinstance(err, BertNERError):
            raise
        raise ModelLoadError(f"cannot load model {model} as {path.name}: {one_line(err)}") from None
    return nlp


def _time_rounds(
    pipelines: dict[InferencePath, Language], texts: Sequence[str], rounds: int
) -> tuple[dict[InferencePath, list[float]], dict[InferencePath, list[Entities]]]:
    """Each path's seconds per round over all `texts` (after a warm-up), and its entities."""
    seconds: dict[InferencePath, list[float]] = {path: [] for path in pipelines}
    entities: dict[InferencePath, list[Entities]] = {}
    for nlp in pipelines.values():
        list(nlp.pipe(texts[:WARM_UP_TEXTS]))
    for _ in range(rounds):
        for path, nlp in pipelines.items():
            start = time.perf_counter()
            docs = list(nlp.pipe(texts))
            seconds[path].append(time.perf_counter() - start)
            entities[path] = entity_sets(docs, entity_getter(nlp))
    return seconds, entities


def _count_words(nlp: Language, texts: Sequence[str]) -> int:
    """Words as spaCy's tokenizer counts them, white space left out."""
    return sum(sum(not token.is_space for token in nlp.make_doc(text)) for text in texts)
