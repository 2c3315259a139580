"""`optimize` on the tiny model: the table, the copy it saves and the path that copy runs, the
agreement floor, the refusals, and no half-written output. No speed is asserted here: the
timing is replaced where a test needs one path to be faster (see benchmarks/ for speed)."""

from pathlib import Path

import pytest
import spacy
from spacy.language import Language
from typer.testing import CliRunner

from spacy_bert_ner.cli import app
from spacy_bert_ner.errors import BertNERError
from spacy_bert_ner.models import runtime
from spacy_bert_ner.pipeline import inference_paths, optimize
from spacy_bert_ner.pipeline.inference_paths import ORT_FP32, TORCH_BF16, TORCH_FP32, path_in_use
from spacy_bert_ner.pipeline.optimize import optimize_pipeline, read_texts

TEXTS = ["Angela Merkel met Emmanuel Macron in Paris.", "Berlin is in Germany."] * 4


@pytest.fixture
def cpu_has_bf16(monkeypatch):
    monkeypatch.setattr(runtime, "cpu_bf16_kind", lambda: "avx512_bf16")
    monkeypatch.setattr(inference_paths, "cpu_bf16_kind", lambda: "avx512_bf16")
    monkeypatch.setattr(optimize, "cpu_bf16_kind", lambda: "avx512_bf16")


def fake_timing(monkeypatch, words_per_text: dict, moved: dict):
    """Time each path as `words_per_text` seconds per text, and move the first entity of the
    first `moved[path]` texts, so the tests choose which path is fast and which agrees."""
    real = optimize._time_rounds

    def timed(pipelines, texts, rounds):
        _, entities = real(pipelines, texts, 1)
        seconds = {path: [words_per_text[path] * len(texts)] * rounds for path in pipelines}
        for path, n in moved.items():
            entities[path] = [
                frozenset({(0, 1, "MOVED")}) if i < n else ents
                for i, ents in enumerate(entities[path])
            ]
        return seconds, entities

    monkeypatch.setattr(optimize, "_time_rounds", timed)


def test_the_built_in_texts_are_a_few_hundred_sentences():
    texts = read_texts(None)
    assert 200 <= len(texts) <= 1000
    assert len(set(texts)) == len(texts)


def test_optimize_prints_the_table_and_saves_a_copy_that_runs_the_path(
    trained_tiny, tmp_path, cpu_has_bf16
):
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(TEXTS) + "\n\n", encoding="utf8")
    output = tmp_path / "fast"
    result = CliRunner().invoke(
        app, ["optimize", str(trained_tiny), str(output), "--texts", str(texts), "--rounds", "1"]
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "(bf16 instructions: avx512_bf16)" in lines[0]
    assert lines[1].startswith(f"{len(TEXTS)} texts")
    assert runtime.cpu_name() in lines[0]
    table = "\n".join(lines)
    for path in ("torch fp32", "torch bf16", "onnxruntime fp32"):
        assert path in table
    assert "torch int8" not in table and "onnxruntime int8" not in table
    assert "x torch fp32" in table and "agreement" in table
    chosen = next(line for line in lines if "<-" in line).split()[0:2]
    assert lines[-1].startswith(f"\u2714 {output}: runs {' '.join(chosen)}")
    backend, precision = chosen
    config = spacy.util.load_config(output / "config.cfg")["components"]["bert_ner"]["model"]
    assert (config["backend"], config["precision"]) == (backend, precision)
    # No flag: the saved config alone runs the path (serve and annotate load it the same way).
    assert (
        path_in_use(spacy.load(output))
        == f"bert_ner: {backend} {precision} (precision {precision})"
    )


@pytest.mark.parametrize(
    ("moved", "floor", "picked"),
    [
        ({}, 0.99, ORT_FP32),  # the fastest, agreeing on every text
        ({ORT_FP32: 1}, 0.99, TORCH_BF16),  # 7 of 8 texts agree: below the floor
        ({ORT_FP32: 1}, 0.85, ORT_FP32),  # 0.875 >= a lower floor
        ({ORT_FP32: 8, TORCH_BF16: 8}, 0.0, ORT_FP32),  # a floor of 0 takes the fastest
        ({ORT_FP32: 1, TORCH_BF16: 1}, 1.0, TORCH_FP32),  # fp32 always agrees with itself
    ],
)
def test_a_path_below_the_agreement_floor_is_not_picked(
    trained_tiny, tmp_path, monkeypatch, cpu_has_bf16, moved, floor, picked
):
    fake_timing(monkeypatch, {TORCH_FP32: 3.0, TORCH_BF16: 2.0, ORT_FP32: 1.0}, moved)
    output = tmp_path / "fast"
    optimized = optimize_pipeline(str(trained_tiny), output, texts=TEXTS, min_agreement=floor)
    assert optimized.chosen.path == picked
    speeds = {m.path: m.words_per_s for m in optimized.measured}
    assert speeds[ORT_FP32] == pytest.approx(3 * speeds[TORCH_FP32])
    saved = spacy.util.load_config(output / "config.cfg")["components"]["bert_ner"]["model"]
    assert (saved["backend"], saved["precision"]) == (picked.backend, picked.precision)


def test_lossy_measures_int8_too(trained_tiny, tmp_path, cpu_has_bf16):
    optimized = optimize_pipeline(
        str(trained_tiny), tmp_path / "out", texts=TEXTS, lossy=True, rounds=1
    )
    names = [m.path.name for m in optimized.measured]
    assert names == [
        "torch fp32",
        "torch bf16",
        "onnxruntime fp32",
        "torch int8",
        "onnxruntime int8",
    ]
    assert next(m for m in optimized.measured if m.path == TORCH_FP32).agreement == 1.0


def one_line(result) -> str:
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("\u2718 ")
    assert result.exit_code == 1
    return lines[0]


def test_a_model_it_cannot_load_is_refused_in_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    for model in ("no/such/pipeline", str(tmp_path / "empty")):
        result = CliRunner().invoke(app, ["optimize", model, str(tmp_path / "out")])
        assert "model" in one_line(result)
        assert not (tmp_path / "out").exists()


def test_texts_it_cannot_read_are_refused_naming_the_file_and_line(trained_tiny, tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"Angela Merkel met Macron.\n\nParis \xff\xfe is big.\n")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n", encoding="utf8")
    cases = {
        bad: f"{bad}:3: not UTF-8 text",
        empty: f"{empty}: no texts",
        tmp_path / "missing.txt": f"{tmp_path / 'missing.txt'}: cannot read the texts",
    }
    for texts, message in cases.items():
        args = ["optimize", str(trained_tiny), str(tmp_path / "out"), "--texts", str(texts)]
        assert message in one_line(CliRunner().invoke(app, args))
    assert not (tmp_path / "out").exists()


def test_an_output_that_holds_files_is_refused_before_any_measurement(trained_tiny, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(BertNERError, match="exists and is not an empty directory"):
        optimize_pipeline(str(trained_tiny), tmp_path / "out", texts=TEXTS)
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"


def test_a_save_that_fails_midway_leaves_no_output(trained_tiny, tmp_path, monkeypatch):
    def half_save(self: Language, path: Path, **kwargs) -> None:
        (Path(path) / "meta.json").write_text("{}")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Language, "to_disk", half_save)
    with pytest.raises(BertNERError, match="No space left on device"):
        optimize_pipeline(str(trained_tiny), tmp_path / "out", texts=TEXTS, rounds=1)
    assert list(tmp_path.iterdir()) == []
