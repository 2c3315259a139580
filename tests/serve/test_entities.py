"""The one route of `POST /v1/entities` in process, over a blank pipeline (no model to load):
the content type chooses JSON or NDJSON, every JSON body the schema takes is answered with its
documents, every other body gets a 4xx and never a 500; and the limits."""

import asyncio
import json
from typing import Any

import httpx
import pytest
import spacy

from spacy_bert_ner.annotate.annotator import Annotator
from spacy_bert_ner.serve.app import build_app
from spacy_bert_ner.serve.entities import check_limits, is_json
from spacy_bert_ner.serve.service import EntityService
from spacy_bert_ner.serve.settings import ServiceSettings

from .test_schemas import INVALID, NOT_JSON, VALID, encoded

JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def annotator() -> Annotator:
    return Annotator(spacy.blank("en"))


def post(
    annotator: Annotator, body: bytes, headers: dict[str, str], query: str = ""
) -> httpx.Response:
    """One request to the app over a service of its own (its batcher lives in one event
    loop), in this process."""

    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=build_app(service, "blank"))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.post(f"/v1/entities{query}", content=body, headers=headers)

    service = EntityService(annotator, ServiceSettings(), metrics=True)
    service.ready = True
    try:
        return asyncio.run(send())
    finally:
        service.close()


def ids_of(response: httpx.Response) -> list[Any]:
    return [result["id"] for result in response.json()["results"]]


@pytest.mark.parametrize("body", VALID)
def test_a_body_the_schema_takes_is_answered_with_its_documents(annotator, body):
    response = post(annotator, encoded(body), JSON)
    assert response.status_code == 200, response.text
    documents = body.get("documents") or [{} for _ in body.get("texts") or []]
    expected = [document.get("id") or i for i, document in enumerate(documents, 1)]
    assert ids_of(response) == expected
    assert "x-inference-time" in response.headers


@pytest.mark.parametrize("body", INVALID)
def test_a_body_the_schema_refuses_is_422(annotator, body):
    response = post(annotator, encoded(body), JSON)
    assert response.status_code == 422, response.text
    assert all(error["loc"][0] == "body" for error in response.json()["detail"])


@pytest.mark.parametrize("raw,status", NOT_JSON)
def test_a_body_that_is_not_json_is_400_or_422(annotator, raw, status):
    response = post(annotator, raw, JSON)
    assert response.status_code == status, response.text
    assert "detail" in response.json()


@pytest.mark.parametrize(
    "headers",
    [{}, {"Content-Type": "text/plain"}, {"Content-Type": "application/x-www-form-urlencoded"}],
)
def test_a_body_sent_as_another_type_is_422_and_as_json_subtypes_is_read(annotator, headers):
    assert post(annotator, encoded({"texts": ["a"]}), headers).status_code == 422
    for json_type in ("application/json; charset=utf-8", "Application/JSON", "application/x+json"):
        response = post(annotator, encoded({"texts": ["a"]}), {"Content-Type": json_type})
        assert response.status_code == 200 and ids_of(response) == [1]


def test_an_ndjson_body_is_the_bulk_stream(annotator):
    lines = [json.dumps({"id": f"d{i}", "text": "a b"}) for i in range(5)] + ["not json", ""]
    body = "\n".join(lines).encode()
    response = post(annotator, body, {"Content-Type": "application/x-ndjson; charset=utf-8"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-ndjson"
    records = [json.loads(line) for line in response.text.splitlines()]
    assert sorted(record["id"] for record in records if "entities" in record) == [
        f"d{i}" for i in range(5)
    ]
    assert [record["line"] for record in records if "error" in record] == [6]


@pytest.mark.parametrize(
    "query,shape",
    [
        ("", "records"),
        ("?format=records", "records"),
        ("?format=displacy", "displacy"),
        ("?format=records&format=displacy", "displacy"),  # the last, as FastAPI takes it
    ],
)
def test_the_format_is_read_from_the_query(annotator, query, shape):
    response = post(annotator, encoded({"texts": ["a b"]}), JSON, query)
    assert response.status_code == 200
    (result,) = response.json()["results"]
    assert set(result) == ({"id", "entities"} if shape == "records" else {"text", "ents", "title"})


def test_an_unknown_format_is_422_naming_the_query(annotator):
    response = post(annotator, encoded({"texts": ["a"]}), JSON, "?format=html")
    assert response.status_code == 422
    assert [error["loc"] for error in response.json()["detail"]] == [["query", "format"]]


@pytest.mark.parametrize(
    "media,expected",
    [
        ("application/json", True),
        ("application/ld+json", True),
        ("application/x-ndjson", False),
        ("text/json", False),
        ("", False),
    ],
)
def test_is_json(media, expected):
    assert is_json(media) is expected


def test_check_limits_names_the_text():
    settings = ServiceSettings(max_texts=2, max_chars=3)
    check_limits([{"text": "abc"}, {"text": ""}], settings)
    with pytest.raises(Exception, match="text 1 has 4 characters; the limit is 3"):
        check_limits([{"text": "a"}, {"text": "abcd"}], settings)
    with pytest.raises(Exception, match="3 texts in one request; the limit is 2"):
        check_limits([{"text": "a"}] * 3, settings)
