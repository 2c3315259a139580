"""The service as Label Studio's ML backend, against a real Label Studio: a project connects our
service (`serve --label-studio`, with the API key as Basic authentication's password), Label
Studio retrieves its predictions (our entities, offsets, labels and scores, with the model
version), the annotator's answers reach the backend through the webhook Label Studio makes, a
new version is trained and swapped in, and Label Studio's next predictions come from it. A
project whose labels the pipeline does not predict cannot connect."""

import json
import subprocess
from pathlib import Path

import pytest
import spacy

from spacy_bert_ner.annotate.records import entity_records

from ..serve.conftest import API_KEY, start_service, stop_service
from .conftest import TOKEN

pytestmark = [pytest.mark.slow, pytest.mark.integration]

CLIENT = Path(__file__).with_name("label_studio_backend_client.py")
#: The tasks and the annotator's spans in each, in the tiny pipeline's labels (LOC, PER).
ANSWERS = {
    "angela merkel met macron in paris": [[0, 13, "PER"], [18, 24, "PER"], [28, 33, "LOC"]],
    "the berlin of angela": [[4, 10, "LOC"], [14, 20, "PER"]],
    "paris and berlin met merkel": [[0, 5, "LOC"], [10, 16, "LOC"], [21, 27, "PER"]],
}
CONFIG = """<View>
  <Labels name="label" toName="text"><Label value="PER"/><Label value="LOC"/></Labels>
  <Text name="text" value="$text"/>
</View>
"""


def test_label_studio_gets_predictions_and_its_annotations_train_a_new_version(
    label_studio, trained_tiny, tmp_path
):
    url, python = label_studio
    models = tmp_path / "models"
    log = tmp_path / "serve.log"
    options = [f"--label-studio={models}", f"--label-studio-every={len(ANSWERS)}"]
    service, process = start_service(trained_tiny, log, "local", *options)
    try:
        (tmp_path / "config.xml").write_text(CONFIG)
        (tmp_path / "answers.json").write_text(json.dumps(ANSWERS))
        client = subprocess.run(
            [str(python), str(CLIENT), url, TOKEN, f"{service.url}/label-studio", API_KEY,
             str(tmp_path / "config.xml"), str(tmp_path / "answers.json")],
            capture_output=True, text=True, timeout=900,
        )  # fmt: skip
        assert client.returncode == 0, client.stderr[-3000:] + log.read_text()[-3000:]
        summary = json.loads(client.stdout.strip().splitlines()[-1])
        with service.client() as http:
            records = http.post("/v1/entities", json={"texts": list(ANSWERS)}).json()["results"]
    finally:
        stop_service(process, log)
    first, version = summary["first_version"], summary["version"]
    assert version == f"{first}+ls1", log.read_text()[-3000:]
    nlp = spacy.load(trained_tiny)  # the first version; the service now serves the second
    entities = [entity_records(list(nlp(text).ents)) for text in ANSWERS]
    assert any(entities)
    for text, was, now in zip(ANSWERS, entities, records, strict=True):
        (prediction,) = summary["before"][text]
        assert prediction["model_version"] == first
        assert_regions_are(prediction, was)
        (updated,) = [p for p in summary["after"][text] if p["model_version"] == version]
        assert_regions_are(updated, now["entities"])
    assert (models / version / "config.cfg").exists()
    assert "ML backend" in summary["refusal"] and "422" in summary["refusal"]


def assert_regions_are(prediction: dict, entities: list[dict]) -> None:
    """Label Studio's prediction holds `entities` (records), their scores to the batch's last
    digit (a batch of other texts may change it), scored by the least certain."""
    regions = [r["value"] for r in prediction["result"]]
    assert [(r["start"], r["end"], r["labels"], r["text"]) for r in regions] == [
        (e["start_char"], e["end_char"], [e["label"]], e["text"]) for e in entities
    ]
    scores = [r["score"] for r in prediction["result"]]
    assert scores == pytest.approx([e["score"] for e in entities], abs=1e-3)
    assert prediction["score"] == pytest.approx(min(scores, default=1.0))
