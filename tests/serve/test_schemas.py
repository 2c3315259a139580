"""The request validator without a server: every body the schema takes gives the schema's
values, every body it refuses (or that is not JSON at all) is a 400 or 422, never anything
else, and the OpenAPI components hold the request's schemas."""

import json
from typing import Any

import pytest
from fastapi import HTTPException
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from spacy_bert_ner.serve.schemas import EntitiesRequest, entities_request, openapi_schemas

#: Bodies the schema takes, lone surrogates (which pydantic's JSON reader refuses) included.
VALID: list[Any] = [
    {"texts": []},
    {"texts": ["a", "", "\ud800 lone"]},
    {"documents": []},
    {"documents": [{"text": "a"}, {"id": "x", "text": "b"}, {"id": 7, "text": "c"}]},
    {"documents": [{"id": None, "text": "a"}, {"id": -(2**70), "text": "b"}]},
    {"documents": [{"id": "cut-\udc80", "text": "Paris \ud800 Berlin"}]},
    {"texts": ["a"], "documents": None},
    {"documents": None, "texts": []},
]
#: Bodies the schema refuses: each a 422 naming where in the body.
INVALID: list[Any] = [
    {},
    [],
    "texts",
    None,
    {"texts": None},
    {"texts": "a"},
    {"texts": [1]},
    {"texts": [None]},
    {"texts": ["a"], "documents": []},
    {"texts": ["a"], "other": 1},
    {"texts": ["a"], "\ud800": 1},
    {"documents": [{"id": 1}]},
    {"documents": [{"text": 5}]},
    {"documents": [{"id": True, "text": "a"}]},
    {"documents": [{"id": 1.5, "text": "a"}]},
    {"documents": [{"id": [], "text": "\udc80"}]},
    {"documents": [{"text": "a", "label": "x"}]},
    {"documents": ["a"]},
    {"documents": {"text": "a"}},
    {"text": "a"},
]
#: Bodies that are not JSON the schema could read, with the status each gets: 422 for what
#: is not JSON, 400 for what cannot be read as text or as numbers and nesting Python holds.
NOT_JSON: list[tuple[bytes, int]] = [
    (b"", 422),
    (b"{", 422),
    (b'{"texts": [', 422),
    (b'{"texts": ["a"]} trailing', 422),
    ('{"texts": ["\xe9"]}'.encode("latin-1"), 400),
    (b'{"texts": [], "documents": [{"id": ' + b"9" * 5000 + b"}]}", 400),
    (b"[" * 100_000, 400),
]


def encoded(body: Any) -> bytes:
    return json.dumps(body).encode()


def status_of(body: bytes, is_json: bool = True) -> int:
    """The status `entities_request` gives `body`; a 422's errors must all be in the body."""
    try:
        entities_request(body, is_json)
    except RequestValidationError as invalid:
        assert all(error["loc"][0] == "body" for error in invalid.errors()), invalid.errors()
        return 422
    except HTTPException as refused:
        return refused.status_code
    return 200


@pytest.mark.parametrize("body", VALID)
def test_a_body_the_schema_takes_gives_the_schema_values(body):
    expected = EntitiesRequest.model_validate(body).as_values()
    assert entities_request(encoded(body), is_json=True).as_values() == expected


@pytest.mark.parametrize("body", INVALID)
def test_a_body_the_schema_refuses_is_422(body):
    with pytest.raises(ValidationError):
        EntitiesRequest.model_validate(body)
    assert status_of(encoded(body)) == 422


@pytest.mark.parametrize("raw,status", NOT_JSON)
def test_a_body_that_is_not_json_is_400_or_422(raw, status):
    assert status_of(raw) == status


@pytest.mark.parametrize("raw", [encoded({"texts": ["a"]}), b'\xff\xfe{"texts": ["a"]}'])
def test_a_body_not_sent_as_json_is_422(raw):
    assert status_of(raw, is_json=False) == 422


def test_an_invalid_json_body_names_where_it_broke():
    with pytest.raises(RequestValidationError) as raised:
        entities_request(b'{"texts": [', is_json=True)
    (error,) = raised.value.errors()
    assert error["type"] == "json_invalid" and error["loc"] == ("body", 11)


def test_the_openapi_components_hold_the_request_and_its_documents():
    schemas = openapi_schemas()
    assert set(schemas) == {"EntitiesRequest", "Document"}
    documents = schemas["EntitiesRequest"]["properties"]["documents"]
    assert documents["anyOf"][0]["items"] == {"$ref": "#/components/schemas/Document"}
