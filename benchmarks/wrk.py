"""`wrk` as the load generator of `serve_load.py`: a compiled client that takes a sliver of the
cores the servers share with it (an asyncio client in Python took a third of them).

One wrk thread keeps `clients` connections busy for `seconds`, each request the next body of a
rotation over the sentences (a Lua script, `lua_script`); a `response` hook counts the statuses
and the 503s without `Retry-After`, and `done` prints one JSON line that `run_wrk` reads.
"""

import json
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

WRK = shutil.which("wrk")

LUA = r"""
local bodies = {%(bodies)s}
local path = "%(path)s"
local headers = {["Content-Type"] = "application/json"}
local threads = {}

function setup(thread)
  thread:set("offset", #threads * 7919)
  table.insert(threads, thread)
end

function init(args)
  i = offset
  statuses = {}
  no_retry_after = 0
end

function request()
  i = i + 1
  return wrk.format("POST", path, headers, bodies[(i %% #bodies) + 1])
end

function response(status, headers, body)
  local key = tostring(status)
  statuses[key] = (statuses[key] or 0) + 1
  if status == 503 and headers["retry-after"] == nil and headers["Retry-After"] == nil then
    no_retry_after = no_retry_after + 1
  end
end

function done(summary, latency, requests)
  local counts, missing = {}, 0
  for _, thread in ipairs(threads) do
    for key, n in pairs(thread:get("statuses")) do counts[key] = (counts[key] or 0) + n end
    missing = missing + thread:get("no_retry_after")
  end
  local parts = {}
  for key, n in pairs(counts) do table.insert(parts, string.format('"%%s":%%d', key, n)) end
  local e = summary.errors
  io.write(string.format(
    '\nWRK_JSON {"seconds":%%f,"p50_ms":%%f,"p99_ms":%%f,"statuses":{%%s},"no_retry_after":%%d,'
    .. '"connect":%%d,"read":%%d,"write":%%d,"timeout":%%d}\n',
    summary.duration / 1e6, latency:percentile(50) / 1e3, latency:percentile(99) / 1e3,
    table.concat(parts, ","), missing, e.connect, e.read, e.write, e.timeout))
end
"""


def lua_script(bodies: Sequence[str], path: str) -> str:
    """The script for `bodies` (JSON texts) posted to `path`, as Lua long strings."""
    quoted = ",".join(f"[==[{body}]==]" for body in bodies)
    return LUA % {"bodies": quoted, "path": path}


@dataclass
class WrkRun:
    """One wrk run: statuses of the answers, socket errors, the latency percentiles of all
    answers (wrk keeps one histogram), and 503s that came without Retry-After."""

    seconds: float
    p50_ms: float
    p99_ms: float
    statuses: dict[str, int] = field(default_factory=dict)
    no_retry_after: int = 0
    connect: int = 0
    read: int = 0
    write: int = 0
    timeout: int = 0

    @property
    def ok(self) -> int:
        return self.statuses.get("200", 0)

    def problems(self) -> dict[str, int]:
        """Everything but 200s: other statuses by code, socket errors by kind."""
        found = {code: n for code, n in self.statuses.items() if code != "200"}
        for kind in ("connect", "read", "write", "timeout", "no_retry_after"):
            if getattr(self, kind):
                found[kind] = getattr(self, kind)
        return found


def run_wrk(url: str, script: Path, clients: int, seconds: float, timeout_s: float) -> WrkRun:
    """`clients` connections on one wrk thread for `seconds` against `url`."""
    if WRK is None:
        raise SystemExit("wrk not found: apt-get install wrk (the load generator)")
    command = [
        WRK,
        "-t1",
        f"-c{clients}",
        f"-d{seconds:g}s",
        f"--timeout={timeout_s:g}s",
        "-s",
        str(script),
        url,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 120)
    for line in done.stdout.splitlines():
        if line.startswith("WRK_JSON "):
            return WrkRun(**json.loads(line.removeprefix("WRK_JSON ")))
    raise SystemExit(f"wrk gave no result ({done.returncode}): {done.stdout}{done.stderr}")
