"""`python -m benchmarks.speed` end to end on the tiny model: the systems that need no extra,
the speed table, accuracy and the long-doc table from its child processes. No timing checked."""

import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.inputs import REPO


@pytest.mark.slow
def test_speed_runs_as_a_module_with_its_long_doc_children(tiny_bert: Path, conll_path: Path):
    command = [sys.executable, "-m", "benchmarks.speed", "--model", str(tiny_bert)]
    command += ["--conll", str(conll_path), "--systems", "raw,rawseq,fp32,bf16,int8", "-n", "6"]
    command += ["--warmup", "2", "--repeats", "1", "--pipe-batches", "2,4", "--accuracy"]
    command += ["--memory-systems", "fp32", "--doc-sizes", "20,40", "--memory-min-words", "40"]
    command += ["--threads", "1"]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines[0].startswith("Machine: ")
    rows = [line.split("|")[1:-1] for line in lines if line.startswith("| ")]
    speed = {(r[0].strip(), r[2].strip()) for r in rows if r[0].strip() in ("raw", "fp32", "bf16")}
    assert speed == {("raw", "-"), ("fp32", "2"), ("fp32", "4"), ("bf16", "2"), ("bf16", "4")}
    assert not any("failed" in line for line in lines), done.stdout
    assert any(line.startswith("  int8 F1 loss vs fp32") for line in lines)
    assert any(line.startswith("  bf16 F1 loss vs fp32") for line in lines)
    picks = [line for line in lines if line.startswith("optimize would pick (pipe ")]
    assert [line.split(")")[0] for line in picks] == [
        "optimize would pick (pipe 2",
        "optimize would pick (pipe 4",
    ]
    assert all(": fp32 (torch fp32)" in line or ": bf16 (torch bf16)" in line for line in picks)
    long_docs = [r[0].strip() for r in rows if r[0].strip() in ("20", "40")]
    assert long_docs == ["20", "40"] and any(line.startswith("40 vs 20 words") for line in lines)
