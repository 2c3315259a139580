"""Hugging Face's token-classification task: in process over a blank pipeline, every body the
schema takes is answered in the task's shape and every other body gets a 4xx (the fuzz cases of
`/v1/entities` too), with the message where `huggingface_hub` reads it; then against the running
service on both engines, with the real `InferenceClient`: the entities of `/v1/entities`."""

import asyncio
import json
from typing import Any

import httpx
import pytest
import spacy
from huggingface_hub import InferenceClient
from huggingface_hub.errors import HfHubHTTPError

from spacy_bert_ner.annotate.annotator import Annotator
from spacy_bert_ner.serve.app import build_app
from spacy_bert_ner.serve.huggingface import REFUSED, error_header
from spacy_bert_ner.serve.service import EntityService
from spacy_bert_ner.serve.settings import ServiceSettings

from .conftest import API_KEY, LIMITS
from .test_schemas import NOT_JSON, encoded
from .test_service import TEXTS, strict_json

JSON = {"Content-Type": "application/json"}
PATHS = ["/", "/models/dslim/bert-base-NER"]
#: Bodies the schema takes, and whether the answer is one list (a text) or a list per text.
VALID: list[tuple[Any, bool]] = [
    ({"inputs": "a b"}, True),
    ({"inputs": ""}, True),
    ({"inputs": "Paris \ud800 Berlin"}, True),
    ({"inputs": []}, False),
    ({"inputs": ["a", "", "b c"]}, False),
    ({"inputs": "a", "parameters": {}}, True),
    ({"inputs": "a", "parameters": {"aggregation_strategy": "simple"}}, True),
    ({"inputs": ["a"], "parameters": {"aggregation_strategy": "first", "stride": 16}}, False),
    ({"inputs": "a", "parameters": {"aggregation_strategy": None, "ignore_labels": ["O"]}}, True),
    ({"inputs": "a", "options": {"wait_for_model": True, "use_cache": False}}, True),
]
#: Bodies it refuses, each with the place the 422 names.
INVALID: list[tuple[Any, list[Any]]] = [
    ({}, ["body", "inputs"]),
    ([], ["body"]),
    ("a", ["body"]),
    (None, ["body"]),
    ({"inputs": None}, ["body", "inputs"]),
    ({"inputs": 3}, ["body", "inputs"]),
    ({"inputs": [1]}, ["body", "inputs"]),
    ({"inputs": {"text": "a"}}, ["body", "inputs"]),
    ({"inputs": "a", "texts": ["a"]}, ["body", "texts"]),
    ({"inputs": "a", "\ud800": 1}, ["body"]),
    ({"inputs": "a", "parameters": None}, ["body", "parameters"]),
    ({"inputs": "a", "parameters": {"top_k": 3}}, ["body", "parameters", "top_k"]),
    ({"inputs": "a", "parameters": {"aggregation_strategy": "best"}}, ["body", "parameters"]),
    ({"inputs": "a", "parameters": {"ignore_labels": "O"}}, ["body", "parameters"]),
    ({"inputs": "a", "parameters": {"stride": -1}}, ["body", "parameters", "stride"]),
    ({"inputs": "a", "parameters": {"stride": 1.5}}, ["body", "parameters", "stride"]),
    ({"inputs": "a", "parameters": {"stride": "8"}}, ["body", "parameters", "stride"]),
    ({"inputs": "a", "options": {"wait_for_model": "yes"}}, ["body", "options"]),
    *(
        ({"inputs": "a", "parameters": {"aggregation_strategy": name}}, ["body", "parameters"])
        for name in REFUSED
    ),
]


@pytest.fixture(scope="module")
def annotator() -> Annotator:
    return Annotator(spacy.blank("en"))


