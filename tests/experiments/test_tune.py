"""`tune`: a two-trial search on the tiny model that is interrupted and resumed, its outputs,
and the search space file's errors."""

import json
from pathlib import Path

import optuna
import pytest
import spacy
from spacy.tokens import DocBin
from thinc.api import Config
from typer.testing import CliRunner

from spacy_bert_ner.cli import app
from spacy_bert_ner.errors import BertNERError
from spacy_bert_ner.experiments.search_space import load_search_space
from spacy_bert_ner.experiments.tune import TuneEngine, TuneSettings, tune

from ..conftest import tiny_examples

REPO = Path(__file__).resolve().parents[2]
SPACE = """
training.optimizer.learn_rate.initial_rate: {low: 1e-5, high: 1e-2, log: true}
components.bert_ner.model.max_length: [32, 64, 128]
"""


@pytest.fixture
def search(tmp_path, tiny_bert):
    corpus = tmp_path / "tiny.spacy"
    DocBin(docs=[eg.reference for eg in tiny_examples(spacy.blank("en"))]).to_disk(corpus)
    (tmp_path / "space.yml").write_text(SPACE)
    overrides = {
        "paths.train": str(corpus),
        "paths.dev": str(corpus),
        "components.bert_ner.model.name": str(tiny_bert),
        "training.max_epochs": 10,
        "training.max_steps": 2,
        "training.eval_frequency": 1,
    }
    return tmp_path, overrides


def test_two_trial_search_resumes_an_interrupted_trial(search):
    root, overrides = search
    config, space, out = REPO / "configs" / "cpu.cfg", root / "space.yml", root / "tune"
    [first] = tune(config, space, out, TuneSettings(trials=1), overrides)
    # trial 0 is the config's own values: the baseline the search is measured against
    own = Config().from_disk(config, interpolate=False)
    assert first.params == {
        "training.optimizer.learn_rate.initial_rate": own["training"]["optimizer"]["learn_rate"][
            "initial_rate"
        ],
        "components.bert_ner.model.max_length": own["components"]["bert_ner"]["model"][
            "max_length"
        ],
    }
    assert first.state == "COMPLETE" and len(first.scores) == 3  # evaluations at 0, 1, 2
    # A second run killed during its trial leaves it RUNNING in the study.
    study = optuna.load_study(study_name="bert_ner", storage=f"sqlite:///{out / 'study.db'}")
    killed = study.ask(load_search_space(space))
    records = tune(config, space, out, TuneSettings(trials=2), overrides)
    assert [r.state for r in records] == ["COMPLETE", "FAIL", "COMPLETE"]
    assert records[2].params == killed.params  # run again with the same values
    assert json.loads((out / "trials.json").read_text())[2]["params"] == killed.params
    best = max((r for r in records if r.state == "COMPLETE"), key=lambda r: r.score)
    written = Config().from_disk(out / "best.cfg", interpolate=False)
    lr = written["training"]["optimizer"]["learn_rate"]["initial_rate"]
    assert lr == best.params["training.optimizer.learn_rate.initial_rate"]
    assert written["training"]["max_steps"] == 0  # the budget overrides stay out of best.cfg
    assert (out / "search.png").stat().st_size > 0
    # A third run with nothing left to do changes nothing.
    assert len(tune(config, space, out, TuneSettings(trials=2), overrides)) == 3


def test_command_takes_config_overrides(search):
    root, overrides = search
    args = [f"--{key}={value}" for key, value in overrides.items()]
    result = CliRunner().invoke(
        app,
        ["tune", str(REPO / "configs" / "cpu.cfg"), "--space", str(root / "space.yml"),
         "--output", str(root / "cli"), "--trials", "1", "--no-prune", *args],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "best: trial 0" in result.output
    assert (root / "cli" / "best.cfg").exists()


@pytest.mark.parametrize(
    "text, problem",
    [
        ("training.dropout: {low: 0.3, high: 0.1}", "must be below high"),
        ("dropout: [0.1, 0.2]", "expected a dotted config key"),
        ("training.dropout: {low: a, high: 0.2}", "must be numbers"),
        ("training.dropout: 0.1", "expected a list of values or a mapping"),
        ("- a\n- b", "expected a mapping"),
    ],
)
def test_bad_search_space_is_one_line_naming_the_file(tmp_path, text, problem):
    (tmp_path / "space.yml").write_text(text)
    with pytest.raises(BertNERError, match=problem) as err:
        load_search_space(tmp_path / "space.yml")
    assert str(err.value).startswith(str(tmp_path / "space.yml"))


def test_a_key_the_config_lacks_is_refused_before_any_trial(tmp_path):
    (tmp_path / "space.yml").write_text("training.no_such_key.rate: [1, 2]")
    with pytest.raises(BertNERError, match="not a key of"):
        tune(REPO / "configs" / "cpu.cfg", tmp_path / "space.yml", tmp_path, TuneSettings())


def test_settings_take_the_engine_by_name_and_refuse_an_unknown_one():
    assert TuneSettings(engine="Ray").engine is TuneEngine.ray
    with pytest.raises(BertNERError, match="unknown engine 'spark': use one of optuna, ray"):
        TuneSettings(engine="spark")


@pytest.mark.slow
def test_ray_engine_runs_the_same_trials(search, monkeypatch):
    pytest.importorskip("ray.tune")
    root, overrides = search
    # Ray's workers import this checkout's package, as the driver does.
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    settings = TuneSettings(trials=2, engine=TuneEngine.ray, workers=2)
    records = tune(REPO / "configs" / "cpu.cfg", root / "space.yml", root / "ray", settings,
                   overrides)  # fmt: skip
    assert [r.state for r in records] == ["COMPLETE", "COMPLETE"]
    assert all(len(r.scores) == 3 and r.score == max(r.scores) for r in records)
    assert {r.params["components.bert_ner.model.max_length"] for r in records} <= {32, 64, 128}
    assert (root / "ray" / "best.cfg").exists() and (root / "ray" / "search.png").exists()
