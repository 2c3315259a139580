"""Label Studio's ML backend protocol, so a Label Studio project connects to the service
(`serve --label-studio DIR`; in Label Studio: Settings > Model > Connect model, URL
`http://host:port/label-studio`) and gets its tasks pre-annotated, and the model learns from
the annotations as they are made.

- `GET /label-studio/health`: up, and which model version answers.
- `POST /label-studio/setup`: Label Studio sends the project's labelling config; the `<Labels>`
  of its NER config are mapped to the pipeline's labels (a `<Label>`'s value, or the labels
  its `predicted_values` names), and a label the pipeline does not predict is refused (422,
  with the message in the body and the service's log; Label Studio 1.23 shows only the status).
  The answer names the `model_version`.
- `POST /label-studio/predict`: the tasks' texts through the one path of every JSON route
  (`entities.annotated`: limits, batcher), each entity a region of the config's `<Labels>` with
  its offsets and our score, each task's prediction scored by its least certain entity (what
  Label Studio sorts by), with the version that made it.
- `POST /label-studio/webhook`: Label Studio's annotation events (it makes this webhook when the
  model is connected). Each annotation becomes a training document (`labelling.importer`);
  `label_studio_update` trains a new version in the background past a count and swaps it in.
  `START_TRAINING` (Label Studio's "Start training") starts one at once; other events are taken
  and ignored.

Label Studio's bodies carry more than these fields, and more in later versions: unknown fields
are ignored, a field that is read must have its type (422 naming it).
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, cast

from fastapi import FastAPI, HTTPException
from fastapi.requests import Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StrictStr, TypeAdapter
from spacy.tokens import Doc

from ..annotate.records import dumps, entity_records
from ..labelling.formats import TEXT_KEY, read_label_studio_task
from ..labelling.importer import annotated_doc
from ..pipeline.loading import bert_ner_pipes
from .entities import annotated, is_json, media_type
from .label_studio_update import ModelUpdater
from .schemas import Body, validated_body
from .service import EntityService

PREFIX = "/label-studio"
TRAIN_EVENTS = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED")


class LabelStudioBody(BaseModel):
    """A body Label Studio sends: the fields read here, the others (more in each Label Studio
    version) ignored."""

    model_config = ConfigDict(extra="ignore")


class SetupRequest(LabelStudioBody):
    """`/setup`: the project's labelling config."""

    label_config: StrictStr = Field(alias="schema")


class Task(LabelStudioBody):
    """A task of `/predict`: its data, where the config's object finds the text."""

    data: dict[str, Any]


class PredictRequest(LabelStudioBody):
    """`/predict`: a page of tasks and the project's labelling config."""

    tasks: list[Task]
    label_config: StrictStr


class WebhookEvent(LabelStudioBody):
    """A webhook event: what happened, and for an annotation, the task and the project."""

    action: StrictStr
    annotation: dict[str, Any] | None = None
    task: dict[str, Any] | None = None
    project: dict[str, Any] | None = None


SETUP = TypeAdapter(SetupRequest)
PREDICT = TypeAdapter(PredictRequest)
WEBHOOK = TypeAdapter(WebhookEvent)


@dataclass(frozen=True)
class NerConfig:
    """What a labelling config says about NER: the `<Labels>` and the object it labels, the
    data key of the text, and its labels as ours (and back)."""

    from_name: str
    to_name: str
    data_key: str
    ours: dict[str, str]  # Label Studio's label -> ours
    theirs: dict[str, str]  # ours -> Label Studio's


def ner_config(config: str, labels: Sequence[str]) -> NerConfig:
    """The NER part of labelling `config` mapped to the pipeline's `labels`; ValueError says
    what does not fit (no `<Labels>`, no text, a label the pipeline does not predict)."""
    try:
        root = ElementTree.fromstring(config)
    except ElementTree.ParseError as err:
        raise ValueError(f"the labelling config is not XML: {err}") from None
    control = root.find(".//Labels")
    if control is None or not control.get("name") or not control.get("toName"):
        raise ValueError("the labelling config has no <Labels name=... toName=...> to predict")
    to_name = str(control.get("toName"))
    target = next((e for e in root.iter() if e.get("name") == to_name), None)
    key = (target.get("value") or "") if target is not None else ""
    if target is None or not key.startswith("$"):
        raise ValueError(f'no object named "{to_name}" with value="$..." for <Labels> to label')
    ours: dict[str, str] = {}
    unknown = []
    for label in control.iter("Label"):
        value = label.get("value") or ""
        names = (label.get("predicted_values") or value).split(",")
        known = [name.strip() for name in names if name.strip() in labels]
        if known:
            ours[value] = known[0]
        else:
            unknown.append(value)
    if unknown:
        raise ValueError(
            f"labels the pipeline does not predict: {', '.join(unknown)} (its labels: "
            f'{", ".join(labels)}); rename them, or name ours in predicted_values="..."'
        )
    theirs = {mine: label for label, mine in reversed(ours.items())}
    return NerConfig(str(control.get("name")), to_name, key[1:], ours, theirs)


