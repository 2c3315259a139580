"""Label Studio's ML backend in process, over the trained tiny pipeline: the labelling config
mapped to our labels (unknown ones refused), predictions with Label Studio's regions, offsets,
labels and our scores, annotations from the webhook training a new version that is swapped in
and written next to the previous ones; every body it cannot take a 4xx, never a 500, and the
key accepted as Basic authentication's password (what Label Studio sends)."""

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from spacy_bert_ner.annotate.annotator import Annotator
from spacy_bert_ner.labelling.formats import labelling_config
from spacy_bert_ner.serve.app import build_app
from spacy_bert_ner.serve.label_studio import ner_config
from spacy_bert_ner.serve.label_studio_update import LabelStudioSettings
from spacy_bert_ner.serve.service import EntityService
from spacy_bert_ner.serve.settings import ServiceSettings

from .conftest import API_KEY
from .test_schemas import NOT_JSON
from .test_service import TEXTS

CONFIG = labelling_config(["PER", "LOC"])
#: Label Studio's own label names, mapped to ours by `predicted_values`.
NAMED = """<View>
  <Labels name="ner" toName="body"><Label value="Person" predicted_values="PER,PERSON"/>
    <Label value="Place" predicted_values="LOC"/></Labels>
  <Text name="body" value="$sentence"/>
</View>"""
BASIC = "Basic " + base64.b64encode(f"anyone:{API_KEY}".encode()).decode()
Client = httpx.AsyncClient


def run(annotator: Annotator, models: Path, steps: Callable[[Client], Awaitable[Any]]) -> Any:
    """`steps` against the app with the backend, over a service of its own, in one event loop
    (an update ends on it). Label Studio authenticates with Basic authentication."""

    async def send() -> Any:
        settings = LabelStudioSettings(models, update_every=2, epochs=1)
        app = build_app(service, "tiny", api_key=API_KEY, label_studio=settings)
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": BASIC}
        async with Client(transport=transport, base_url="http://t", headers=headers) as client:
            return await steps(client)

    service = EntityService(annotator, ServiceSettings(max_texts=2), metrics=True)
    service.ready = True
    try:
        return asyncio.run(send())
    finally:
        service.close()


@pytest.fixture(scope="module")
def annotator(trained_tiny: Path) -> Annotator:
    return Annotator.load(str(trained_tiny))


def test_a_config_maps_its_labels_to_ours_by_value_or_predicted_values():
    plain = ner_config(CONFIG, ["LOC", "PER"])
    assert (plain.from_name, plain.to_name, plain.data_key) == ("label", "text", "text")
    assert plain.ours == {"PER": "PER", "LOC": "LOC"}
    named = ner_config(NAMED, ["LOC", "PER"])
    assert (named.from_name, named.to_name, named.data_key) == ("ner", "body", "sentence")
    assert named.ours == {"Person": "PER", "Place": "LOC"}
    assert named.theirs == {"PER": "Person", "LOC": "Place"}


