"""The running service over real HTTP, on both engines: answers, NDJSON bulk, refusals,
overload, timing headers; the local engine's metrics and graceful stop; a killed Ray replica."""

import asyncio
import json
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from spacy_bert_ner import replace_lone_surrogates
from spacy_bert_ner.annotate.command import annotate_file

from ..nasty_strings import LONE_SURROGATES, NASTY_STRINGS
from .conftest import API_KEY, LIMITS, LOCAL_ONLY, RAY_ONLY, start_service, stop_service

JSON = {"Content-Type": "application/json"}
TEXTS = ["angela merkel met macron in paris", "the berlin of angela", "paris and berlin met merkel"]


def test_entities_are_the_records_annotate_writes_byte_for_byte(service, tmp_path):
    """One text per request and per annotate batch, so both run the same computation."""
    inputs = tmp_path / "in.jsonl"
    inputs.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(TEXTS)))
    annotate_file(
        str(service.pipeline), inputs, tmp_path / "out.jsonl", batch_size=1, progress=False
    )
    lines = (tmp_path / "out.jsonl").read_text().splitlines()
    with service.client() as client:
        for i, (text, line) in enumerate(zip(TEXTS, lines, strict=True)):
            response = client.post("/v1/entities", json={"documents": [{"id": i, "text": text}]})
            assert response.status_code == 200
            assert response.text == '{"results":[' + line + "]}"
    assert any(json.loads(line)["entities"] for line in lines)  # something to compare


def test_texts_get_their_position_as_id_and_displacy_format(service):
    with service.client() as client:
        records = client.post("/v1/entities", json={"texts": TEXTS}).json()["results"]
        shown = client.post("/v1/entities?format=displacy", json={"texts": TEXTS}).json()
    assert [r["id"] for r in records] == [1, 2, 3]  # like annotate's line numbers
    for record, doc, text in zip(records, shown["results"], TEXTS, strict=True):
        assert doc["text"] == text and doc["title"] == record["id"]
        assert [(e["start"], e["end"], e["label"]) for e in doc["ents"]] == [
            (e["start_char"], e["end_char"], e["label"]) for e in record["entities"]
        ]


def test_requests_that_differ_only_in_form_get_the_same_bytes(service):
    """Both fields with one null, the format given twice, a charset on the content type: one
    route, one answer."""
    charset = {"Content-Type": "application/json; charset=utf-8"}
    with service.client() as client:
        plain = client.post("/v1/entities", json={"texts": TEXTS})
        both = client.post("/v1/entities", json={"texts": TEXTS, "documents": None})
        query = client.post("/v1/entities?format=records&format=records", json={"texts": TEXTS})
        typed = client.post("/v1/entities", content=json.dumps({"texts": TEXTS}), headers=charset)
    for response in (plain, both, query, typed):
        assert response.status_code == 200 and "x-inference-time" in response.headers
    assert plain.content == both.content == query.content == typed.content


def test_empty_list_gives_empty_results(service):
    with service.client() as client:
        assert client.post("/v1/entities", json={"texts": []}).json() == {"results": []}


@pytest.mark.parametrize(
    "body,field",
    [
        ({"documents": [{"id": 1, "text": 5}]}, ["body", "documents", 0, "text"]),
        ({"documents": [{"id": True, "text": "x"}]}, ["body", "documents", 0, "id"]),
        ({"texts": ["a"], "documents": []}, ["body"]),
        ({"text": "a"}, ["body", "text"]),
    ],
)
def test_schema_errors_are_422_naming_the_field(service, body, field):
    with service.client() as client:
        response = client.post("/v1/entities", json=body)
    assert response.status_code == 422
    errors = response.json()["detail"]
    assert any(error["loc"][: len(field)] == field for error in errors), errors


def test_bad_json_and_bad_utf8(service):
    headers = {"Content-Type": "application/json"}
    with service.client() as client:
        broken = client.post("/v1/entities", content=b'{"texts": [', headers=headers)
        latin1 = client.post(
            "/v1/entities", content='{"texts": ["é"]}'.encode("latin-1"), headers=headers
        )
    assert broken.status_code == 422 and broken.json()["detail"][0]["type"] == "json_invalid"
    assert latin1.status_code == 400


def strict_json(response: httpx.Response) -> Any:
    """The body as JSON proper: UTF-8, and no NaN or Infinity (which Python's reader takes)."""

    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(response.content.decode("utf-8"), parse_constant=refuse)


