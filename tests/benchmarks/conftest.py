"""A small CoNLL file in the tiny model's vocabulary, for the benchmarks' inputs and runs."""

from pathlib import Path

import pytest

SENTENCES = [
    [("angela", "B-PER"), ("merkel", "I-PER"), ("met", "O"), ("the", "O"), ("paris", "B-LOC")],
    [("berlin", "B-LOC"), ("and", "O"), ("paris", "B-LOC")],
    [("the", "O"), ("merkel", "B-PER"), ("of", "O"), ("berlin", "B-LOC"), ("in", "O")],
]


@pytest.fixture
def conll_path(tmp_path: Path) -> Path:
    """Two documents of the three sentences in CoNLL-2003's four columns, IOB2."""
    lines = []
    for _ in range(2):
        lines += ["-DOCSTART- -X- -X- O", ""]
        for sentence in SENTENCES:
            lines += [f"{word} NN B-NP {tag}" for word, tag in sentence] + [""]
    path = tmp_path / "tiny.conll"
    path.write_text("\n".join(lines), encoding="utf8")
    return path
