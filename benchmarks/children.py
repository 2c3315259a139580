"""Benchmarks that need a fresh process per system (peak memory, worker processes, servers)
start it as `python -m <module>` with the repository first on PYTHONPATH, so the child and its
own children (Ray workers, the service's replicas) import this checkout's code, whatever their
working directory."""

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


def child_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, **extra}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def run_json(module: str, *args: object, **env: str) -> dict[str, Any]:
    """Run `python -m module args` to the end; its last stdout line is a JSON object."""
    done = subprocess.run(
        module_command(module, *args), env=child_env(**env), capture_output=True, text=True
    )
    if done.returncode != 0:
        raise ChildFailed(f"{module} {' '.join(map(str, args))}:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])