def post_escaped(client: httpx.Client, url: str, body: Any) -> httpx.Response:
    """POST `body` as JSON with every non-ASCII character escaped, as most JSON writers send a
    lone surrogate (httpx's `json=` writes raw UTF-8, which cannot hold one)."""
    return client.post(url, content=json.dumps(body).encode("ascii"), headers=JSON)


def test_nasty_strings_get_offsets_that_slice_the_text(service):
    """Lone surrogates included, compared as JSON reads the texts back (the escapes of a whole
    pair are one character): annotated, an entity's text showing U+FFFD for a surrogate."""
    texts = [
        json.loads(json.dumps(text))
        for text in [*NASTY_STRINGS.values(), *LONE_SURROGATES.values()]
        if len(text) <= LIMITS["max_chars"]
    ]
    with service.client() as client:
        results = []
        for start in range(0, len(texts), LIMITS["max_texts"]):
            chunk = texts[start : start + LIMITS["max_texts"]]
            response = post_escaped(client, "/v1/entities", {"texts": chunk})
            assert response.status_code == 200, response.text
            results += strict_json(response)["results"]
    for text, result in zip(texts, results, strict=True):
        for entity in result["entities"]:
            shown = replace_lone_surrogates(text[entity["start_char"] : entity["end_char"]])
            assert shown == entity["text"]


def test_lone_surrogates_in_text_and_id_get_200_in_both_formats(service):
    """The issue's body, and a surrogate in an id, which comes back as the same escape."""
    body = {"documents": [{"id": "cut-\udc80", "text": "Paris \ud800 Berlin"}]}
    with service.client() as client:
        texts = post_escaped(client, "/v1/entities", {"texts": ["Paris \ud800 Berlin"]})
        records = post_escaped(client, "/v1/entities", body)
        shown = post_escaped(client, "/v1/entities?format=displacy", body)
    assert texts.status_code == records.status_code == shown.status_code == 200
    assert strict_json(texts)["results"][0]["id"] == 1
    assert strict_json(records)["results"][0]["id"] == "cut-\udc80"
    (doc,) = strict_json(shown)["results"]
    assert doc["title"] == "cut-\udc80" and doc["text"] == "Paris \ufffd Berlin"


@pytest.mark.parametrize(
    "body,headers,field",
    [
        # The body: 1e400 parses to infinity, which the 422 echoes back.
        (b'{"documents": [{"id": 1e400, "text": "Berlin"}]}', JSON, ["body", "documents", 0, "id"]),
        (b'{"texts": NaN}', JSON, ["body", "texts"]),
        (b'{"texts": ["a", -Infinity]}', JSON, ["body", "texts", 1]),
        (b'{"documents": [{"id": [1e400], "text": "\\udc80"}]}', JSON, ["body", "documents", 0]),
        (b'{"texts": ["a"], "\\ud800": 1}', JSON, ["body"]),
        # Not sent as JSON: the body reaches validation as raw bytes, here not even UTF-8.
        (b'\xff\xfe{"texts": ["a"]}', {"Content-Type": "text/plain"}, ["body"]),
        (b'{"texts": ["a"]}', {}, ["body"]),
        # Unparseable: an integer of 5,000 digits, nesting deeper than Python recurses.
        (b'{"texts": [], "documents": [{"id": ' + b"9" * 5000 + b"}]}", JSON, None),
        (b"[" * 100_000, JSON, None),
    ],
)
def test_bodies_it_cannot_take_get_400_or_422_in_valid_json_naming_the_field(
    service, body, headers, field
):
    with service.client() as client:
        response = client.post("/v1/entities", content=body, headers=headers)
    assert response.status_code == (400 if field is None else 422), response.text
    detail = strict_json(response)["detail"]
    if field is not None:
        assert any(error["loc"][: len(field)] == field for error in detail), detail


def test_over_the_limits_is_413_before_any_model_work(service):
    with service.client() as client:
        many = client.post("/v1/entities", json={"texts": ["a"] * (LIMITS["max_texts"] + 1)})
        long = client.post("/v1/entities", json={"texts": ["a" * (LIMITS["max_chars"] + 1)]})
    assert many.status_code == 413 and f"limit is {LIMITS['max_texts']}" in many.json()["detail"]
    assert long.status_code == 413 and f"limit is {LIMITS['max_chars']}" in long.json()["detail"]


