"""The running service over real HTTP: answers, refusals, overload and a killed replica."""

import asyncio
import json
import time
from typing import Any

import httpx
import psutil
import pytest

from spacy_bert_ner.annotate.command import annotate
from spacy_bert_ner.serve.app import check_limits, word_budget_groups
from spacy_bert_ner.serve.settings import ServiceSettings

from ..nasty_strings import NASTY_STRINGS
from .conftest import API_KEY, LIMITS

TEXTS = ["angela merkel met macron in paris", "the berlin of angela", "paris and berlin met merkel"]


def test_entities_are_the_records_annotate_writes_byte_for_byte(service, tmp_path):
    """One text per request and per annotate batch, so both run the same computation."""
    inputs = tmp_path / "in.jsonl"
    inputs.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(TEXTS)))
    annotate(str(service.pipeline), inputs, tmp_path / "out.jsonl", batch_size=1, progress=False)
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


def test_nasty_strings_get_offsets_that_slice_the_text(service):
    texts = [text for text in NASTY_STRINGS.values() if len(text) <= LIMITS["max_chars"]]
    with service.client() as client:
        results = []
        for start in range(0, len(texts), LIMITS["max_texts"]):
            chunk = texts[start : start + LIMITS["max_texts"]]
            response = client.post("/v1/entities", json={"texts": chunk})
            assert response.status_code == 200, response.text
            results += response.json()["results"]
    for text, result in zip(texts, results, strict=True):
        for entity in result["entities"]:
            assert text[entity["start_char"] : entity["end_char"]] == entity["text"]


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


def replica_processes() -> list[psutil.Process]:
    return [
        process
        for process in psutil.process_iter(["cmdline"])
        if any("ServeReplica:bert_ner" in part for part in process.info["cmdline"] or [])
    ]


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


def test_word_budget_groups_keep_order_and_budget():
    texts = ["a b c", "d e", "f g h i", "j", "k l m n o p"]
    groups = word_budget_groups(texts, budget=5)
    assert [i for group in groups for i in group] == list(range(len(texts)))
    assert groups == [[0, 1], [2, 3], [4]]  # a text over the budget makes a group alone


def test_check_limits_names_the_text():
    settings = ServiceSettings(max_texts=2, max_chars=3)
    check_limits([{"text": "abc"}, {"text": ""}], settings)
    with pytest.raises(Exception, match="text 1 has 4 characters; the limit is 3"):
        check_limits([{"text": "a"}, {"text": "abcd"}], settings)
