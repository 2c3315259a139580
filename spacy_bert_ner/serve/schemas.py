"""Bodies of the HTTP API, as pydantic models: they validate requests (`entities_request`)
and document the API on the OpenAPI page (`/docs`, `openapi_schemas`).

A JSON body is parsed and validated in one pass by pydantic's own JSON reader
(`TypeAdapter.validate_json` on the raw bytes), with no Python objects made for a body it
refuses. That reader is stricter than Python's in one way that matters here: it refuses a lone
surrogate escape (JSON's `"\\ud800"` alone), which `annotate` and this API take (see
`annotate.records`). So a body it refuses as JSON is read once more by Python's `json`, which
decides as it always has: the body is validated (lone surrogates), a 422 `json_invalid` (not
JSON) or a 400 (not UTF-8, a number over 4,300 digits, nesting past the stack). A body sent
as any other content type is validated as its raw bytes: a 422 naming the body.
"""

import json
from typing import Any, TypeVar

from fastapi import HTTPException
from fastapi.exceptions import RequestValidationError
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    TypeAdapter,
    ValidationError,
    model_validator,
)

Body = TypeVar("Body")


class Document(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: StrictStr | StrictInt | None = Field(
        None, description="Echoed back; defaults to the 1-based position in the request"
    )
    text: str


class EntitiesRequest(BaseModel):
    """Either `documents` (texts with ids) or `texts`."""

    model_config = ConfigDict(extra="forbid")

    documents: list[Document] | None = None
    texts: list[str] | None = None

    @model_validator(mode="after")
    def one_of_the_two(self) -> "EntitiesRequest":
        if (self.documents is None) == (self.texts is None):
            raise ValueError("give exactly one of 'documents' and 'texts'")
        return self

    def as_values(self) -> list[dict[str, Any]]:
        """The documents as annotate's input records (`{"id": ..., "text": ...}`)."""
        if self.texts is not None:
            return [{"text": text} for text in self.texts]
        # Not `model_dump`, which takes 3 us a document (64 documents: 0.2 ms a request).
        return [{"id": doc.id, "text": doc.text} for doc in self.documents or []]


class Entity(BaseModel):
    start_char: int
    end_char: int
    label: str
    text: str
    score: float | None


class Result(BaseModel):
    id: str | int
    entities: list[Entity]


class EntitiesResponse(BaseModel):
    """One result per document, in request order: the record `annotate` writes."""

    results: list[Result]


REQUEST = TypeAdapter(EntitiesRequest)


def entities_request(body: bytes, is_json: bool) -> EntitiesRequest:
    """The `/v1/entities` request `body` holds (see `validated_body`)."""
    return validated_body(REQUEST, body, is_json)


def validated_body(adapter: TypeAdapter[Body], body: bytes, is_json: bool) -> Body:
    """The request `body` holds, validated by `adapter` (sent as JSON when `is_json`; see the
    module's docstring): every route that reads its own body reads it here. Raises
    RequestValidationError (422, each error's `loc` starting at "body") or HTTPException
    (400)."""
    if not body:
        missing = {"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}
        raise RequestValidationError([missing])
    if is_json:
        try:
            return adapter.validate_json(body)
        except ValidationError as invalid:
            if invalid.errors()[0]["type"] != "json_invalid":
                raise RequestValidationError(located(invalid, "body")) from None
    try:
        # Validated as FastAPI validates a body parameter, so its errors read the same.
        return adapter.validate_python(
            _python_json(body) if is_json else body, from_attributes=True
        )
    except ValidationError as invalid:
        raise RequestValidationError(located(invalid, "body")) from None


def _python_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except json.JSONDecodeError as err:
        error = {"type": "json_invalid", "loc": ("body", err.pos), "msg": "JSON decode error"}
        raise RequestValidationError([{**error, "input": {}, "ctx": {"error": err.msg}}]) from None
    except (ValueError, RecursionError):  # not UTF-8; a number too long; nested too deep
        raise HTTPException(400, detail="There was an error parsing the body") from None


def located(invalid: ValidationError, *where: str | int) -> list[dict[str, Any]]:
    """`invalid`'s errors as FastAPI reports a parameter's, their `loc` starting at `where`
    ("body"; "query", "format")."""
    return [
        {**error, "loc": (*where, *error["loc"])} for error in invalid.errors(include_url=False)
    ]


def openapi_schemas(*models: type[BaseModel]) -> dict[str, Any]:
    """The schemas of the request bodies `models` (by default `/v1/entities`'), for the
    OpenAPI page's components: the routes read their bodies themselves, so FastAPI does not
    put them there."""
    schemas: dict[str, Any] = {}
    for model in models or (EntitiesRequest,):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update({**schema.pop("$defs", {}), model.__name__: schema})
    return schemas