def test_api_key(service):
    with service.client(key=None) as client:
        assert client.post("/v1/entities", json={"texts": ["x"]}).status_code == 401
        assert client.get("/v1/metadata").status_code == 401
        assert client.get("/healthz").status_code == 200  # probes stay open
    with service.client(key="wrong") as client:
        assert client.post("/v1/entities", json={"texts": ["x"]}).status_code == 401


def test_probes_metadata_docs_and_page(service):
    with service.client() as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/readyz").json() == {"ready": True}
        metadata = client.get("/v1/metadata").json()
        assert "/v1/entities" in client.get("/openapi.json").json()["paths"]
        page = client.get("/")
    (component,) = metadata["components"].values()
    assert sorted(component["labels"]) == ["LOC", "PER"]
    assert component["model"]["precision"] == "fp32"
    assert component["model"]["runtime_precision"] == "fp32"
    assert metadata["settings"]["max_texts"] == LIMITS["max_texts"]
    assert metadata["versions"]["spacy_bert_ner"]
    assert page.status_code == 200 and "Find entities" in page.text
    assert "http://" not in page.text and "https://" not in page.text  # no external assets


async def _flood(url: str, n_requests: int, *, tolerate_errors: bool = False) -> list[Any]:
    """`n_requests` concurrent requests of `max_texts` long texts each. With
    `tolerate_errors`, a failed connection is returned in its place rather than raised."""
    text = " ".join(["angela merkel met macron in paris"] * 40)
    headers = {"Authorization": f"Bearer {API_KEY}"}
    limits = httpx.Limits(max_connections=n_requests)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=120, limits=limits) as c:
        body = {"texts": [text] * LIMITS["max_texts"]}
        calls = (c.post("/v1/entities", json=body) for _ in range(n_requests))
        return await asyncio.gather(*calls, return_exceptions=tolerate_errors)


def test_overload_gets_503_with_retry_after_and_nothing_else(service):
    responses = asyncio.run(_flood(service.url, 80))
    statuses = {response.status_code for response in responses}
    assert statuses <= {200, 503}, statuses
    refused = [r for r in responses if r.status_code == 503]
    assert refused, "80 concurrent requests exceed what a replica holds (batch + max_queued)"
    assert all(r.headers.get("retry-after") == "1" for r in refused)
    assert any(r.status_code == 200 for r in responses)


def ndjson(lines: list[str]) -> bytes:
    return "".join(line + "\n" for line in lines).encode()


def test_ndjson_bulk_answers_every_line_with_its_id_and_errors_name_the_line(service):
    """More documents than the batcher's window, a bad line among them: one record each."""
    documents = [{"id": f"d{i}", "text": TEXTS[i % len(TEXTS)]} for i in range(120)]
    lines = [json.dumps(document) for document in documents]
    lines[7] = "not json"
    lines[9] = json.dumps({"id": "long", "text": "a" * (LIMITS["max_chars"] + 1)})
    lines.insert(20, "")  # blank lines are not documents, as in annotate's input
    headers = {"Content-Type": "application/x-ndjson"}
    with service.client() as client:
        response = client.post("/v1/entities", content=ndjson(lines), headers=headers)
        single = client.post("/v1/entities", json={"documents": [documents[0]]}).json()
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-ndjson"
    records = [json.loads(line) for line in response.text.splitlines()]
    assert len(records) == len(documents)
    errors = {record["line"]: record for record in records if "error" in record}
    assert errors[8] == {"id": None, "line": 8, "error": errors[8]["error"]}
    assert errors[8]["error"].startswith("not valid JSON")
    assert errors[10]["id"] == "long" and "the limit is 2000" in errors[10]["error"]
    answered = sorted(record["id"] for record in records if "entities" in record)
    assert answered == sorted(d["id"] for i, d in enumerate(documents) if i not in (7, 9))
    first = next(record for record in records if record.get("id") == "d0")
    spans = [(e["start_char"], e["end_char"], e["label"]) for e in first["entities"]]
    # Scores may differ in the last digit with the batch (see annotate.records).
    assert spans == [
        (e["start_char"], e["end_char"], e["label"]) for e in single["results"][0]["entities"]
    ]


def test_ndjson_bulk_needs_the_key_too(service):
    with service.client(key=None) as client:
        response = client.post(
            "/v1/entities",
            content=ndjson(['{"text": "x"}']),
            headers={"Content-Type": "application/x-ndjson"},
        )
    assert response.status_code == 401


