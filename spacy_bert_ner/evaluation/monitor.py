"""`python -m spacy_bert_ner monitor MODEL ANNOTATE_OUTPUT`: the figures `serve` exports as
metrics (`drift.QualityMonitor`), computed over the lines `annotate` wrote, in their order,
with a plot of the drift score along the file.

The pipeline gives what the lines do not hold: its dev reference (saved by `calibrate
--method features`) and its training mentions (which entities are unseen). A line that is
not an `annotate` output line is named (file and line) and counted, never silently dropped.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from wasabi import msg

from ..errors import BertNERError
from ..io import write_json
from ..pipeline.loading import load_pipeline, single_bert_ner_pipe
from .drift import ALARM_PSI, ALL, WINDOW, QualityMonitor
from .plots import png_figure


def reference_monitor(model: str, window: int) -> tuple[QualityMonitor, Any]:
    """A monitor with `model`'s dev reference, and its bert_ner pipe (for the mentions)."""
    nlp = load_pipeline(model)
    name, pipe = single_bert_ner_pipe(nlp, model)
    reference = (pipe.cfg["calibrator"] or {}).get("reference")
    if reference is None:
        raise BertNERError(
            f"{model}: {name} has no dev reference to compare with; "
            "run `calibrate --method features` on it first"
        )
    return QualityMonitor(reference, window=window), pipe


def _entities(path: Path, line_no: int, raw: bytes) -> list[dict[str, Any]]:
    try:
        value = json.loads(raw)
        entities = value["entities"]
        return [
            {"label": str(e["label"]), "text": str(e["text"]), "score": float(e["score"])}
            for e in entities
        ]
    except (ValueError, TypeError, KeyError) as err:
        raise BertNERError(f"{path}:{line_no}: not an annotate output line ({err!r})") from None


def monitor_report(model: str, path: Path, window: int = WINDOW) -> dict[str, Any]:
    """The figures after the whole file, the drift score after each document, the first
    document that raised the alarm, and the lines that could not be read."""
    monitor, pipe = reference_monitor(model, window)
    series: list[float | None] = []
    unreadable: list[str] = []
    try:
        lines = path.read_bytes().splitlines()
    except OSError as err:
        raise BertNERError(f"{path}: cannot read ({err.strerror or err})") from None
    for line_no, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            entities = _entities(path, line_no, raw)
        except BertNERError as err:
            unreadable.append(str(err))
            continue
        for entity in entities:
            seen = pipe.mentions.contains(entity["text"], entity["label"])
            monitor.observe(entity["label"], entity["score"], seen)
        series.append(monitor.figures()["psi"])
    alarms = [i for i, value in enumerate(series, 1) if value is not None and value > ALARM_PSI]
    return {
        "model": str(model),
        "path": str(path),
        "window": window,
        "alarm_psi": ALARM_PSI,
        "documents": len(series),
        "first_alarm_document": alarms[0] if alarms else None,
        "figures": {key: monitor.figures(key) for key in monitor.keys()},
        "psi_by_document": series,
        "unreadable_lines": len(unreadable),
        "unreadable": unreadable,
    }


def write_monitor_report(
    model: str, path: Path, *, output: Path | None = None, plot: Path | None = None,
    window: int = WINDOW,
) -> dict[str, Any]:  # fmt: skip
    """`monitor_report` as a table, and its JSON and plot where asked."""
    report = monitor_report(model, Path(path), window)
    for line in report["unreadable"]:  # unwrapped, so the file:line stays with its problem
        print(f"\u26a0 {line}", file=sys.stderr)

    def show(value: float | None, digits: int = 3) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    rows = [
        [key, r["entities"], show(r["estimated_precision"]), show(r["unseen_share"]),
         show(r["psi"]), "ALARM" if r["alarm"] else ""]
        for key, r in report["figures"].items()
    ]  # fmt: skip
    msg.table(rows, header=["label", "window", "est. precision", "unseen", "PSI", ""])
    first = report["first_alarm_document"]
    msg.info(f"{report['documents']} documents; drift alarm (PSI > {ALARM_PSI}) first at "
             f"{'no document' if first is None else f'document {first}'}")  # fmt: skip
    if output is not None:
        write_json(output, report)
    if plot is not None:
        plot_drift(report, Path(plot))
    return report


def plot_drift(report: dict[str, Any], path: Path) -> Path:
    """The overall drift score after each document, with the alarm level."""
    with png_figure(path, ncols=1, figsize=(7, 3.5)) as (_, axis):
        series = report["psi_by_document"]
        axis.plot(range(1, len(series) + 1), [float("nan") if v is None else v for v in series],
                  label=f"PSI of the last {report['window']} entities' scores")  # fmt: skip
        axis.axhline(report["alarm_psi"], color="red", linestyle=":", label="alarm")
        axis.set(xlabel="document", ylabel="PSI against dev", title=f"Drift ({ALL})")
        axis.legend(fontsize="small")
    return path
