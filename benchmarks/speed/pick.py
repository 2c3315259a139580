"""The path `python -m spacy_bert_ner optimize` would pick from this run's measurements.

The same rule (`inference_paths.choose_path`) over the bert_ner systems this CPU can run
(`runnable_paths`: a bf16 the CPU only emulates is timed by the benchmark but never picked),
with each system's agreement against torch fp32 computed from its last round's docs, per
`nlp.pipe` batch.
"""

from spacy_bert_ner.pipeline.inference_paths import (
    InferencePath,
    PathSpeed,
    agreement,
    choose_path,
    entity_sets,
    runnable_paths,
)

from .rounds import Result
from .systems import BERT_NER_SYSTEMS

#: optimize's default floor (`--min-agreement`).
MIN_AGREEMENT = 0.99


def optimize_pick(results: list[Result], pipe_batch: int) -> tuple[str, PathSpeed] | None:
    """The system optimize would pick at `pipe_batch`, with its figures; None without a
    measured torch fp32 (the reference) at that batch."""
    runnable = runnable_paths(lossy=False)
    timed = {
        name: (InferencePath(backend, precision), result)
        for name, (precision, backend) in BERT_NER_SYSTEMS.items()
        for result in results
        if (result.system, result.pipe_batch) == (name, pipe_batch)
        and result.words_per_s
        and result.docs
    }
    if "fp32" not in timed:
        return None
    reference = entity_sets(timed["fp32"][1].docs or [])
    measured = {
        name: PathSpeed(
            path, result.words_per_s or 0.0, agreement(entity_sets(result.docs or []), reference)
        )
        for name, (path, result) in timed.items()
        if path in runnable
    }
    chosen = choose_path(list(measured.values()), MIN_AGREEMENT)
    return next(name for name, m in measured.items() if m is chosen), chosen


def print_optimize_picks(results: list[Result], pipe_batches: list[int]) -> None:
    """One line per pipe batch: the system optimize would pick, x torch fp32, agreement."""
    for pipe_batch in pipe_batches:
        picked = optimize_pick(results, pipe_batch)
        if picked is None:
            print(f"optimize would pick (pipe {pipe_batch}): - (torch fp32 not measured)")
            continue
        name, chosen = picked
        fp32 = next(r for r in results if (r.system, r.pipe_batch) == ("fp32", pipe_batch))
        print(
            f"optimize would pick (pipe {pipe_batch}): {name} ({chosen.path.name}), "
            f"{chosen.words_per_s / (fp32.words_per_s or 1):.2f}x torch fp32, agreement "
            f"{chosen.agreement:.3f} (floor {MIN_AGREEMENT})"
        )
