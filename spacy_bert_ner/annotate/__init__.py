"""`annotate`: a trained pipeline over many records, resumable, on one machine or a Ray cluster.

`command` is the entry point; `records` reads input and formats output lines, `progress`
knows what earlier runs wrote, `annotator` applies the pipeline, and `local` / `ray_engine`
schedule it.
"""

from enum import StrEnum


class Engine(StrEnum):
    """Where `annotate` runs the pipeline (kept here, light, for the CLI's choices)."""

    local = "local"
    ray = "ray"


ENGINES = tuple(engine.value for engine in Engine)