def regions(doc: Doc, service: EntityService, config: NerConfig) -> list[dict[str, Any]]:
    """The doc's entities as Label Studio regions of `config`'s `<Labels>`."""
    return [
        {"id": f"e{i}", "from_name": config.from_name, "to_name": config.to_name,
         "type": "labels", "score": e["score"],
         "value": {"start": e["start_char"], "end": e["end_char"], "text": e["text"],
                   "labels": [config.theirs[e["label"]]]}}
        for i, e in enumerate(entity_records(service.annotator.spans(doc)))
        if e["label"] in config.theirs
    ]  # fmt: skip


def config_of(text: str, service: EntityService, where: str) -> NerConfig:
    """`ner_config` of the pipeline's labels, its refusal a 422 naming `where`."""
    pipes = bert_ner_pipes(service.annotator.nlp)
    labels = sorted({label for _, pipe in pipes for label in pipe.labels})
    try:
        return ner_config(text, labels)
    except ValueError as refused:
        raise HTTPException(422, detail=f"{where}: {refused}") from None


def training_doc(event: WebhookEvent, service: EntityService) -> tuple[Doc | None, str]:
    """The annotated document an annotation event holds, or why it holds none."""
    label_config = (event.project or {}).get("label_config")
    if not isinstance(label_config, str) or event.task is None or event.annotation is None:
        raise HTTPException(
            422, detail="an annotation event needs task, annotation and project.label_config"
        )
    config = config_of(label_config, service, "project.label_config")
    data = event.task.get("data")
    text = data.get(config.data_key) if isinstance(data, dict) else None
    task = {"id": event.task.get("id"), "data": {TEXT_KEY: text}, "annotations": [event.annotation]}
    read = read_label_studio_task(task, 0)
    if read.problem is not None:
        return None, read.problem
    unknown = sorted({label for *_, label in read.spans if label not in config.ours})
    if unknown:
        return None, f"labels not in the labelling config: {', '.join(unknown)}"
    spans = [(start, end, config.ours[label]) for start, end, label in read.spans]
    doc, problem = annotated_doc(service.annotator.nlp, replace(read, spans=spans))
    return doc, problem or ""


class LabelStudioBackend:
    """The backend's routes over `service`, its model updated by `updater`."""

    def __init__(self, service: EntityService, updater: ModelUpdater) -> None:
        self.service = service
        self.updater = updater

    def add_routes(self, api: FastAPI) -> None:
        """The four routes under `PREFIX`."""
        api.router.add_api_route(f"{PREFIX}/health", self.health, methods=["GET"])
        for name in ("setup", "predict", "webhook"):
            api.router.add_api_route(f"{PREFIX}/{name}", getattr(self, name), methods=["POST"])

    async def read(self, adapter: TypeAdapter[Body], request: Request) -> Body:
        return validated_body(adapter, await request.body(), is_json(media_type(request)))

    async def health(self) -> dict[str, str]:
        """Label Studio's health check: up, and the version that answers."""
        return {"status": "UP", "model_class": "bert_ner", "model_version": self.updater.version}

    async def setup(self, request: Request) -> dict[str, str]:
        """Check the project's labelling config against the pipeline; name the version."""
        body = await self.read(SETUP, request)
        config_of(body.label_config, self.service, "schema")
        return {"model_version": self.updater.version}

    async def predict(self, request: Request) -> Response:
        """One prediction per task, in order, with the version that made it."""
        body = await self.read(PREDICT, request)
        config = config_of(body.label_config, self.service, "label_config")
        texts = [task.data.get(config.data_key) for task in body.tasks]
        for index, text in enumerate(texts):
            if not isinstance(text, str):
                where = f"tasks.{index}.data.{config.data_key}"
                raise HTTPException(422, detail=f"{where}: missing or not a string")
        docs: list[Doc] = []
        step = self.service.settings.max_texts  # Label Studio sends a page of tasks at once
        for start in range(0, len(texts), step):
            values = [{"text": text} for text in texts[start : start + step]]
            docs += (await annotated(self.service, values))[1]
        self.updater.seen(cast(list[str], texts))
        results = []
        for doc in docs:
            found = regions(doc, self.service, config)
            score = min((r["score"] for r in found if r["score"] is not None), default=1.0)
            version = self.updater.version_of(doc)
            results.append({"result": found, "score": score, "model_version": version})
        return Response(dumps({"results": results}), media_type="application/json")

    async def webhook(self, request: Request) -> JSONResponse:
        """An annotation event, kept for the next update; `START_TRAINING` starts one now;
        other events are taken and ignored."""
        event = await self.read(WEBHOOK, request)
        if event.action == "START_TRAINING":
            started = self.updater.start_update()
            return JSONResponse({"status": "started" if started else "not started"}, 201)
        if event.action not in TRAIN_EVENTS:
            return JSONResponse({"status": "ignored"}, 200)
        doc, problem = training_doc(event, self.service)
        if doc is None:
            return JSONResponse({"status": f"not kept: {problem}"}, 200)
        self.updater.annotation(str(event.task.get("id") if event.task else None), doc)
        return JSONResponse({"status": "kept"}, 201)