@pytest.mark.parametrize(
    "config,message",
    [
        (labelling_config(["PER", "ORG", "X"]), "does not predict: ORG, X (its labels: LOC, PER)"),
        ("<View><Labels", "not XML"),
        ("<View><Text name='t' value='$text'/></View>", "no <Labels"),
        ("<View><Labels name='l' toName='t'/></View>", 'no object named "t"'),
        ("<View><Labels name='l' toName='t'/><Text name='t' value='text'/></View>", "no object"),
    ],
)
def test_a_config_it_cannot_serve_is_refused_saying_why(config, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ner_config(config, ["LOC", "PER"])


def test_setup_names_the_version_or_refuses_unknown_labels_with_422(annotator, tmp_path):
    async def steps(client: Client) -> list[httpx.Response]:
        return [
            await client.get("/label-studio/health"),
            await client.post("/label-studio/setup", json={"project": "1.17", "schema": CONFIG}),
            await client.post("/label-studio/setup", json={"schema": labelling_config(["ORG"])}),
        ]

    health, setup, refused = run(annotator, tmp_path, steps)
    assert health.json()["status"] == "UP"
    assert setup.json() == {"model_version": health.json()["model_version"]}
    assert refused.status_code == 422
    assert "schema: labels the pipeline does not predict: ORG" in refused.json()["detail"]


def test_predict_gives_regions_with_our_labels_offsets_and_scores(annotator, tmp_path):
    tasks = [{"id": i, "data": {"sentence": text}} for i, text in enumerate(TEXTS)]

    async def steps(client: Client) -> tuple[httpx.Response, list[Any]]:
        body = {"tasks": tasks, "label_config": NAMED, "project": "1.17", "params": {}}
        predicted = await client.post("/label-studio/predict", json=body)
        headers = {"Authorization": f"Bearer {API_KEY}"}
        records = []
        for chunk in (TEXTS[:2], TEXTS[2:]):  # as the backend cuts them: max_texts 2
            answer = await client.post("/v1/entities", json={"texts": chunk}, headers=headers)
            records += answer.json()["results"]
        return predicted, records

    predicted, expected = run(annotator, tmp_path, steps)
    assert predicted.status_code == 200, predicted.text
    results = predicted.json()["results"]
    assert len(results) == len(TEXTS) and any(r["result"] for r in results)
    theirs = {"PER": "Person", "LOC": "Place"}
    for text, result, record in zip(TEXTS, results, expected, strict=True):
        found = [(r["value"]["start"], r["value"]["end"], r["value"]["labels"], r["score"])
                 for r in result["result"]]  # fmt: skip
        assert found == [
            (e["start_char"], e["end_char"], [theirs[e["label"]]], e["score"])
            for e in record["entities"]
        ]
        assert all(r["value"]["text"] == text[r["value"]["start"] : r["value"]["end"]]
                   and (r["from_name"], r["to_name"]) == ("ner", "body")
                   for r in result["result"])  # fmt: skip
        assert result["score"] == min([e["score"] for e in record["entities"]], default=1.0)
        assert result["model_version"]


def event(action: str, task: int, text: str, spans: list[tuple[int, int, str]]) -> dict:
    """A webhook event as Label Studio sends it (fields this backend does not read included)."""
    result = [
        {"from_name": "label", "to_name": "text", "type": "labels",
         "value": {"start": s, "end": e, "text": text[s:e], "labels": [label]}}
        for s, e, label in spans
    ]  # fmt: skip
    return {
        "action": action,
        "annotation": {"id": task, "result": result, "was_cancelled": False, "lead_time": 3.2},
        "task": {"id": task, "data": {"text": text}, "inner_id": task},
        "project": {"id": 1, "label_config": CONFIG, "title": "p"},
    }


def test_annotations_train_a_new_version_that_is_swapped_in_and_kept(annotator, tmp_path):
    text = TEXTS[0]  # "angela merkel met macron in paris"

    async def steps(client: Client) -> dict[str, Any]:
        seen = await client.post("/label-studio/predict", json={
            "tasks": [{"data": {"text": t}} for t in TEXTS], "label_config": CONFIG})  # fmt: skip
        before = seen.json()["results"][0]["model_version"]
        answers = [
            await client.post("/label-studio/webhook", json=body)
            for body in [
                {"action": "PROJECT_UPDATED", "project": {"id": 1}},
                event("ANNOTATION_CREATED", 1, text, [(0, 5, "PER")]),  # "angel": not a token
                event("ANNOTATION_CREATED", 2, text, [(0, 13, "Nobody")]),
                event("ANNOTATION_CREATED", 3, text, [(0, 13, "PER"), (28, 33, "LOC")]),
                event("ANNOTATION_UPDATED", 4, TEXTS[1], [(4, 10, "LOC")]),
            ]
        ]
        for _ in range(600):
            health = (await client.get("/label-studio/health")).json()
            if health["model_version"] != before:
                break
            await asyncio.sleep(0.1)
        after = await client.post("/label-studio/predict", json={
            "tasks": [{"data": {"text": text}}], "label_config": CONFIG})  # fmt: skip
        again = await client.post("/label-studio/webhook", json={"action": "START_TRAINING"})
        return {"before": before, "answers": answers, "health": health, "after": after,
                "again": again}  # fmt: skip

    seen = run(annotator, tmp_path / "models", steps)  # made by the first update
    statuses = [(a.status_code, a.json()["status"]) for a in seen["answers"]]
    assert statuses[0] == (200, "ignored")
    assert statuses[1][0] == 200 and "does not align with token boundaries" in statuses[1][1]
    assert statuses[2] == (200, "not kept: labels not in the labelling config: Nobody")
    assert statuses[3:] == [(201, "kept"), (201, "kept")]  # the second starts the update
    version = seen["health"]["model_version"]
    assert version == f"{seen['before']}+ls1"
    assert seen["after"].json()["results"][0]["model_version"] == version
    models = tmp_path / "models"
    assert [p.name for p in models.iterdir()] == [version]  # the first pipeline untouched
    assert (models / version / "config.cfg").exists()
    assert seen["again"].status_code == 201  # a second update on the same annotations


#: Bodies each route refuses with a 422 (the route, the body, where the 422 names).
INVALID: list[tuple[str, Any, list[Any] | None]] = [
    ("setup", {}, ["body", "schema"]),
    ("setup", {"schema": 3}, ["body", "schema"]),
    ("setup", [], ["body"]),
    ("setup", {"schema": "<View/>"}, None),
    ("predict", {"tasks": []}, ["body", "label_config"]),
    ("predict", {"tasks": "x", "label_config": CONFIG}, ["body", "tasks"]),
    ("predict", {"tasks": [{"id": 1}], "label_config": CONFIG}, ["body", "tasks", 0, "data"]),
    ("predict", {"tasks": [{"id": 1, "data": []}], "label_config": CONFIG}, ["body", "tasks"]),
    ("predict", {"tasks": [{"data": {"text": 5}}], "label_config": CONFIG}, None),
    ("predict", {"tasks": [{"data": {}}], "label_config": "<View"}, None),
    ("webhook", {}, ["body", "action"]),
    ("webhook", {"action": 1}, ["body", "action"]),
    ("webhook", {"action": "ANNOTATION_CREATED", "task": []}, ["body", "task"]),
    ("webhook", {"action": "ANNOTATION_CREATED"}, None),
    (
        "webhook",
        {
            "action": "ANNOTATION_CREATED",
            "task": {},
            "annotation": {},
            "project": {"label_config": "<x/>"},
        },
        None,
    ),  # fmt: skip
]


def test_bodies_it_cannot_take_get_4xx_naming_the_field(annotator, tmp_path):
    cases = [(route, json.dumps(body).encode()) for route, body, _ in INVALID]
    cases += [(route, raw) for route in ("setup", "predict", "webhook") for raw, _ in NOT_JSON]

    async def steps(client: Client) -> list[httpx.Response]:
        headers = {"Content-Type": "application/json"}
        return [
            await client.post(f"/label-studio/{route}", content=raw, headers=headers)
            for route, raw in cases
        ]

    responses = run(annotator, tmp_path, steps)
    for (route, body, field), response in zip(INVALID, responses, strict=False):
        assert response.status_code == 422, (route, body, response.text)
        detail = response.json()["detail"]
        if field is None:
            assert isinstance(detail, str) and detail, detail
        else:
            assert any(error["loc"][: len(field)] == field for error in detail), detail
    statuses = [status for _, status in NOT_JSON] * 3
    assert [r.status_code for r in responses[len(INVALID) :]] == statuses


def test_the_key_is_taken_as_basic_authentications_password(annotator, tmp_path):
    async def steps(client: Client) -> list[int]:
        wrong = "Basic " + base64.b64encode(b"anyone:wrong").decode()
        return [
            (await client.get("/label-studio/health", headers=headers)).status_code
            for headers in ({}, {"Authorization": wrong}, {"Authorization": "Basic %%%"})
        ]

    assert run(annotator, tmp_path, steps) == [200, 401, 401]
