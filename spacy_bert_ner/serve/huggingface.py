"""Hugging Face's token-classification task (`POST /` and `POST /models/{name}`), so code
written against an Inference Endpoint or the hosted Inference API, `huggingface_hub`'s
`InferenceClient(base_url=...).token_classification(text)` among it, works with this service by
changing a URL.

`InferenceClient` posts to its `base_url` itself (`/`), and the hosted API's address for a
model is `.../models/{name}`; the model here is fixed when the service starts, so the name is
read as part of the address and nothing more. The request is
`{"inputs": text or [texts], "parameters": {...}}`; the answer, for a text, the list of its
entities as the transformers pipeline aggregates them, `{"entity_group", "score", "word",
"start", "end"}` (for a list of texts, one such list per text): the entities and scores of
`/v1/entities` for the same text (the same records), the offsets into the client's text.

The pipeline always aggregates to whole-word entities, each word labelled from its first
wordpiece: `aggregation_strategy` "simple" and "first" (and no strategy) are honoured by
exactly that; "none" (one record per wordpiece), "average" and "max" (a word's scores pooled
over its wordpieces) would need outputs the pipeline does not compute, so they are a 422 that
says so rather than an answer that only looks like theirs. `stride` is taken and needs nothing:
the pipeline's own overlapping windows label a text of any length end to end.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Literal, cast

from fastapi import FastAPI, HTTPException
from fastapi.exceptions import RequestValidationError
from fastapi.requests import Request
from fastapi.responses import Response
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    TypeAdapter,
    field_validator,
)
from spacy.tokens import Doc

from ..annotate.records import dumps, entity_records
from .entities import RESPONSES, annotated, is_json, media_type
from .schemas import validated_body
from .service import EntityService

Aggregation = Literal["none", "simple", "first", "average", "max"]
#: The strategies the pipeline cannot honour, and why (the 422's message).
REFUSED: dict[str, str] = {
    "none": "'none' asks for one record per wordpiece; this pipeline decodes whole-word "
    "entities and keeps no wordpiece tags (use 'simple' or 'first')",
    "average": "'average' pools a word's scores over its wordpieces; this pipeline labels each "
    "word from its first wordpiece (use 'first')",
    "max": "'max' takes a word's label from its best-scored wordpiece; this pipeline labels "
    "each word from its first wordpiece (use 'first')",
}
PATHS = ("/", "/models/{name:path}")
#: Where `huggingface_hub` reads a server's message when a request fails.
ERROR_HEADER = "X-Error-Message"


class TokenClassificationParameters(BaseModel):
    """The task's parameters, as the transformers pipeline names them."""

    model_config = ConfigDict(extra="forbid")

    aggregation_strategy: Aggregation | None = Field(
        None, description="'simple', 'first' or none: whole-word entities; others are refused"
    )
    ignore_labels: list[str] | None = Field(None, description="Entities with these labels left out")
    stride: StrictInt | None = Field(
        None, ge=0, description="Taken; the pipeline's own windows cover any text length"
    )

    @field_validator("aggregation_strategy")
    @classmethod
    def honoured(cls, value: Aggregation | None) -> Aggregation | None:
        if value in REFUSED:
            raise ValueError(REFUSED[value])
        return value


class InferenceOptions(BaseModel):
    """The hosted API's `options`, which older clients still send: taken and without effect
    here (the model is always loaded, and nothing is cached)."""

    model_config = ConfigDict(extra="forbid")

    use_cache: StrictBool | None = None
    wait_for_model: StrictBool | None = None


class TokenClassificationRequest(BaseModel):
    """A text or a list of texts, and the task's parameters."""

    model_config = ConfigDict(extra="forbid")

    inputs: str | list[str]
    parameters: TokenClassificationParameters = TokenClassificationParameters.model_validate({})
    options: InferenceOptions | None = None


class TokenClassificationEntity(BaseModel):
    """One entity as the transformers pipeline aggregates it; `start` and `end` are offsets
    into the client's text, `word` the text between them, `score` our calibrated score."""

    entity_group: str
    score: float | None
    word: str
    start: int
    end: int


REQUEST = TypeAdapter(TokenClassificationRequest)
RESPONSE_MODEL = list[TokenClassificationEntity] | list[list[TokenClassificationEntity]]


def entity_groups(doc: Doc, service: EntityService, ignored: set[str]) -> list[dict[str, object]]:
    """The entities of `doc` in the task's shape, from the records `/v1/entities` gives."""
    return [
        {
            "entity_group": entity["label"],
            "score": entity["score"],
            "word": entity["text"],
            "start": entity["start_char"],
            "end": entity["end_char"],
        }
        for entity in entity_records(service.annotator.spans(doc))
        if entity["label"] not in ignored
    ]


def error_header(message: str) -> str:
    """`message` as a header value can carry it: ASCII on one line, at most 1,000 characters
    (a message quotes what the client sent, which may hold any character)."""
    return json.dumps(message)[1:-1][:1000]


def refusal_message(errors: Sequence[Any]) -> str:
    """A 422's errors on one line: where in the body, and why."""
    return "; ".join(
        f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}" for error in errors
    )


def add_token_classification_routes(api: FastAPI, service: EntityService) -> None:
    """The task on `POST /` and `POST /models/{name}` over `service`.

    A refusal is the service's usual 4xx, with its message also in the `X-Error-Message`
    header, where `huggingface_hub` reads a server's message to show it in its exception.
    """

    async def classify(request: Request) -> Response:
        body = validated_body(REQUEST, await request.body(), is_json(media_type(request)))
        texts = [body.inputs] if isinstance(body.inputs, str) else body.inputs
        _, docs, headers = await annotated(service, [{"text": text} for text in texts])
        ignored = set(body.parameters.ignore_labels or ())
        groups = [entity_groups(doc, service, ignored) for doc in docs]
        answer = groups[0] if isinstance(body.inputs, str) else groups
        return Response(dumps(answer), media_type="application/json", headers=headers)

    async def token_classification(request: Request) -> Response:
        """Hugging Face's token-classification task: the entities of `inputs`, each
        `{"entity_group", "score", "word", "start", "end"}`, as `/v1/entities` finds them."""
        try:
            return await classify(request)
        except RequestValidationError as invalid:
            refuse = request.app.exception_handlers[RequestValidationError]
            response = cast(Response, await refuse(request, invalid))
            response.headers[ERROR_HEADER] = error_header(refusal_message(invalid.errors()))
            return response
        except HTTPException as refused:
            headers = {**(refused.headers or {}), ERROR_HEADER: error_header(str(refused.detail))}
            raise HTTPException(refused.status_code, refused.detail, headers) from None

    for path in PATHS:
        api.router.add_api_route(
            path,
            token_classification,
            methods=["POST"],
            response_model=RESPONSE_MODEL,
            responses=RESPONSES,
            summary="Token classification (Hugging Face's task)",
            openapi_extra=openapi_extra(path),
        )


def openapi_extra(path: str) -> dict[str, Any]:
    """The OpenAPI page's body (the route reads its own) and, on `/models/{name}`, the name."""
    schema = {"$ref": "#/components/schemas/TokenClassificationRequest"}
    extra: dict[str, Any] = {
        "requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}
    }
    if "{name" in path:
        name = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
        extra["parameters"] = [{**name, "description": "Any: the model is fixed at start"}]
    return extra
