"""The annotation loop through a real Label Studio: `select` writes tasks, Label Studio (on a
loopback port, SQLite in a temporary directory) takes them with their predictions through
label-studio-sdk, an annotator's answers go in through its API, its JSON export comes back
through `import-annotations`, and one `continual` step trains on the result.

Label Studio pins its own versions of Django, numpy and more, so it lives in a venv of its own
(`.ci/run` makes it): the test finds its `label-studio` script in $LABEL_STUDIO_BIN, else on
PATH, and runs the SDK with that venv's Python. Without it the test is skipped, except under
CI, where it fails.
"""

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import spacy
from spacy.training import Example
from typer.testing import CliRunner

from spacy_bert_ner.cli import app
from spacy_bert_ner.conll import load_gold_docs
from spacy_bert_ner.experiments.continual import ContinualSettings, continue_training

pytestmark = [pytest.mark.slow, pytest.mark.integration]

TOKEN = "bertnerroundtrip0123456789abcdef"
CLIENT = Path(__file__).with_name("label_studio_client.py")
#: The documents and what the annotator marks in each (None: the annotator skips it), in the
#: labels of the tiny pipeline's labelling config (LOC, PER).
GOLD = {
    "Angela Merkel met Emmanuel Macron in Paris .": [("Angela Merkel", "PER"),
                                                      ("Emmanuel Macron", "PER"), ("Paris", "LOC")],
    "Officials in Brussels agreed with Germany .": [("Brussels", "LOC"), ("Germany", "LOC")],
    "nothing much happened here today": [],
    "Berlin welcomed the visitors from Madrid": None,
    "The company hired Maria Lopez in Lisbon": [("Maria Lopez", "PER"), ("Lisbon", "LOC")],
    "the the the": [],
}  # fmt: skip
#: A careless highlight: "Rom" of "Rome", which must cost the task, not the entity.
MISALIGNED = "Peace talks in Rome stalled"


def label_studio_bin() -> Path:
    found = os.environ.get("LABEL_STUDIO_BIN") or shutil.which("label-studio")
    if not found or not Path(found).is_file():
        problem = "needs Label Studio in a venv of its own: set LABEL_STUDIO_BIN (see .ci/run)"
        if os.environ.get("CI"):
            pytest.fail(problem)
        pytest.skip(problem)
    return Path(found)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def label_studio(tmp_path):
    """The URL of a Label Studio started for this test; stopped (its process group) after."""
    script = label_studio_bin()
    port, data = free_port(), tmp_path / "label-studio"
    log = (tmp_path / "label-studio.log").open("wb")
    command = [str(script), "start", "--no-browser", "--data-dir", str(data),
               "--port", str(port), "--internal-host", "127.0.0.1",
               "--username", "annotator@example.com", "--password", "roundtrip-pass",
               "--user-token", TOKEN, "--enable-legacy-api-token"]  # fmt: skip
    env = {**os.environ, "LABEL_STUDIO_BASE_DATA_DIR": str(data), "DJANGO_DB": "sqlite"}
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                              start_new_session=True)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240
        while not _healthy(url):
            if server.poll() is not None or time.monotonic() > deadline:
                tail = (tmp_path / "label-studio.log").read_text()[-3000:]
                pytest.fail(f"Label Studio did not start:\n{tail}")
            time.sleep(1)
        yield url, script.parent / "python"
    finally:
        _stop(server)
        log.close()


def _stop(server: subprocess.Popen) -> None:
    """Stop the server's process group; a server that already died (it failed to start) has none."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def answer(text: str) -> dict:
    if text == MISALIGNED:
        return {"cancel": False, "spans": [[15, 18, "LOC"]]}
    spans = GOLD[text]
    if spans is None:
        return {"cancel": True, "spans": []}
    return {"cancel": False, "spans": [[text.index(word), text.index(word) + len(word), label]
                                       for word, label in spans]}  # fmt: skip


def test_select_annotate_in_label_studio_import_and_continue(label_studio, trained_tiny, tmp_path):
    url, python = label_studio
    texts = [*GOLD, MISALIGNED]
    records = tmp_path / "texts.jsonl"
    records.write_text(
        "".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(texts))
    )
    tasks = tmp_path / "tasks.json"
    result = CliRunner().invoke(app, ["select", str(trained_tiny), str(records), str(tasks),
                                      "-n", str(len(texts))])  # fmt: skip
    assert result.exit_code == 0, result.output
    (tmp_path / "answers.json").write_text(json.dumps({t: answer(t) for t in texts}))
    export = tmp_path / "export.json"
    client = subprocess.run(
        [str(python), str(CLIENT), url, TOKEN, str(tasks), str(tasks.with_suffix(".xml")),
         str(tmp_path / "answers.json"), str(export)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert client.returncode == 0, client.stderr[-3000:]
    summary = json.loads(client.stdout.strip().splitlines()[-1])
    assert summary["tasks"] == len(texts)
    assert summary["predictions"] == len(texts)  # each task arrived with its pre-annotations

    corpus = tmp_path / "corrected.spacy"
    result = CliRunner().invoke(app, ["import-annotations", str(export), str(corpus)])
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert "cancelled" in output and "'Rom'" in output and "2 tasks left out" in output
    nlp = spacy.load(trained_tiny)
    docs = load_gold_docs(corpus, nlp.vocab)
    expected = {t: spans for t, spans in GOLD.items() if spans is not None}
    assert {doc.text: [(e.text, e.label_) for e in doc.ents] for doc in docs} == expected

    examples = [Example(nlp.make_doc(doc.text), doc) for doc in docs]
    # Two passes in small batches, with the pipeline's own recipe at a peak rate of 1e-3.
    settings = ContinualSettings(new_type="PER", epochs=2, words_per_batch=16, learn_rate=1e-3)
    before = nlp.get_pipe("bert_ner").predict([nlp.make_doc(texts[0])])[0].copy()
    seconds, steps, losses = continue_training(nlp, examples, examples, settings)
    after = nlp.get_pipe("bert_ner").predict([nlp.make_doc(texts[0])])[0]
    assert steps >= 1 and losses["bert_ner"] > 0 and (before != after).any()
    print(f"round trip continual step: {steps} updates in {seconds:.1f} s", file=sys.stderr)
