"""Bodies of the HTTP API, as pydantic models: they validate requests and document the API
on the OpenAPI page (`/docs`)."""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, model_validator


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
        return [document.model_dump() for document in self.documents or []]


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
