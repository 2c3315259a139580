"""What users write by hand to serve NER: FastAPI + uvicorn + a transformers pipeline, one
forward pass per request. System (d) of `serve_load.py`; not part of the package.

    MODEL_DIR=path/to/hf_token_classifier uvicorn benchmarks.handwritten_server:app --port 8001
"""

import os

from fastapi import FastAPI
from pydantic import BaseModel
from transformers import pipeline

app = FastAPI()
ner = pipeline("token-classification", model=os.environ["MODEL_DIR"], aggregation_strategy="first")


class Request(BaseModel):
    text: str


@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/ner")
def entities(request: Request) -> list[dict]:
    return [
        {
            "start_char": int(e["start"]),
            "end_char": int(e["end"]),
            "label": e["entity_group"],
            "score": float(e["score"]),
        }
        for e in ner(request.text)
    ]
