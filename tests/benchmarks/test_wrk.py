"""The load generator of serve_load: wrk with its Lua script against a small local server
that answers 200 or 503, rotating over the bodies and counting what came back."""

import http.server
import json
import os
import threading
from pathlib import Path

import pytest

from benchmarks.wrk import WRK, lua_script, run_wrk


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list[str] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        Handler.seen.append(json.loads(body)["text"])
        refuse = body.endswith('"c"}')
        self.send_response(503 if refuse else 200)
        if refuse and self.path == "/polite":
            self.send_header("Retry-After", "1")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server():
    if WRK is None:
        problem = "needs Debian's wrk (apt-get install wrk)"
        if os.environ.get("CI"):
            pytest.fail(problem)
        pytest.skip(problem)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.mark.parametrize("path", ["/polite", "/rude"])
def test_wrk_rotates_the_bodies_and_counts_statuses(server, tmp_path: Path, path: str):
    Handler.seen.clear()
    script = tmp_path / "load.lua"
    bodies = [json.dumps({"text": text}) for text in ("a", "b ]] [[", "c")]
    script.write_text(lua_script(bodies, path))
    run = run_wrk(server + path, script, clients=2, seconds=1, timeout_s=5)
    assert set(Handler.seen) == {"a", "b ]] [[", "c"}  # every body, Lua's brackets kept
    assert run.ok > 0 and run.statuses.get("503", 0) > 0
    # wrk stops with up to one request per connection unanswered.
    assert len(Handler.seen) - 2 <= run.ok + run.statuses["503"] <= len(Handler.seen)
    assert run.no_retry_after == (0 if path == "/polite" else run.statuses["503"])
    assert run.p50_ms > 0 and "200" not in run.problems()
