"""A real Label Studio for the tests of this folder (`label_studio`): on a loopback port, SQLite
in a temporary directory, started by its own `label-studio` script and stopped after the test.

Label Studio pins its own versions of Django, numpy and more, so it lives in a venv of its own
(`.ci/run` makes it): the fixture finds its `label-studio` script in $LABEL_STUDIO_BIN, else on
PATH, and the tests run the SDK with that venv's Python. Without it the tests are skipped,
except under CI, where they fail. It may call ML backends and send webhooks on this machine's
loopback address (which Label Studio refuses by default): the backend test serves one there.
"""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

TOKEN = "bertnerroundtrip0123456789abcdef"


def label_studio_bin() -> Path:
    found = os.environ.get("LABEL_STUDIO_BIN") or shutil.which("label-studio")
    if not found or not Path(found).is_file():
        problem = "needs Label Studio in a venv of its own: set LABEL_STUDIO_BIN (see .ci/run)"
        if os.environ.get("CI"):
            pytest.fail(problem)
        pytest.skip(problem)
    return Path(found)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def label_studio(tmp_path):
    """The URL of a Label Studio started for this test; stopped (its process group) after."""
    script = label_studio_bin()
    port, data = free_port(), tmp_path / "label-studio"
    log = (tmp_path / "label-studio.log").open("wb")
    command = [str(script), "start", "--no-browser", "--data-dir", str(data),
               "--port", str(port), "--internal-host", "127.0.0.1",
               "--username", "annotator@example.com", "--password", "roundtrip-pass",
               "--user-token", TOKEN, "--enable-legacy-api-token"]  # fmt: skip
    env = {
        **os.environ,
        "LABEL_STUDIO_BASE_DATA_DIR": str(data),
        "DJANGO_DB": "sqlite",
        "ML_BLOCK_LOCAL_IP": "false",
        "SSRF_PROTECTION_ENABLED": "false",
    }
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                              start_new_session=True)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240
        while not _healthy(url):
            if server.poll() is not None or time.monotonic() > deadline:
                tail = (tmp_path / "label-studio.log").read_text()[-3000:]
                pytest.fail(f"Label Studio did not start:\n{tail}")
            time.sleep(1)
        yield url, script.parent / "python"
    finally:
        _stop(server)
        log.close()


def _stop(server: subprocess.Popen) -> None:
    """Stop the server's process group; a server that already died (it failed to start) has none."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False