def test_timing_headers(service):
    with service.client() as client:
        response = client.post("/v1/entities", json={"texts": TEXTS})
    queued, inference = (
        float(response.headers[name]) for name in ("x-queue-time", "x-inference-time")
    )
    assert 0 <= queued < 60 and 0 < inference < 60


@LOCAL_ONLY
def test_metrics_in_prometheus_format(service):
    from prometheus_client.parser import text_string_to_metric_families

    with service.client() as client:
        client.post("/v1/entities", json={"texts": TEXTS})
        client.post("/v1/entities", json={"texts": ["a"] * (LIMITS["max_texts"] + 1)})
        text = client.get("/metrics").text
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    assert samples[("bert_ner_requests_total", (("status", "200"),))] >= 1
    assert samples[("bert_ner_requests_total", (("status", "413"),))] >= 1
    assert samples[("bert_ner_request_latency_seconds_count", ())] >= 2
    assert samples[("bert_ner_batch_size_count", ())] >= 1
    assert samples[("bert_ner_queue_depth", ())] == 0
    assert samples[("bert_ner_texts_in_flight", ())] == 0


@LOCAL_ONLY
def test_a_listener_pipeline_answers_metadata(service, trained_multitask, tmp_path):
    """A second local service on a multi-task pipeline (the bert_ner pipe listening to a
    shared transformer), whose `/v1/metadata` used to be a 500."""
    log = tmp_path / "serve.log"
    listener, process = start_service(trained_multitask, log, "local")
    try:
        with listener.client() as client:
            metadata = client.get("/v1/metadata")
            entities = client.post("/v1/entities", json={"texts": TEXTS})
    finally:
        stop_service(process, log)
    assert metadata.status_code == 200 and entities.status_code == 200
    (component,) = metadata.json()["components"].values()
    assert component["model"] == {"architecture": "listener_token_classifier"}


@pytest.mark.slow
@LOCAL_ONLY
def test_sigterm_finishes_the_requests_in_flight_and_exits_0(service, tmp_path: Path):
    """SIGTERM while an NDJSON request is half answered: it is answered to its last line,
    then the process exits 0."""
    log = tmp_path / "serve.log"
    stopping, process = start_service(service.pipeline, log, "local")
    n_documents = 1500
    body = ndjson([json.dumps({"id": i, "text": TEXTS[i % 3] * 5}) for i in range(n_documents)])
    records = []
    try:
        with stopping.client() as client:
            headers = {"Content-Type": "application/x-ndjson"}
            with client.stream("POST", "/v1/entities", content=body, headers=headers) as response:
                for line in response.iter_lines():
                    if not records:
                        process.send_signal(signal.SIGTERM)
                    records.append(json.loads(line))
        assert process.wait(timeout=120) == 0, log.read_text()[-3000:]
    finally:
        if process.poll() is None:
            process.kill()
    assert sorted(record["id"] for record in records) == list(range(n_documents))
    assert "stopped" in log.read_text()


def replica_processes() -> list[psutil.Process]:
    return [
        process
        for process in psutil.process_iter(["cmdline"])
        if any("ServeReplica:bert_ner" in part for part in process.info["cmdline"] or [])
    ]


@RAY_ONLY
def test_a_killed_replica_is_restarted_and_nothing_hangs(service):
    """Last in this file: it kills the replica mid-load. Requests in flight fail with a 5xx
    (or a dropped connection), later ones succeed once Ray has restarted it."""
    (replica,) = replica_processes()

    async def load_and_kill() -> list[Any]:
        flood = asyncio.ensure_future(_flood(service.url, 6, tolerate_errors=True))
        await asyncio.sleep(1.0)
        replica.kill()
        return await flood

    outcomes = asyncio.run(load_and_kill())
    for outcome in outcomes:
        assert isinstance(outcome, httpx.HTTPError) or outcome.status_code in (200, 500, 502, 503)
    deadline = time.monotonic() + 180
    with service.client(timeout=30) as client:
        while time.monotonic() < deadline:
            try:
                response = client.post("/v1/entities", json={"texts": TEXTS})
                if response.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(1)
        else:
            pytest.fail("no replica answered within 180 s of the kill")
    assert replica_processes() and replica_processes()[0].pid != replica.pid
