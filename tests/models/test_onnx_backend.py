"""The onnxruntime backend: the same entities as torch, a graph saved and checked against its
weights, its thread setting, and the export-onnx command. No timing here (see benchmarks/)."""

import copy
import logging
import pickle
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import spacy
import torch
from spacy.tokens import Doc
from typer.testing import CliRunner

from spacy_bert_ner.cli import app
from spacy_bert_ner.errors import BertNERError, ModelLoadError
from spacy_bert_ner.models.model_api import describe_model, make_ready
from spacy_bert_ner.models.onnx_backend import GRAPH_FILE, INT8_GRAPH_FILE
from spacy_bert_ner.pipeline.export import export_onnx_pipeline

from ..conftest import write_tiny_bert
from .test_speed_correctness import _ents, _mixed_length_words, _nlp

pytest.importorskip("onnxruntime")

WINDOWS = {"max_length": 32, "stride": 8, "window_batch_size": 3}


def _tags(docs: list[Doc]) -> list[str]:
    return [f"{t.ent_iob_}-{t.ent_type_}" if t.ent_type_ else "O" for doc in docs for t in doc]


def _run(nlp: spacy.Language, words: list[list[str]], batch_size: int = 8) -> list[Doc]:
    return list(nlp.pipe([Doc(nlp.vocab, words=w) for w in words], batch_size=batch_size))


def _session(nlp: spacy.Language) -> Any:
    pipe: Any = nlp.get_pipe("bert_ner")
    make_ready(pipe.model)
    return pipe.model.layers[0].attrs["session"]


@pytest.fixture(scope="module")
def other_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model's twin with other random weights: same shapes, other graph."""
    return write_tiny_bert(tmp_path_factory.mktemp("other_bert"), seed=1)


def test_onnxruntime_gives_torch_entities_and_scores_at_every_pipe_batch(tiny_bert: Path) -> None:
    # Held-apart docs (not what the other tests use), several windows each, mixed in batches.
    words = _mixed_length_words(seed=7)
    torch_nlp = _nlp(tiny_bert, **WINDOWS)
    ort_nlp = _nlp(tiny_bert, backend="onnxruntime", **WINDOWS)
    expected = _run(torch_nlp, words)
    assert sum(len(doc.ents) for doc in expected) >= 10
    for batch_size in (1, 5, 64):
        got = _run(ort_nlp, words, batch_size)
        assert [doc.text for doc in got] == [doc.text for doc in expected]
        assert _tags(got) == _tags(expected), f"batch_size={batch_size}"
        assert [e._.bert_ner_score for d in got for e in d.ents] == pytest.approx(
            [e._.bert_ner_score for d in expected for e in d.ents], abs=1e-4
        )


def test_onnxruntime_int8_agrees_with_fp32(tiny_bert: Path) -> None:
    # The tolerance of test_speed_correctness.test_int8_agrees_with_fp32 (torch int8).
    words = _mixed_length_words(seed=2)
    fp32 = _run(_nlp(tiny_bert, window_batch_size=8), words)
    int8 = _run(_nlp(tiny_bert, window_batch_size=8, backend="onnxruntime", int8=True), words)
    pairs = list(zip(_tags(fp32), _tags(int8), strict=True))
    assert sum(a == b for a, b in pairs) / len(pairs) >= 0.9
    fp32_ents = {(i, *e) for i, doc in enumerate(fp32) for e in _ents(doc)}
    int8_ents = {(i, *e) for i, doc in enumerate(int8) for e in _ents(doc)}
    assert fp32_ents
    assert len(fp32_ents & int8_ents) / max(len(fp32_ents), len(int8_ents)) >= 0.75


