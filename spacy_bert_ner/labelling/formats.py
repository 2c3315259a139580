"""The two task formats the annotation loop speaks, out and back.

Label Studio: a JSON array of tasks ``{"data": {"text", "id"}, "predictions": [{"result":
[...], "score"}]}``, whose results are ``labels`` regions with character offsets
(``value.start/end/text/labels``), read and written by the ``<Labels>`` tag of
`labelling_config`. Its export is the same array with ``annotations`` (each with
``was_cancelled`` and a ``result`` of the same regions) added to every task.

Prodigy-style JSONL: one object per line, ``{"text", "spans": [{"start", "end", "label"}],
"meta"}``; the answered copies carry ``"answer"``: accept, reject or ignore.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import quoteattr

#: The names the tasks and the labelling config share (`from_name`, `to_name`, data key).
FROM_NAME, TO_NAME, TEXT_KEY = "label", "text", "text"


class Strategy(enum.StrEnum):
    """How `select` chooses documents (see `labelling.select`)."""

    uncertainty = "uncertainty"
    random = "random"


class TaskFormat(enum.StrEnum):
    """Which of the two formats `select` writes."""

    label_studio = "label-studio"
    prodigy = "prodigy"


@dataclass(frozen=True)
class Candidate:
    """A document chosen for labelling: its text, the model's entities and their scores."""

    id: str
    text: str
    entities: list[tuple[int, int, str, float]]  # character offsets, label, probability
    expected_errors: float


@dataclass(frozen=True)
class Annotated:
    """One task read back: `spans` in character offsets, or `problem` saying why not."""

    name: str
    text: str
    spans: list[tuple[Any, Any, str]]  # offsets as read: `importer` checks they are ints
    problem: str | None = None


def labelling_config(labels: list[str]) -> str:
    """Label Studio's NER labelling config for `labels` (what the tasks' regions refer to)."""
    items = "\n".join(f"    <Label value={quoteattr(label)}/>" for label in labels)
    return (
        "<View>\n"
        f'  <Labels name="{FROM_NAME}" toName="{TO_NAME}">\n{items}\n  </Labels>\n'
        f'  <Text name="{TO_NAME}" value="${TEXT_KEY}"/>\n'
        "</View>\n"
    )


def label_studio_task(candidate: Candidate, model_version: str) -> dict[str, Any]:
    results = [
        {"id": f"e{i}", "from_name": FROM_NAME, "to_name": TO_NAME, "type": "labels",
         "score": score,
         "value": {"start": start, "end": end, "text": candidate.text[start:end],
                   "labels": [label]}}
        for i, (start, end, label, score) in enumerate(candidate.entities)
    ]  # fmt: skip
    # Label Studio sorts and filters by a prediction's 0-1 score: 1 / (1 + expected errors).
    return {
        "data": {TEXT_KEY: candidate.text, "id": candidate.id,
                 "expected_errors": round(candidate.expected_errors, 4)},
        "predictions": [
            {"model_version": model_version, "score": 1 / (1 + candidate.expected_errors),
             "result": results}
        ],
    }  # fmt: skip


def prodigy_task(candidate: Candidate) -> dict[str, Any]:
    return {
        "text": candidate.text,
        "spans": [{"start": s, "end": e, "label": label} for s, e, label, _ in candidate.entities],
        "meta": {"id": candidate.id, "expected_errors": round(candidate.expected_errors, 4),
                 "scores": [round(score, 4) for *_, score in candidate.entities]},
    }  # fmt: skip


def read_label_studio_task(task: Any, index: int) -> Annotated:
    """The spans of a Label Studio export task's latest annotation that was not cancelled."""
    if not isinstance(task, dict):
        return Annotated(f"task #{index}", "", [], "not a JSON object")
    name = f"task {task.get('id', f'#{index}')}"
    data = task.get("data")
    text = data.get(TEXT_KEY) if isinstance(data, dict) else None
    if not isinstance(text, str):
        return Annotated(name, "", [], f"data.{TEXT_KEY} is missing or not a string")
    annotations = task.get("annotations") or []
    if not annotations:
        return Annotated(name, text, [], "not annotated")
    kept = [a for a in annotations if isinstance(a, dict) and not a.get("was_cancelled")]
    if not kept:
        return Annotated(name, text, [], "cancelled (skipped) by the annotator")
    spans: list[tuple[Any, Any, str]] = []
    for region in kept[-1].get("result") or []:
        value = region.get("value") if isinstance(region, dict) else None
        labels = value.get("labels") if isinstance(value, dict) else None
        if (
            not isinstance(labels, list)
            or len(labels) != 1
            or not isinstance(labels[0], str)
            or region.get("type") != "labels"
        ):
            return Annotated(name, text, [], f"a result that is not one NER label: {region}")
        spans.append((value.get("start"), value.get("end"), labels[0]))  # type: ignore[union-attr]
    return Annotated(name, text, spans)


def read_prodigy_task(task: Any, line: int) -> Annotated:
    """The spans of one Prodigy-style line; only accepted (or unanswered) lines are kept."""
    name = f"line {line}"
    if not isinstance(task, dict):
        return Annotated(name, "", [], "not a JSON object")
    text = task.get("text")
    if not isinstance(text, str):
        return Annotated(name, "", [], "'text' is missing or not a string")
    answer = task.get("answer", "accept")
    if answer != "accept":
        return Annotated(name, text, [], f"answered {answer!r}, not 'accept'")
    spans = []
    for span in task.get("spans") or []:
        if not isinstance(span, dict) or not isinstance(span.get("label"), str):
            return Annotated(name, text, [], f"a span without a label: {span}")
        spans.append((span.get("start"), span.get("end"), span["label"]))
    return Annotated(name, text, spans)