def post(annotator: Annotator, path: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    """One request to the app over a service of its own, in this process."""

    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=build_app(service, "blank", api_key=API_KEY))
        auth = {"Authorization": f"Bearer {API_KEY}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.post(path, content=body, headers={**auth, **headers})

    service = EntityService(annotator, ServiceSettings(max_texts=4), metrics=True)
    service.ready = True
    try:
        return asyncio.run(send())
    finally:
        service.close()


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("body,one_text", VALID)
def test_a_body_the_schema_takes_is_answered_in_the_tasks_shape(annotator, path, body, one_text):
    response = post(annotator, path, json.dumps(body).encode(), JSON)
    assert response.status_code == 200, response.text
    if one_text:
        assert response.json() == []  # a blank pipeline finds no entity
    else:
        assert response.json() == [[] for _ in body["inputs"]]
    assert "x-inference-time" in response.headers


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("body,field", INVALID)
def test_a_body_the_schema_refuses_is_422_naming_the_field_in_the_header_too(
    annotator, path, body, field
):
    response = post(annotator, path, encoded(body), JSON)
    assert response.status_code == 422, response.text
    detail = strict_json(response)["detail"]
    assert any(error["loc"][: len(field)] == field for error in detail), detail
    shown = json.loads(f'"{response.headers["x-error-message"]}"')
    assert shown.startswith(".".join(str(part) for part in detail[0]["loc"]))


@pytest.mark.parametrize("raw,status", NOT_JSON)
def test_a_body_that_is_not_json_is_400_or_422(annotator, raw, status):
    response = post(annotator, "/", raw, JSON)
    assert response.status_code == status, response.text
    assert "detail" in strict_json(response) and response.headers["x-error-message"]


@pytest.mark.parametrize(
    "body,headers,status",
    [
        (b'{"inputs": "a", "parameters": {"stride": 1e400}}', JSON, 422),
        (b'{"inputs": NaN}', JSON, 422),
        (b'{"inputs": ["a", -Infinity]}', JSON, 422),
        (b'{"inputs": "a"}', {"Content-Type": "text/plain"}, 422),
        (b'\xff\xfe{"inputs": "a"}', {}, 422),
        (b'{"inputs": "a", "parameters": {"stride": ' + b"9" * 5000 + b"}}", JSON, 400),
        (json.dumps({"inputs": ["a"] * 5}).encode(), JSON, 413),
        (json.dumps({"inputs": "a" * 30_000}).encode(), JSON, 413),
    ],
)
def test_bodies_it_cannot_take_get_4xx_in_valid_json(annotator, body, headers, status):
    response = post(annotator, "/", body, headers)
    assert response.status_code == status, response.text
    assert strict_json(response)["detail"] and response.headers["x-error-message"]


def test_an_error_header_is_one_ascii_line():
    header = error_header('body.\ud800: bad "x"\r\nnext \u00e9' + "x" * 2000)
    assert header.isascii() and "\n" not in header and len(header) == 1000


def test_the_task_needs_the_key_and_the_page_does_not(service):
    with service.client(key=None) as client:
        assert client.post("/", json={"inputs": "x"}).status_code == 401
        assert client.post("/models/any", json={"inputs": "x"}).status_code == 401
        assert client.get("/").status_code == 200


def entities_of(service, texts: list[str]) -> list[list[dict[str, Any]]]:
    """What `/v1/entities` finds in `texts`, in the task's shape: one text a request, as the
    task's requests below send them (a score's last digit may depend on the batch)."""
    with service.client() as client:
        responses = [client.post("/v1/entities", json={"texts": [text]}) for text in texts]
    assert all(response.status_code == 200 for response in responses)
    return [
        [
            {"entity_group": e["label"], "score": e["score"], "word": e["text"],
             "start": e["start_char"], "end": e["end_char"]}
            for e in result["entities"]
        ]
        for response in responses
        for result in response.json()["results"]
    ]  # fmt: skip


@pytest.mark.parametrize("path", ["", "/models/dslim/bert-base-NER"])
def test_inference_client_gets_the_entities_of_v1_entities(service, path):
    """`huggingface_hub`'s own client, pointed at the service by its URL alone."""
    client = InferenceClient(base_url=service.url + path, api_key=API_KEY)
    expected = entities_of(service, TEXTS)
    assert any(expected), "the tiny pipeline finds entities in these texts"
    for text, entities in zip(TEXTS, expected, strict=True):
        found = client.token_classification(text, aggregation_strategy="simple")
        assert [{key: getattr(e, key) for key in entities[0]} for e in found] == entities
        assert all(text[e.start : e.end] == e.word for e in found)
    ignored = client.token_classification(TEXTS[0], ignore_labels=["PER"])
    assert [e.entity_group for e in ignored] == [
        e["entity_group"] for e in expected[0] if e["entity_group"] != "PER"
    ]


def test_inference_client_shows_why_a_strategy_is_refused(service):
    client = InferenceClient(base_url=service.url, api_key=API_KEY)
    with pytest.raises(HfHubHTTPError, match="labels each word from its first wordpiece") as err:
        client.token_classification(TEXTS[0], aggregation_strategy="average")
    assert err.value.response.status_code == 422


def test_a_list_of_texts_gets_a_list_per_text(service):
    with service.client() as client:
        response = client.post("/", json={"inputs": TEXTS})
        batched = client.post("/v1/entities", json={"texts": TEXTS})
    assert response.status_code == 200
    expected = entities_of(service, TEXTS)
    for found, entities in zip(response.json(), expected, strict=True):
        assert [{**e, "score": None} for e in found] == [{**e, "score": None} for e in entities]
        assert [e["score"] for e in found] == pytest.approx(
            [e["score"] for e in entities], abs=1e-3
        )
    assert batched.status_code == 200


def test_over_the_limits_is_413_with_the_limit(service):
    with service.client() as client:
        many = client.post("/", json={"inputs": ["a"] * (LIMITS["max_texts"] + 1)})
    assert many.status_code == 413 and f"limit is {LIMITS['max_texts']}" in many.json()["detail"]
    assert f"limit is {LIMITS['max_texts']}" in many.headers["x-error-message"]
