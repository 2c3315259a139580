"""The JSON answer's parts without a server: limits, and which bodies skip FastAPI."""

import json
from typing import Any

import pytest
from pydantic import ValidationError

from spacy_bert_ner.serve.entities import check_limits, plain_values
from spacy_bert_ner.serve.schemas import EntitiesRequest
from spacy_bert_ner.serve.settings import ServiceSettings

#: Bodies the schema takes; `plain_values` takes the plain ones and leaves the rest to FastAPI.
VALID: list[Any] = [
    {"texts": []},
    {"texts": ["a", "", "\ud800 lone"]},
    {"documents": []},
    {"documents": [{"text": "a"}, {"id": "x", "text": "b"}, {"id": 7, "text": "c"}]},
    {"documents": [{"id": None, "text": "a"}, {"id": -(2**70), "text": "b"}]},
    {"texts": ["a"], "documents": None},  # valid, but not plain: FastAPI answers it
    {"documents": None, "texts": []},
]
#: Bodies the schema refuses: `plain_values` must leave every one to FastAPI's 422.
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
    {"documents": [{"id": 1}]},
    {"documents": [{"text": 5}]},
    {"documents": [{"id": True, "text": "a"}]},
    {"documents": [{"id": 1.5, "text": "a"}]},
    {"documents": [{"id": [], "text": "a"}]},
    {"documents": [{"text": "a", "label": "x"}]},
    {"documents": ["a"]},
    {"documents": {"text": "a"}},
    {"text": "a"},
]


def encoded(body: Any) -> bytes:
    return json.dumps(body).encode()


@pytest.mark.parametrize("body", VALID)
def test_a_plain_body_gives_the_values_the_schema_gives(body):
    values = plain_values(encoded(body))
    if len(body) == 1:
        assert values == EntitiesRequest.model_validate(body).as_values()
    else:
        assert values is None


@pytest.mark.parametrize("body", INVALID)
def test_a_body_the_schema_refuses_is_left_to_fastapi(body):
    with pytest.raises(ValidationError):
        EntitiesRequest.model_validate(body)
    assert plain_values(encoded(body)) is None


@pytest.mark.parametrize(
    "raw", [b"", b"{", b'{"texts": [', '{"texts": ["\xe9"]}'.encode("latin-1"), b"[" * 100_000]
)
def test_a_body_that_is_not_json_is_left_to_fastapi(raw):
    assert plain_values(raw) is None


def test_check_limits_names_the_text():
    settings = ServiceSettings(max_texts=2, max_chars=3)
    check_limits([{"text": "abc"}, {"text": ""}], settings)
    with pytest.raises(Exception, match="text 1 has 4 characters; the limit is 3"):
        check_limits([{"text": "a"}, {"text": "abcd"}], settings)
    with pytest.raises(Exception, match="3 texts in one request; the limit is 2"):
        check_limits([{"text": "a"}] * 3, settings)
