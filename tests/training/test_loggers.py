"""The training logger: spaCy's console, or MLflow through spacy-loggers, with bert_ner's own
figures. MLflow writes to a local SQLite store: no server, no network."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import spacy
from spacy.tokens import DocBin
from thinc.api import Adam, Config

from spacy_bert_ner.errors import BertNERError
from spacy_bert_ner.training.loggers import ComponentFigures, make_training_logger

from ..conftest import tiny_examples

REPO = Path(__file__).resolve().parents[2]
# Run from a temporary directory (MLflow puts artifacts in ./mlruns) on this checkout's code.
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "tiny.spacy"
    DocBin(docs=[eg.reference for eg in tiny_examples(spacy.blank("en"))]).to_disk(path)
    return path


@pytest.mark.slow
def test_a_short_run_leaves_metrics_figures_and_config_in_mlflows_local_store(
    tiny_bert, tiny_corpus, tmp_path
):
    mlflow = pytest.importorskip("mlflow")
    config = Config().from_disk(REPO / "configs" / "cpu.cfg", interpolate=False)
    assert config["training"]["logger"]["@loggers"] == "spacy_bert_ner.TrainingLogger.v1"
    config.to_disk(tmp_path / "train.cfg")
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    out = subprocess.run(
        [
            sys.executable, "-m", "spacy", "train", str(tmp_path / "train.cfg"),
            "--output", str(tmp_path / "out"),
            f"--paths.train={tiny_corpus}", f"--paths.dev={tiny_corpus}",
            f"--components.bert_ner.model.name={tiny_bert}",
            "--training.max_epochs=10", "--training.max_steps=4", "--training.eval_frequency=2",
            "--training.logger.tracker=mlflow",
            f"--training.logger.mlflow_tracking_uri={store}",
            "--training.logger.project=tiny", "--training.logger.run_name=short",
        ],
        cwd=tmp_path, env=ENV, capture_output=True, text=True,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    client = mlflow.tracking.MlflowClient(tracking_uri=store)
    experiment = client.get_experiment_by_name("tiny")
    [run] = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == "short"
    assert run.data.params["training.max_steps"] == "4"
    assert run.data.params["components.bert_ner.model.head_lr_scale"] == "100.0"
    metrics = run.data.metrics
    assert {"score", "ents_f", "loss_bert_ner"} <= set(metrics)
    assert metrics["bert_ner.skipped_gold"] == 0.0
    assert metrics["bert_ner.words_per_second"] > 0
    encoder = client.get_metric_history(run.info.run_id, "bert_ner.learn_rate.encoder")
    assert len(encoder) == 3  # evaluations at steps 0, 2 and 4
    head = client.get_metric_history(run.info.run_id, "bert_ner.learn_rate.head")
    assert [h.value for h in head] == pytest.approx([100 * e.value for e in encoder])
    # warm-up: the rate grows over the first steps of cpu.cfg's schedule
    assert encoder[0].value < encoder[-1].value


def test_figures_follow_the_schedule_throughput_and_skipped_gold(trained_tiny):
    nlp = spacy.load(trained_tiny)
    nlp.config["training"]["optimizer"] = {
        "learn_rate": {"@schedules": "warmup_linear.v1", "warmup_steps": 2,
                       "total_steps": 10, "initial_rate": 1e-3},
    }  # fmt: skip
    figures = ComponentFigures(nlp)
    assert "bert_ner.words_per_second" not in figures({"step": 0})  # nothing trained yet
    examples = tiny_examples(nlp)
    nlp.update(examples, sgd=Adam(1e-3))
    first, second = figures({"step": 1}), figures({"step": 2})
    assert first["bert_ner.learn_rate.encoder"] == pytest.approx(5e-4)
    assert second["bert_ner.learn_rate.encoder"] == pytest.approx(1e-3)
    assert first["bert_ner.learn_rate.head"] == pytest.approx(5e-4)  # head_lr_scale 1
    assert first["bert_ner.skipped_gold"] == 0.0
    pipe = nlp.get_pipe("bert_ner")
    assert pipe.throughput.words == sum(len(eg.predicted) for eg in examples)
    assert first["bert_ner.words_per_second"] == pytest.approx(
        pipe.throughput.words / pipe.throughput.seconds
    )


def test_unknown_tracker_is_one_line():
    with pytest.raises(BertNERError, match="tracker must be one of"):
        make_training_logger(tracker="tensorboard")
