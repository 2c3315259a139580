"""`python -m spacy_bert_ner annotate`: a trained pipeline over JSONL (or Parquet) records.

Two engines share everything but the scheduling (`Annotator.triaged_results`), so they write
the same lines (see `records`) and resume the same way (see `progress`):

- `local` (`local.py`): one `nlp.pipe` stream in this process; the output is in input order.
- `ray` (`ray_engine.py`, imported only for this engine, so the core never needs Ray): Ray
  Data actors, each loading the pipeline once; the output is keyed by id, in no set order.

Errors. A record that cannot be annotated (not JSON, no string text, an id that is neither a
string nor an integer, a duplicate id, or a pipeline failure) becomes an errors-file line and
the job goes on.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from tqdm import tqdm
from wasabi import msg

from ..errors import BertNERError, parse_choice
from ..extras import require
from ..pipeline.inference_paths import path_in_use
from ..pipeline.loading import load_pipeline
from .annotator import EngineOptions
from .local import local_results
from .progress import read_done
from .records import ANNOTATED, ERROR, SKIPPED, Result, is_parquet, open_parquet

ERRORS_SUFFIX = ".errors.jsonl"


class Engine(StrEnum):
    """Where `annotate` runs the pipeline (see the module's docstring); the CLI's choices."""

    local = "local"
    ray = "ray"


@dataclass
class Tally:
    """What a run did. `seconds`: the wall time of writing, from the first record read to the
    end; it leaves out loading the local pipeline, but holds Ray's start-up (actors, loads)."""

    annotated: int = 0
    errors: int = 0
    skipped: int = 0
    seconds: float = 0.0

    @property
    def docs_per_second(self) -> float:
        processed = self.annotated + self.errors
        return processed / self.seconds if self.seconds > 0 else 0.0


def default_errors_path(output: Path) -> Path:
    """`out.jsonl` -> `out.errors.jsonl`."""
    return output.with_name(output.stem + ERRORS_SUFFIX)


def check_arguments(
    model: str,
    input_path: Path,
    output: Path,
    errors: Path,
    engine: Engine,
    batch_size: int,
    workers: int,
    gpus_per_worker: float,
) -> None:
    """One-line errors for arguments that cannot work, before any pipeline is loaded."""
    if not input_path.exists():
        raise BertNERError(f"input not found: {input_path}")
    if not input_path.is_file():
        raise BertNERError(f"input is not a file: {input_path}")
    if len({input_path.resolve(), output.resolve(), errors.resolve()}) < 3:
        raise BertNERError(f"{output}: input, output and errors must be three different files")
    if output.is_dir() or errors.is_dir():
        raise BertNERError(f"{output if output.is_dir() else errors} is a directory, not a file")
    if batch_size < 1 or workers < 1:
        raise BertNERError(f"--batch-size and --workers must be >= 1, not {batch_size}/{workers}")
    if is_parquet(input_path):
        open_parquet(input_path, input_path)  # fails here, not in a Ray read task
    if gpus_per_worker < 0:
        raise BertNERError(f"--gpus-per-worker must be >= 0, not {gpus_per_worker}")
    if engine == Engine.local and gpus_per_worker > 0 and workers > 1:
        raise BertNERError("the local engine uses one GPU in one process: --workers 1 (or ray)")


def annotate_file(
    model: str,
    input_path: Path,
    output: Path,
    *,
    errors: Path | None = None,
    engine: Engine | str = Engine.local,
    text_field: str = "text",
    id_field: str = "id",
    batch_size: int = 256,
    workers: int = 1,
    gpus_per_worker: float = 0.0,
    progress: bool = True,
) -> Tally:
    """Annotate the records of `input_path` with pipeline `model`, appending to `output`.

    Errors go to `errors` (default: `default_errors_path(output)`). With `engine="ray"`,
    `workers` actors with `gpus_per_worker` GPUs each run on the Ray cluster that
    `ray.init()` finds (`RAY_ADDRESS`, or a local one), unless Ray is already initialised.
    """
    engine = parse_choice(Engine, engine, "engine")
    input_path, output = Path(input_path), Path(output)
    errors = Path(errors) if errors is not None else default_errors_path(output)
    check_arguments(model, input_path, output, errors, engine, batch_size, workers, gpus_per_worker)
    if engine == Engine.ray:
        for module in ("ray.data", "pyarrow"):
            require(module, "--engine ray")
        from .ray_engine import ray_results

        # Ray reports an actor that failed to load as a multi-page traceback without its
        # cause; loading the pipeline here once turns that into the usual one line.
        msg.text(f"inference path: {path_in_use(load_pipeline(model))}")
    done = read_done(output, errors)
    options = EngineOptions(text_field, id_field, batch_size, workers, gpus_per_worker)
    engine_results = ray_results if engine == Engine.ray else local_results
    batches = engine_results(model, input_path, done, options)
    tally = Tally()
    output.parent.mkdir(parents=True, exist_ok=True)
    errors.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with (
        output.open("a", encoding="utf8") as out,
        errors.open("a", encoding="utf8") as failed,
        tqdm(unit="doc", desc=f"annotating ({engine})", disable=not progress) as bar,
    ):
        for batch in batches:
            _write(batch, out, failed, tally)
            bar.update(sum(kind != SKIPPED for kind, _ in batch))
    tally.seconds = time.perf_counter() - start
    if progress:
        msg.good(
            f"{tally.annotated} annotated, {tally.errors} errors, {tally.skipped} already "
            f"done ({tally.docs_per_second:.1f} docs/s)"
        )
        msg.text(f"entities: {output}")
        msg.text(f"errors: {errors}")
    return tally


def _write(batch: Sequence[Result], out: Any, failed: Any, tally: Tally) -> None:
    """Append one batch and flush, so a crash loses at most the batch being written."""
    annotated = [line for kind, line in batch if kind == ANNOTATED]
    errors = [line for kind, line in batch if kind == ERROR]
    out.write("".join(annotated))
    out.flush()
    failed.write("".join(errors))
    failed.flush()
    tally.annotated += len(annotated)
    tally.errors += len(errors)
    tally.skipped += len(batch) - len(annotated) - len(errors)
