"""Benchmarks that need a fresh process per system (peak memory, worker processes, servers)
start it as `python -m <module>` in the repository's root, so that the child imports this
checkout's `benchmarks` and `spacy_bert_ner` as its parent does, and so do its own children:
Ray puts the driver's working directory on its workers' path. A server runs from start until
it answers (`running`), on a free loopback port (`free_port`)."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psutil

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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tree_rss_mib(process: psutil.Process) -> float:
    """RSS of a server and all its children (Ray's processes, for the ray engine)."""
    total = 0
    for member in [process, *process.children(recursive=True)]:
        try:
            total += member.memory_info().rss
        except psutil.Error:
            pass
    return total / 2**20


@contextmanager
def running(command: list[str], ready_url: str, log: Path, **env: str) -> Iterator[psutil.Process]:
    """A server process from start until it answers `ready_url`, stopped (SIGTERM) on the way
    out whatever happens: a server left running would hold the cores of the next system."""
    with log.open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=out, **in_repo(**env))
    try:
        deadline = time.monotonic() + 300
        while not ready(ready_url):
            if process.poll() is not None:
                tail = log.read_text(errors="replace")[-3000:]
                raise SystemExit(f"{' '.join(command)} exited with {process.returncode}:\n{tail}")
            if time.monotonic() > deadline:
                raise SystemExit(f"server not ready after 300 s: {ready_url}")
            time.sleep(0.5)
        yield psutil.Process(process.pid)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()


def ready(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
