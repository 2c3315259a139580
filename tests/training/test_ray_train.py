"""`train --workers N` end to end on Ray Train: a killed worker's group resumes from its last
checkpoint and finishes; set-ups that cannot run fail in one line. One local Ray (2 CPUs)
serves the module."""

import os
import signal
import threading
import time
from itertools import pairwise
from pathlib import Path

import psutil
import pytest
import spacy
from typer.testing import CliRunner

from spacy_bert_ner.cli import app
from spacy_bert_ner.errors import BertNERError

from .distributed_setup import ROWS, make_config, without_dropout, write_corpus

# Every test here starts a Ray cluster and Ray Train workers.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ray_session():
    pytest.importorskip("ray.train")
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def setup(tiny_bert: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("ray_train")
    return without_dropout(tiny_bert, tmp / "model"), write_corpus(tmp / "train.spacy", ROWS)


def write_config(tmp_path: Path, model: Path, corpus: Path, **training: object) -> Path:
    path = tmp_path / "config.cfg"
    make_config(model, corpus, **training).to_disk(path)
    return path


def train_workers() -> list[psutil.Process]:
    """The processes of this test's Ray Train workers (named by Ray after their actor)."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if any("RayTrainWorker" in part for part in process.info["cmdline"] or []):
            found.append(process)
    return found


def kill_a_worker_after_some_checkpoints(storage: Path, killed: list[int]) -> None:
    """Three on disk and 2 s more, so that Ray Train has registered one when the worker dies
    (killed before that, the group restarts from scratch: right, but not what is tested)."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and len(list(storage.glob("*/checkpoint_*"))) < 3:
        time.sleep(0.1)
    time.sleep(2)
    workers = train_workers()
    if workers:
        os.kill(workers[-1].pid, signal.SIGKILL)  # a process this test's run started
        killed.append(workers[-1].pid)


def test_a_killed_worker_resumes_from_its_checkpoint(ray_session, setup, tmp_path: Path) -> None:
    from spacy_bert_ner.training.ray_train import train_on_ray

    model, corpus = setup
    config = write_config(tmp_path, model, corpus, max_steps=120, eval_frequency=10, max_epochs=-1)
    output, killed = tmp_path / "out", []
    killer = threading.Thread(
        target=kill_a_worker_after_some_checkpoints, args=(output / "ray", killed)
    )
    killer.start()
    result = train_on_ray(config, output, {}, workers=2, max_failures=2)
    killer.join()
    assert killed, "no Ray Train worker was found to kill"
    steps = [metrics["step"] for _, metrics in result.best_checkpoints]
    # Numbered on from the checkpoint: no step twice, and the resumed run's first step is
    # the one after the checkpoint's (evaluations are otherwise 10 steps apart).
    assert steps == sorted(set(steps)) and steps[-1] >= 110
    assert any(b - a == 1 for a, b in pairwise(steps)), steps
    nlp = spacy.load(output / "model-best")
    doc = nlp("angela merkel met macron in paris")
    assert all(ent.label_ in {"PER", "LOC"} for ent in doc.ents)
    saved = (output / "model-best" / "config.cfg").read_text()
    assert "Shard" not in saved and "WorkerBatches" not in saved  # the user's config


def test_more_workers_than_the_cluster_has_fails_in_one_line(ray_session, setup, tmp_path) -> None:
    from spacy_bert_ner.training.ray_train import train_on_ray

    config = write_config(tmp_path, *setup)
    with pytest.raises(BertNERError, match=r"^train: 3 workers x 1 CPUs need 3 CPUs; .* has 2"):
        train_on_ray(config, tmp_path / "out", {}, workers=3)
    with pytest.raises(BertNERError, match=r"^train: --gpus-per-worker 1.0 but .* no GPUs"):
        train_on_ray(config, tmp_path / "out", {}, workers=1, gpus_per_worker=1.0)


def test_a_corpus_smaller_than_the_group_fails_in_one_line(ray_session, setup, tmp_path) -> None:
    from spacy_bert_ner.training.ray_train import train_on_ray

    model, _ = setup
    config = write_config(tmp_path, model, write_corpus(tmp_path / "one.spacy", ROWS[:1]))
    with pytest.raises(BertNERError, match="holds 1 examples, fewer than the 2 workers"):
        train_on_ray(config, tmp_path / "out", {}, workers=2, max_failures=0)


def test_the_command_says_what_the_cluster_lacks_in_one_line(ray_session, setup, tmp_path) -> None:
    config = write_config(tmp_path, *setup)
    args = ["train", str(config), str(tmp_path / "out"), "--workers", "3"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and "need 3 CPUs" in result.output, result.output


def test_one_worker_is_spacy_train(setup, tmp_path: Path) -> None:
    config = write_config(tmp_path, *setup)
    args = ["train", str(config), str(tmp_path / "out"), "--training.max_steps", "2"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "Training pipeline" in result.output  # spacy train's own divider
    assert spacy.load(tmp_path / "out" / "model-last").pipe_names == ["bert_ner"]
