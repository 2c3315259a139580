"""The `ray` engine of `annotate`: Ray Data reads, actors annotate, the driver writes.

Only `--engine ray` imports this module, so the package needs Ray (`pip install
"spacy-bert-ner[ray]"`) for this engine alone.

Reading. Ray's `read_json` parses JSONL with pandas, which turns integer ids with gaps into
floats and fails a whole file on one malformed line, and neither it nor `read_parquet` numbers
the lines that id-less records and error records need. So `RecordsDatasource`, a Ray Data file
datasource, runs the local engine's own readers (`records.jsonl_records`,
`records.parquet_records`) in its read task: Ray sees exactly the records local sees, as Arrow
blocks.

Duplicates. Before annotating, the (id, line) pairs stream back to the driver, which finds the
ids on more than one line and their first line; the actors turn the other lines of those ids
into duplicate errors, as the local engine does while streaming.

Annotating. `map_batches` with the actor class `RecordAnnotator`: each of the `workers` actors
loads the pipeline once (on its own GPU share with `gpus_per_worker`) and turns a batch of
records into one (kind, line) row per record with the local engine's `Annotator`.

Writing. The driver streams the rows back and appends them to the output and errors files
batch by batch, so resume works as for the local engine, and the files are the same.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import ray
from ray.data.datasource import FileBasedDatasource
from spacy.util import minibatch

from .annotator import Annotator, EngineOptions
from .progress import Done, FirstLines
from .records import NO_ID, Record, Result, is_parquet, jsonl_records, parquet_records

RECORD_SCHEMA = pa.schema(
    [("line", pa.int64()), ("id", pa.string()), ("text", pa.string()), ("error", pa.string())]
)
# The read task parses JSON lines, a small fraction of a core next to the model; asking for no
# CPU keeps it from waiting for a core that the actors hold (2 actors on `num_cpus=2`).
READ_TASK_CPUS = 0
ROWS_PER_TABLE = 1024
ACTOR_CPUS = 1  # tokenization, windows and decoding run on the actor's CPU beside its GPU


class RecordsDatasource(FileBasedDatasource):
    """One JSONL or Parquet file as `RECORD_SCHEMA` rows, read by `annotate`'s own readers.

    Ray merges the tables read into blocks and splits those for parallelism (into at least
    200 for a large file); `map_batches` then hands each actor `batch_size` rows at a time.
    """

    def __init__(self, path: str, text_field: str, id_field: str) -> None:
        super().__init__(path, file_extensions=None)
        self.text_field = text_field
        self.id_field = id_field

    def _open_input_source(self, filesystem: Any, path: str, **open_args: Any) -> Any:
        return filesystem.open_input_file(path)  # random access, which Parquet needs

    def _read_stream(self, f: Any, path: str) -> Iterator[pa.Table]:
        if is_parquet(path):
            records = parquet_records(f, self.text_field, self.id_field, name=path)
        else:
            records = jsonl_records(io.BufferedReader(f), self.text_field, self.id_field)
        for block in minibatch(records, ROWS_PER_TABLE):
            yield pa.Table.from_pylist(
                [{name: getattr(r, name) for name in RECORD_SCHEMA.names} for r in block],
                schema=RECORD_SCHEMA,
            )


def repeated_ids(records: ray.data.Dataset) -> dict[str, int]:
    """The ids on more than one line, each with its first line.

    The (id, line) pairs stream back to the driver, which keeps one entry per id, as the
    local engine does (and as resume keeps the written ids). A distributed group-by would
    spare that memory, but costs a shuffle: 12 s of actor start-up on 2 cores for any input.
    """
    first: dict[str, int] = {}
    repeated: set[str] = set()
    pairs = records.select_columns(["id", "line"])
    for batch in pairs.iter_batches(batch_size=None, batch_format="numpy"):
        for record_id, line in zip(batch["id"].tolist(), batch["line"].tolist(), strict=True):
            seen = first.setdefault(record_id, line)
            if seen != line and record_id != NO_ID:
                repeated.add(record_id)
                first[record_id] = min(seen, line)
    return {record_id: first[record_id] for record_id in repeated}


class RecordAnnotator:
    """Ray actor: the pipeline, loaded once, applied to batches of records."""

    def __init__(
        self,
        model: str,
        batch_size: int,
        use_gpu: bool,
        done: Done,
        repeated: dict[str, int],
    ) -> None:
        self.annotator = Annotator.load(model, batch_size=batch_size, gpu=use_gpu)
        self.done = done
        self.first_lines = FirstLines(repeated)

    def __call__(self, batch: pa.Table) -> dict[str, list[Any]]:
        columns = [batch.column(name).to_pylist() for name in RECORD_SCHEMA.names]
        records = (Record(*row) for row in zip(*columns, strict=True))
        results = list(self.annotator.triaged_results(records, self.done, self.first_lines))
        return {"kind": [kind for kind, _ in results], "line": [line for _, line in results]}


def ray_results(
    model: str,
    input_path: Path,
    done: Done,
    options: EngineOptions,
) -> Iterator[list[Result]]:
    """The results of the ray engine, one list per block, in no set order.

    Connects with `ray.init()` (`RAY_ADDRESS`, else a local Ray, shut down at the end) unless
    Ray is already initialised. The input and the model must be readable at the same path on
    every node.
    """
    started_ray = not ray.is_initialized()
    if started_ray:
        ray.init()
    ray.data.DataContext.get_current().enable_progress_bars = False  # annotate shows its own
    try:
        records = ray.data.read_datasource(
            RecordsDatasource(str(input_path.resolve()), options.text_field, options.id_field),
            num_cpus=READ_TASK_CPUS,
        )
        repeated = repeated_ids(records)
        results = records.map_batches(
            RecordAnnotator,
            fn_constructor_kwargs={
                "model": str(Path(model).resolve()) if Path(model).exists() else model,
                "batch_size": options.batch_size,
                "use_gpu": options.gpus_per_worker > 0,
                "done": done,
                "repeated": repeated,
            },
            batch_size=options.batch_size,
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=options.workers),
            num_cpus=ACTOR_CPUS,
            num_gpus=options.gpus_per_worker,
        )
        for block in results.iter_batches(batch_size=None, batch_format="pyarrow"):
            kinds, lines = block.column("kind").to_pylist(), block.column("line").to_pylist()
            yield list(zip(kinds, lines, strict=True))
    finally:
        if started_ray:
            ray.shutdown()
