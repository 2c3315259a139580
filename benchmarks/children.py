"""Benchmarks that need a fresh process per system (peak memory, worker processes, servers)
start it as `python -m <module>` in the repository's root, so that the child imports this
checkout's `benchmarks` and `spacy_bert_ner` as its parent does, and so do its own children:
Ray puts the driver's working directory on its workers' path."""

import json
import os
import subprocess
import sys
from typing import Any

from .inputs import REPO


class ChildFailed(RuntimeError):
    """A child process exited non-zero; the message ends with the tail of its stderr."""


def module_command(module: str, *args: object) -> list[str]:
    return [sys.executable, "-m", module, *map(str, args)]


def in_repo(**env: str) -> dict[str, Any]:
    """`subprocess` keywords for a child: the repository's root as its working directory, and
    this process's environment plus `env`."""
    return {"cwd": REPO, "env": {**os.environ, **env}}


def run_json(module: str, *args: object, **env: str) -> dict[str, Any]:
    """Run `python -m module args` to the end; its last stdout line is a JSON object."""
    command = module_command(module, *args)
    done = subprocess.run(command, capture_output=True, text=True, **in_repo(**env))
    if done.returncode != 0:
        raise ChildFailed(f"{module} {' '.join(map(str, args))}:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])