@pytest.mark.parametrize("int8", [False, True])
def test_saved_graph_is_loaded_not_exported_again(
    tiny_bert: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, int8: bool
) -> None:
    nlp = _nlp(tiny_bert, backend="onnxruntime", int8=int8)
    words = _mixed_length_words(seed=3)
    before = [_ents(doc) for doc in _run(nlp, words)]
    nlp.to_disk(tmp_path / "pipeline")
    model_dir = tmp_path / "pipeline" / "bert_ner" / "model"
    assert (model_dir / (INT8_GRAPH_FILE if int8 else GRAPH_FILE)).is_file()
    assert (model_dir / "model.safetensors").is_file()

    def no_export(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("exported again")

    monkeypatch.setattr("spacy_bert_ner.models.onnx_backend.export_graph", no_export)
    loaded = spacy.load(tmp_path / "pipeline")
    assert _session(loaded).graph == model_dir / (INT8_GRAPH_FILE if int8 else GRAPH_FILE)
    assert [_ents(doc) for doc in _run(loaded, words)] == before


def test_a_graph_of_other_weights_is_refused_naming_the_file(
    tiny_bert: Path, other_bert: Path, tmp_path: Path
) -> None:
    _nlp(tiny_bert, backend="onnxruntime").to_disk(tmp_path / "mine")
    _nlp(other_bert, backend="onnxruntime").to_disk(tmp_path / "other")
    graph = tmp_path / "mine" / "bert_ner" / "model" / GRAPH_FILE
    shutil.copy(tmp_path / "other" / "bert_ner" / "model" / GRAPH_FILE, graph)
    with pytest.raises(ModelLoadError, match="not exported from the weights") as err:
        spacy.load(tmp_path / "mine")
    assert str(graph) in str(err.value)
    assert "\n" not in str(err.value)


def test_a_damaged_graph_is_refused_naming_the_file(tiny_bert: Path, tmp_path: Path) -> None:
    _nlp(tiny_bert, backend="onnxruntime").to_disk(tmp_path / "pipeline")
    graph = tmp_path / "pipeline" / "bert_ner" / "model" / GRAPH_FILE
    graph.write_bytes(graph.read_bytes()[: graph.stat().st_size // 2])
    with pytest.raises(ModelLoadError, match="not a usable ONNX graph") as err:
        spacy.load(tmp_path / "pipeline")
    assert str(graph) in str(err.value)


def test_a_torch_pipeline_loads_on_onnxruntime_by_config(trained_tiny: Path) -> None:
    """No graph saved: the loaded weights are exported (locally) instead."""
    override = {"components.bert_ner.model.backend": "onnxruntime"}
    words = _mixed_length_words(seed=4)
    expected = _tags(_run(spacy.load(trained_tiny), words))
    assert _tags(_run(spacy.load(trained_tiny, config=override), words)) == expected


def test_a_pickled_copied_or_bytes_loaded_pipeline_carries_its_graph(
    trained_tiny: Path, tmp_path: Path
) -> None:
    """The session is not pickled but its graph is; a pipe read from bytes reads its graph
    from a temporary directory that is gone once it is loaded, so it keeps the graph."""
    override = {"components.bert_ner.model.backend": "onnxruntime"}
    nlp = spacy.load(trained_tiny, config=override)
    words = _mixed_length_words(seed=6)
    expected = _tags(_run(nlp, words))
    for other in (pickle.loads(pickle.dumps(nlp)), copy.deepcopy(nlp)):
        assert _tags(_run(other, words)) == expected
    from_bytes = spacy.load(trained_tiny, config=override).from_bytes(nlp.to_bytes())
    from_bytes.to_disk(tmp_path / "again")
    assert (tmp_path / "again" / "bert_ner" / "model" / GRAPH_FILE).is_file()
    assert _tags(_run(spacy.load(tmp_path / "again"), words)) == expected


def test_threads_come_from_the_setting_or_from_torch(tiny_bert: Path) -> None:
    one = _session(_nlp(tiny_bert, backend="onnxruntime", threads=1))
    assert one.session().get_session_options().intra_op_num_threads == 1
    default = _session(_nlp(tiny_bert, backend="onnxruntime"))
    options = default.session().get_session_options()
    assert options.intra_op_num_threads == torch.get_num_threads()
    assert options.inter_op_num_threads == 1


def test_forked_workers_stop_with_an_error_instead_of_hanging(tiny_bert: Path) -> None:
    nlp = _nlp(tiny_bert, backend="onnxruntime", **WINDOWS)
    words = _mixed_length_words(seed=5)
    _run(nlp, words)
    docs = [Doc(nlp.vocab, words=w) for w in words]
    with pytest.raises(ValueError, match="cannot run in a process forked"):  # spaCy wraps it
        list(nlp.pipe(docs, batch_size=4, n_process=2))


def test_onnxruntime_refuses_training_and_unknown_backends(tiny_bert: Path) -> None:
    nlp = _nlp(tiny_bert, backend="onnxruntime")
    pipe: Any = nlp.get_pipe("bert_ner")
    with pytest.raises(BertNERError, match="inference only"):
        pipe.model.begin_update([nlp.make_doc("angela merkel in paris")])
    with pytest.raises(BertNERError, match="unknown backend 'tensorrt'"):
        _nlp(tiny_bert, backend="tensorrt")


@pytest.mark.slow
def test_export_onnx_command_writes_a_pipeline_that_loads_offline(
    trained_tiny: Path, tmp_path: Path
) -> None:
    runner = CliRunner()
    output = tmp_path / "ort"
    result = runner.invoke(app, ["export-onnx", str(trained_tiny), str(output), "--int8"])
    assert result.exit_code == 0, result.output
    assert (output / "bert_ner" / "model" / INT8_GRAPH_FILE).is_file()
    again = runner.invoke(app, ["export-onnx", str(trained_tiny), str(output)])
    assert again.exit_code == 1 and "not empty" in again.output
    # A package built from it, loaded in a fresh interpreter with the network refused.
    packages = tmp_path / "packages"
    packages.mkdir()
    subprocess.run(
        [sys.executable, "-m", "spacy", "package", str(output), str(packages)]
        + ["--name", "ort_tiny", "--version", "0.0.1", "--build", "none"],
        check=True,
        capture_output=True,
    )
    package_dir = packages / "en_ort_tiny-0.0.1"
    # What the package's setup.py does when it builds the wheel (not built here: slow).
    shutil.copy(package_dir / "meta.json", package_dir / "en_ort_tiny" / "meta.json")
    code = (
        "import socket, sys\n"
        "def refuse(*a, **k): raise RuntimeError('network used')\n"
        "socket.socket.connect = refuse; socket.create_connection = refuse\n"
        f"sys.path.insert(0, {str(package_dir)!r})\n"
        "import en_ort_tiny\n"
        "nlp = en_ort_tiny.load()\n"
        "from spacy_bert_ner.models.model_api import make_ready\n"
        "pipe = nlp.get_pipe('bert_ner'); make_ready(pipe.model)\n"
        "session = pipe.model.layers[0].attrs['session']\n"
        "print(session.graph.name, len(nlp('angela merkel met macron in paris')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == [INT8_GRAPH_FILE, "6"]


def test_export_onnx_runs_a_bf16_pipeline_in_fp32_and_says_so(
    trained_tiny: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spacy.load(trained_tiny, config={"components.bert_ner.model.precision": "bf16"}).to_disk(
        tmp_path / "bf16"
    )
    with caplog.at_level(logging.WARNING):
        names = export_onnx_pipeline(str(tmp_path / "bf16"), tmp_path / "ort")
    assert names == ["bert_ner"]
    assert "bert_ner: ONNX Runtime runs fp32 or int8, not bf16" in caplog.text
    described = describe_model(spacy.load(tmp_path / "ort").get_pipe("bert_ner").model)
    assert (described["precision"], described["runtime_precision"]) == ("fp32", "fp32")
