"""The CLI on bad arguments and bad files: a non-zero exit and one readable line, always."""

import shutil
from pathlib import Path

import pytest
import spacy
from typer.testing import CliRunner

from spacy_bert_ner.cli import app

GOOD_CONLL = "-DOCSTART- -X- -X- O\n\nAngela B-PER\nMerkel I-PER\nmet O\nMacron B-PER\n"


@pytest.fixture(scope="module")
def files(tiny_bert, tmp_path_factory) -> Path:
    """A work directory with a good CoNLL file, its .spacy, a pipeline and damaged copies."""
    root = tmp_path_factory.mktemp("cli")
    (root / "good.conll").write_text(GOOD_CONLL)
    assert CliRunner().invoke(app, ["convert", str(root / "good.conll"), str(root)]).exit_code == 0
    nlp = spacy.blank("en")
    nlp.add_pipe("bert_ner", config={"model": str(tiny_bert)})
    nlp.to_disk(root / "pipeline")
    shutil.copytree(root / "pipeline", root / "truncated")
    weights = root / "truncated" / "bert_ner" / "model" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:5000])
    (root / "damaged.spacy").write_bytes((root / "good.conll.spacy").read_bytes()[:30])
    (root / "not_a_pipeline").mkdir()
    (root / "a_file").write_text("")
    return root


def one_line(result) -> str:
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("\u2718 ")
    return lines[0]


USAGE_ERRORS = {
    "convert without arguments": (["convert"], "Missing argument 'input_path'"),
    "convert without output": (["convert", "good.conll"], "Missing argument 'output_dir'"),
    "n-sents not a number": (["convert", "good.conll", "out", "-n", "ten"], "'--n-sents'"),
    "unknown option": (["convert", "good.conll", "out", "--bogus"], "No such option: --bogus"),
    "evaluate without data": (["evaluate", "pipeline"], "Missing argument 'data_path'"),
    "gpu id not a number": (["evaluate", "pipeline", "x", "--gpu-id", "one"], "'--gpu-id'"),
    "unknown command": (["annotat"], "No such command 'annotat'"),
    # Options with a fixed set of values list them.
    "unknown scheme": (
        ["convert", "good.conll", "out", "--scheme", "BILOU"],
        "'BILOU' is not one of 'iob1', 'iob2'",
    ),
    "unknown engine": (
        ["annotate", "pipeline", "in.jsonl", "out.jsonl", "--engine", "spark"],
        "'spark' is not one of 'local', 'ray'",
    ),
    "unknown tune engine": (
        ["tune", "good.conll", "--engine", "spark"],
        "'spark' is not one of 'optuna', 'ray'",
    ),
}


@pytest.mark.parametrize("case", sorted(USAGE_ERRORS))
def test_bad_arguments_exit_2_with_one_line(files, monkeypatch, case):
    args, problem = USAGE_ERRORS[case]
    monkeypatch.chdir(files)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    line = one_line(result)
    assert problem in line and "--help)" in line


BAD_FILES = {
    "convert: no such input": (["convert", "missing.conll", "out"], "missing.conll: cannot read"),
    "convert: input is a directory": (["convert", "out_dir", "out"], "out_dir: cannot read"),
    "convert: output directory is a file": (
        ["convert", "good.conll", "a_file"],
        "a_file/good.conll.spacy: cannot write",
    ),
    "convert: zero sentences per doc": (
        ["convert", "good.conll", "out", "-n", "0"],
        "n_sents must be at least 1",
    ),
    "evaluate: no such model": (["evaluate", "nowhere", "good.conll"], "model not found: nowhere"),
    "evaluate: not a pipeline": (
        ["evaluate", "not_a_pipeline", "good.conll"],
        "cannot load model not_a_pipeline",
    ),
    "evaluate: truncated weights": (
        ["evaluate", "truncated", "good.conll"],
        "truncated/bert_ner/model/model.safetensors: not a readable safetensors file",
    ),
    "evaluate: no such data": (["evaluate", "pipeline", "gone.spacy"], "not found: gone.spacy"),
    "evaluate: damaged .spacy": (
        ["evaluate", "pipeline", "damaged.spacy"],
        "damaged.spacy: not a .spacy (DocBin) file",
    ),
    "evaluate: data is not CoNLL": (
        ["evaluate", "pipeline", "pipeline/meta.json"],
        "pipeline/meta.json:1: expected at least 2 columns",
    ),
    "evaluate: output is a directory": (
        ["evaluate", "pipeline", "good.conll", "-o", "out_dir"],
        "out_dir: is a directory",
    ),
    "teacher-distributions: teacher not a pipeline": (
        ["teacher-distributions", "a_file", "--corpus", "good.conll.spacy", "-o", "t.msgpack"],
        "a_file: a teacher must be a pipeline directory",
    ),
    "teacher-distributions: damaged corpus": (
        ["teacher-distributions", "pipeline", "--corpus", "damaged.spacy", "-o", "t.msgpack"],
        "damaged.spacy: not a .spacy (DocBin) file",
    ),
    "teacher-distributions: not a distributions file": (
        ["teacher-distributions", "pipeline", "--corpus", "good.conll.spacy", "-o", "a_file"],
        "a_file: cannot read teacher distributions",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_files_exit_1_with_one_line_naming_the_file(files, monkeypatch, case):
    args, problem = BAD_FILES[case]
    monkeypatch.chdir(files)
    (files / "out_dir").mkdir(exist_ok=True)
    before = sorted(p.name for p in files.iterdir())
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1
    assert problem in one_line(result)
    assert sorted(p.name for p in files.iterdir()) == before  # nothing half-written
    assert not list((files / "out_dir").iterdir())
