"""The drift alarm through the HTTP service: `serve` (local engine) on a pipeline calibrated
with `--method features` is sent the texts of one file, then of another, one text a request
in order, and reads its `/metrics` after each: the documents after the switch until
`bert_ner_drift_alarm{label="overall"}` goes to 1, and the highest drift score before it.

    python -m benchmarks.drift_stream MODEL BEFORE.jsonl AFTER.jsonl [--limit-before N]
"""

import argparse
import json
import tempfile
from collections.abc import Sequence
from pathlib import Path

import httpx

from .children import free_port, module_command, running
from .machine import describe
from .tables import print_table


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path, help="Pipeline calibrated with --method features")
    parser.add_argument("before", type=Path, help="JSONL texts like the calibration data")
    parser.add_argument("after", type=Path, help="JSONL texts of the shifted data")
    parser.add_argument("--limit-before", type=int, default=0, help="First N of BEFORE (0: all)")
    return parser.parse_args(argv)


def texts_of(path: Path, limit: int = 0) -> list[str]:
    texts = [json.loads(line)["text"] for line in path.read_text().splitlines() if line.strip()]
    return texts[:limit] if limit else texts


def gauges(client: httpx.Client) -> dict[str, float]:
    """The overall quality gauges, by metric name."""
    found = {}
    for line in client.get("/metrics").text.splitlines():
        if 'label="overall"' in line and line.startswith("bert_ner_"):
            found[line.split("{")[0]] = float(line.rsplit(" ", 1)[1])
    return found


def stream(client: httpx.Client, texts: list[str]) -> list[dict[str, float]]:
    """The gauges after each text, sent one a request."""
    seen = []
    for text in texts:
        client.post("/v1/entities", json={"texts": [text]}).raise_for_status()
        seen.append(gauges(client))
    return seen


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    before, after = texts_of(args.before, args.limit_before), texts_of(args.after)
    print(describe())
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = module_command("spacy_bert_ner", "serve", args.model, f"--port={port}")
    with tempfile.TemporaryDirectory() as tmp, running(command, f"{url}/readyz", Path(tmp) / "log"):
        with httpx.Client(base_url=url, timeout=60) as client:
            first, then = stream(client, before), stream(client, after)
    if not first or "bert_ner_estimated_precision" not in first[-1]:
        raise SystemExit(f"{args.model}: no drift gauges; calibrate it with --method features")
    alarm = [i for i, g in enumerate(then, 1) if g.get("bert_ner_drift_alarm") == 1.0]
    false = [i for i, g in enumerate(first, 1) if g.get("bert_ner_drift_alarm") == 1.0]
    last = then[-1] if then else first[-1]
    print_table(
        ["texts before", "alarms before", "highest PSI before", "texts after", "alarm after",
         "PSI at end", "est. precision at end", "unseen at end"],
        [[len(before), len(false),
          f"{max(g.get('bert_ner_score_drift_psi', 0.0) for g in first):.3f}", len(after),
          alarm[0] if alarm else "never", f"{last.get('bert_ner_score_drift_psi', 0.0):.3f}",
          f"{last.get('bert_ner_estimated_precision', 0.0):.3f}",
          f"{last.get('bert_ner_unseen_entity_share', 0.0):.3f}"]],
    )  # fmt: skip


if __name__ == "__main__":
    main()
