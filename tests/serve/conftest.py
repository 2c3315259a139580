"""A running service for the tests of this folder, once per engine: `python -m spacy_bert_ner
serve` on the trained tiny pipeline, started as a user starts it (`--engine ray` with its own
local Ray), with an API key and small limits so that every refusal can be reached. Tests that
take `service` run on both engines; the few that concern one engine ask for it by name."""

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

API_KEY = "test-key-0123456789"
LIMITS = {"max_texts": 8, "max_chars": 2000, "max_queued": 2, "max_batch_size": 4}


#: The Ray Serve engine starts a Ray cluster: its runs belong to the slow set.
RAY = pytest.param("ray", marks=pytest.mark.slow)
ENGINES = ("local", RAY)
#: For the tests of what one engine alone does: the same package-wide service, one engine.
LOCAL_ONLY = pytest.mark.parametrize("service", ["local"], indirect=True)
RAY_ONLY = pytest.mark.parametrize("service", [RAY], indirect=True)


@dataclass
class Service:
    url: str
    pipeline: Path
    process: subprocess.Popen
    engine: str

    def client(self, key: str | None = API_KEY, timeout: float = 60.0) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=timeout)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(url: str, process: subprocess.Popen, seconds: float = 180.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"serve exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"serve not ready after {seconds} s")


def start_service(
    pipeline: Path, log: Path, engine: str, *options: str
) -> tuple[Service, subprocess.Popen]:
    """`serve` in a child process, ready; its output goes to `log`."""
    port = free_port()
    limits = [f"--{name.replace('_', '-')}={value}" for name, value in LIMITS.items()]
    command = [sys.executable, "-m", "spacy_bert_ner", "serve", str(pipeline), f"--port={port}"]
    process = subprocess.Popen(
        [*command, f"--engine={engine}", *limits, *options],
        env={**os.environ, "BERT_NER_API_KEY": API_KEY},
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process)
    except RuntimeError:
        process.kill()
        raise RuntimeError(log.read_text()[-5000:]) from None
    return Service(url, pipeline, process, engine), process


def stop_service(process: subprocess.Popen, log: Path) -> None:
    """SIGTERM, as a process manager stops it: the service must exit 0 and say so."""
    process.send_signal(signal.SIGTERM)
    try:
        code = process.wait(timeout=120)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    assert code == 0, log.read_text()[-5000:]
    assert "stopped" in log.read_text()


@pytest.fixture(scope="package", params=ENGINES)
def service(
    request: pytest.FixtureRequest, trained_tiny: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    engine = request.param
    log = tmp_path_factory.mktemp(f"serve-{engine}") / "serve.log"
    running, process = start_service(trained_tiny, log, engine)
    yield running
    stop_service(process, log)
