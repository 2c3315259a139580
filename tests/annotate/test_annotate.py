"""The annotate command: records, errors, resume, local processes, and Ray against local."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import spacy
from typer.testing import CliRunner

from spacy_bert_ner import replace_lone_surrogates
from spacy_bert_ner.annotate.annotator import Annotator
from spacy_bert_ner.annotate.command import Tally, annotate_file
from spacy_bert_ner.annotate.progress import read_done
from spacy_bert_ner.annotate.records import NO_ID, Record, jsonl_records, make_record, read_records
from spacy_bert_ner.cli import app
from spacy_bert_ner.errors import BertNERError

from ..nasty_strings import LONE_SURROGATES, NASTY_STRINGS

NAMES = ["Angela Merkel", "Paris", "Berlin", "the Berlin Senate", "Merkel"]


def text(i: int) -> str:
    return f"{NAMES[i % 5]} met {NAMES[(i * 3 + 1) % 5]} in {NAMES[(i + 2) % 5]} on day {i}."


def write_jsonl(path: Path, rows: list) -> Path:
    """`rows` are dicts (dumped) or raw strings (written as they are), one per line."""
    lines = [row if isinstance(row, str) else json.dumps(row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf8")
    return path


# Good records, with every kind of bad one between them, and the errors they must give.
MIXED_ROWS = [
    *({"id": f"doc-{i}", "text": text(i)} for i in range(12)),
    {"id": "no-text"},
    {"id": "null-text", "text": None},
    {"id": "int-text", "text": 42},
    "{not json",
    "[1, 2]",
    {"id": 1.5, "text": "float id"},
    {"id": "doc-3", "text": "a second doc-3"},
    "",
    {"text": "An id-less record in Paris."},
    {"id": 7, "text": "An integer id in Berlin."},
    {"id": "boom", "text": "This one makes the pipeline go boom."},
    {"id": "cut-\udc80", "text": "Paris \ud800 Berlin"},  # lone surrogates: annotated
    {"id": "half-emoji", "text": "\ud83d"},
    *({"id": f"doc-{i}", "text": text(i)} for i in range(12, 20)),
]
MIXED_ERRORS = {
    (json.dumps("no-text"), 13): "'text' is missing or null",
    (json.dumps("null-text"), 14): "'text' is missing or null",
    (json.dumps("int-text"), 15): "'text' is a number, not a string",
    (NO_ID, 16): "not valid JSON",
    (NO_ID, 17): "not a JSON object but an array",
    (NO_ID, 18): "'id' is a number, not a string or an integer",
    (json.dumps("doc-3"), 19): "duplicate id: first on line 4",
    (json.dumps("boom"), 23): "RuntimeError: boom",
}
MIXED_IDS = [
    *(f"doc-{i}" for i in range(12)),
    *(21, 7, "cut-\udc80", "half-emoji"),
    *(f"doc-{i}" for i in range(12, 20)),
]


@pytest.fixture
def mixed_input(tmp_path) -> Path:
    return write_jsonl(tmp_path / "input.jsonl", MIXED_ROWS)


def lines_of(path: Path) -> list[str]:
    return path.read_text(encoding="utf8").splitlines()


def error_table(path: Path) -> dict[tuple[str, int], str]:
    table = {}
    for line in lines_of(path):
        value = json.loads(line)
        table[json.dumps(value["id"]), value["line"]] = value["error"]
    return table


def assert_mixed_errors(path: Path) -> None:
    found = error_table(path)
    assert found.keys() == MIXED_ERRORS.keys()
    for key, reason in MIXED_ERRORS.items():
        assert found[key].startswith(reason), (key, found[key])


# -- records ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value,expected",
    [
        ({"id": "a", "text": "x"}, Record(3, '"a"', "x")),
        ({"id": 5, "text": "x"}, Record(3, "5", "x")),
        ({"id": "ü", "text": ""}, Record(3, '"ü"', "")),
        ({"text": "x"}, Record(3, "3", "x")),
        ({"id": None, "text": "x"}, Record(3, "3", "x")),
        ({"id": True, "text": "x"}, Record(3, NO_ID, None, "'id' is a boolean, not a string")),
        ({"id": [1], "text": "x"}, Record(3, NO_ID, None, "'id' is an array, not a string")),
        ({"id": "a", "text": ["x"]}, Record(3, '"a"', None, "'text' is an array, not a string")),
        ({"id": "a", "body": "x"}, Record(3, '"a"', None, "'text' is missing or null")),
        ("text", Record(3, NO_ID, None, "not a JSON object but a string")),
        # Lone surrogates: replaced in the text, escaped in the id's JSON text.
        ({"id": "a\ud800", "text": "x\udfffy"}, Record(3, '"a\\ud800"', "x\ufffdy")),
    ],
)
def test_make_record(value, expected: Record) -> None:
    record = make_record(3, value, "text", "id")
    assert (record.line, record.id, record.text) == (expected.line, expected.id, expected.text)
    assert (record.error or "").startswith(expected.error or "")


def test_jsonl_records_number_physical_lines_and_skip_blank_ones() -> None:
    lines = [b'{"id": 1, "text": "a"}\n', b"\n", b"  \n", b'{"text": "b"}\n', b"\xff\xfe{\n"]
    records = list(jsonl_records(lines, "text", "id"))
    assert [(r.line, r.id, r.text) for r in records[:2]] == [(1, "1", "a"), (4, "4", "b")]
    assert records[2].line == 5 and records[2].error.startswith("not valid JSON")


def test_parquet_gives_the_same_records_as_jsonl(tmp_path) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    rows = [{"id": "a", "text": "x"}, {"id": None, "text": "y"}, {"id": "c", "text": None}]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "in.parquet")
    write_jsonl(tmp_path / "in.jsonl", rows)
    assert list(read_records(tmp_path / "in.parquet")) == list(read_records(tmp_path / "in.jsonl"))
    # A column the file lacks is missing in every record, not a failure of the file.
    ids_only = list(read_records(tmp_path / "in.parquet", text_field="body"))
    assert [r.error for r in ids_only] == ["'body' is missing or null"] * 3


# -- the local engine -------------------------------------------------------------------------


def test_local_writes_every_good_record_in_order_and_every_bad_one_to_errors(
    fragile_pipeline, mixed_input, tmp_path
) -> None:
    output = tmp_path / "out.jsonl"
    tally = annotate_file(str(fragile_pipeline), mixed_input, output, batch_size=4, progress=False)
    records = [json.loads(line) for line in lines_of(output)]
    assert [r["id"] for r in records] == MIXED_IDS
    assert_mixed_errors(tmp_path / "out.errors.jsonl")
    assert (tally.annotated, tally.errors, tally.skipped) == (len(MIXED_IDS), 8, 0)
    by_id = {r["id"]: r for r in records}
    # Offsets into the row's text: doc-3 is the first doc-3, not its duplicate.
    for record, row in ((by_id[f"doc-{i}"], MIXED_ROWS[i]) for i in range(12)):
        assert record["entities"], "the tiny model finds some entities in every text"
        for ent in record["entities"]:
            assert ent.keys() == {"start_char", "end_char", "label", "text", "score"}
            assert row["text"][ent["start_char"] : ent["end_char"]] == ent["text"]
            assert ent["label"] in {"PER", "LOC", "ORG", "MISC"}
            # A span probability: the random tiny model's 14-token entity has about 0.2**14,
            # which rounds to 0.
            assert 0 <= ent["score"] <= 1 and round(ent["score"], 4) == ent["score"]


def test_a_failing_batch_costs_only_its_failing_record(fragile_pipeline, tmp_path) -> None:
    """The boom doc shares a batch with three good ones, which are retried and annotated."""
    rows = [{"id": i, "text": "boom" if i == 2 else text(i)} for i in range(8)]
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    annotate_file(
        str(fragile_pipeline), source, tmp_path / "out.jsonl", batch_size=4, progress=False
    )
    assert [json.loads(line)["id"] for line in lines_of(tmp_path / "out.jsonl")] == [
        0,
        1,
        3,
        4,
        5,
        6,
        7,
    ]
    assert error_table(tmp_path / "out.errors.jsonl") == {("2", 3): "RuntimeError: boom"}


def test_nasty_strings_and_lone_surrogates_are_annotated_with_offsets_into_the_text(
    pipeline, tmp_path
) -> None:
    """Every text of tests/nasty_strings.py, from JSON as a user sends it: one output line each,
    nothing in the errors file, offsets that index the text given (an entity's text shows
    U+FFFD where the text has a lone surrogate). The texts are compared as JSON reads them
    back: it joins the escapes of a whole pair into one character."""
    texts = [
        json.loads(json.dumps(t)) for t in [*NASTY_STRINGS.values(), *LONE_SURROGATES.values()]
    ]
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": i, "text": t} for i, t in enumerate(texts)])
    tally = annotate_file(
        str(pipeline), source, tmp_path / "out.jsonl", batch_size=4, progress=False
    )
    assert (tally.annotated, tally.errors) == (len(texts), 0)
    records = [json.loads(line) for line in lines_of(tmp_path / "out.jsonl")]
    assert [record["id"] for record in records] == list(range(len(texts)))
    assert any(record["entities"] for record in records[len(NASTY_STRINGS) :])
    for record, given in zip(records, texts, strict=True):
        for ent in record["entities"]:
            shown = replace_lone_surrogates(given[ent["start_char"] : ent["end_char"]])
            assert shown == ent["text"]


def test_a_thousand_records_with_ten_lone_surrogate_texts_give_a_thousand_lines(
    pipeline, tmp_path
) -> None:
    bad = list(LONE_SURROGATES.values()) * 2
    rows = [{"id": i, "text": text(i)} for i in range(1000)]
    for n, surrogate_text in enumerate(bad):
        rows[n * 97 + 3]["text"] = surrogate_text
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    tally = annotate_file(
        str(pipeline), source, tmp_path / "out.jsonl", batch_size=64, progress=False
    )
    assert (tally.annotated, tally.errors) == (1000, 0)
    ids = [json.loads(line)["id"] for line in lines_of(tmp_path / "out.jsonl")]
    assert ids == list(range(1000))


def test_a_text_the_tokenizer_rejects_is_an_error_record(pipeline) -> None:
    nlp = spacy.load(pipeline)
    nlp.max_length = 50
    records = [Record(1, "1", "Paris."), Record(2, "2", "Paris " * 20), Record(3, "3", "Berlin.")]
    results = list(Annotator(nlp, batch_size=8).results(records))
    assert [kind for kind, _ in results] == ["annotated", "error", "annotated"]
    assert json.loads(results[1][1])["error"].startswith("ValueError: [E088]")


def test_entities_come_from_the_spans_key_when_the_pipe_writes_there(tiny_bert) -> None:
    def first_result(spans_key):
        nlp = spacy.blank("en")
        nlp.add_pipe("bert_ner", config={"model": str(tiny_bert), "spans_key": spans_key})
        records = [Record(1, "1", text(1))]
        return next(Annotator(nlp, batch_size=1).results(records))

    in_ents, in_spans = first_result(None), first_result("sc")
    assert json.loads(in_ents[1])["entities"]
    assert in_spans == in_ents


def test_two_processes_write_what_one_does(fragile_pipeline, mixed_input, tmp_path) -> None:
    for workers in (1, 2):
        annotate_file(
            str(fragile_pipeline),
            mixed_input,
            tmp_path / f"out{workers}.jsonl",
            batch_size=3,
            workers=workers,
            progress=False,
        )
    assert lines_of(tmp_path / "out2.jsonl") == lines_of(tmp_path / "out1.jsonl")
    assert lines_of(tmp_path / "out2.errors.jsonl") == lines_of(tmp_path / "out1.errors.jsonl")


def test_rerun_resumes_after_a_crash_without_duplicates(
    fragile_pipeline, mixed_input, tmp_path
) -> None:
    model = str(fragile_pipeline)
    reference = tmp_path / "reference.jsonl"
    annotate_file(model, mixed_input, reference, batch_size=4, progress=False)
    # A crash while writing: 5 complete lines and half of the 6th; 3 error lines and a torn one.
    output, errors = tmp_path / "out.jsonl", tmp_path / "out.errors.jsonl"
    done, torn = lines_of(reference)[:5], lines_of(reference)[5]
    output.write_text("".join(f"{line}\n" for line in done) + torn[:20], encoding="utf8")
    error_lines = lines_of(tmp_path / "reference.errors.jsonl")
    errors.write_text("".join(f"{line}\n" for line in error_lines[:3]) + "{", encoding="utf8")

    tally = annotate_file(model, mixed_input, output, batch_size=4, progress=False)
    assert output.read_text(encoding="utf8") == reference.read_text(encoding="utf8")
    assert lines_of(errors) == error_lines
    assert (tally.annotated, tally.errors, tally.skipped) == (len(MIXED_IDS) - 5, 5, 8)

    again = annotate_file(model, mixed_input, output, batch_size=4, progress=False)
    assert (again.annotated, again.errors, again.skipped) == (0, 0, len(MIXED_IDS) + 8)
    assert output.read_text(encoding="utf8") == reference.read_text(encoding="utf8")


def test_resume_refuses_an_output_it_did_not_write(tmp_path) -> None:
    write_jsonl(tmp_path / "out.jsonl", [{"id": 1, "entities": []}, {"id": 2, "text": "x"}])
    with pytest.raises(BertNERError, match=r"out\.jsonl:2: not a line written by annotate"):
        read_done(tmp_path / "out.jsonl", tmp_path / "out.errors.jsonl")


@pytest.mark.slow
def test_the_core_never_imports_ray() -> None:
    code = (
        "import sys, spacy_bert_ner.annotate.command, spacy_bert_ner.cli; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'ray'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_unknown_engine_is_refused_before_any_work(pipeline, mixed_input, tmp_path) -> None:
    # The CLI offers only the engines there are (test_cli); the function checks too.
    with pytest.raises(BertNERError, match="unknown engine 'spark': use one of local, ray"):
        annotate_file(str(pipeline), mixed_input, tmp_path / "out.jsonl", engine="spark")
    assert not (tmp_path / "out.jsonl").exists()


def test_ray_engine_without_ray_says_how_to_install_it(
    pipeline, mixed_input, tmp_path, monkeypatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails
    monkeypatch.delitem(sys.modules, "spacy_bert_ner.annotate.ray_engine", raising=False)
    with pytest.raises(BertNERError, match=r"pip install 'spacy-bert-ner\[ray\]'"):
        annotate_file(str(pipeline), mixed_input, tmp_path / "out.jsonl", engine="ray")


# -- the command ------------------------------------------------------------------------------


def test_cli_annotate(pipeline, mixed_input, tmp_path) -> None:
    output = tmp_path / "out.jsonl"
    result = CliRunner().invoke(
        app, ["annotate", str(pipeline), str(mixed_input), str(output), "--batch-size", "5"]
    )
    assert result.exit_code == 0, result.output
    assert len(lines_of(output)) == len(MIXED_IDS) + 1  # + the boom record: no fragile pipe
    assert "docs/s" in result.output


@pytest.mark.parametrize(
    "args,message",
    [
        (["{model}", "missing.jsonl", "out.jsonl"], "input not found: missing.jsonl"),
        (["no/such/model", "{input}", "out.jsonl"], "model not found: no/such/model"),
        (["{model}", "{input}", "out.jsonl", "--workers", "0"], "--workers must be >= 1"),
        (["{model}", "{input}", "{input}"], "must be three different files"),
        (["{model}", "{input}", "bad.jsonl"], "bad.jsonl:1: not a line written by annotate"),
        (["{model}", "bad.parquet", "out.jsonl"], "bad.parquet: not a readable Parquet file"),
        # Checked before Ray starts: an actor that cannot load gives no readable error.
        ([".", "{input}", "out.jsonl", "--engine", "ray"], "cannot load model ."),
    ],
)
def test_cli_bad_arguments_fail_as_one_line(
    pipeline, mixed_input, tmp_path, monkeypatch, args, message
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.jsonl").write_text('{"id": 1, "text": "an input, not an output"}\n')
    (tmp_path / "bad.parquet").write_text("not Parquet")
    args = [a.format(model=pipeline, input=mixed_input) for a in args]
    result = CliRunner().invoke(app, ["annotate", *args])
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and message in result.output, result.output


# -- the ray engine ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ray_session():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def annotate_on_ray(pipeline: Path, input_path: Path, output: Path) -> Tally:
    """The ray engine on two actors, one doc per batch (as the local runs below)."""
    return annotate_file(
        str(pipeline), input_path, output, engine="ray", batch_size=1, workers=2, progress=False
    )


@pytest.mark.slow
def test_ray_writes_exactly_what_local_writes(ray_session, pipeline, mixed_input, tmp_path) -> None:
    """One doc per batch in both engines, so every score comes from the same computation."""
    local, distributed = tmp_path / "local.jsonl", tmp_path / "ray.jsonl"
    annotate_file(str(pipeline), mixed_input, local, batch_size=1, progress=False)
    tally = annotate_on_ray(pipeline, mixed_input, distributed)
    assert sorted(lines_of(distributed)) == sorted(lines_of(local))
    assert len(set(lines_of(distributed))) == len(MIXED_IDS) + 1
    assert sorted(lines_of(tmp_path / "ray.errors.jsonl")) == sorted(
        lines_of(tmp_path / "local.errors.jsonl")
    )
    assert (tally.annotated, tally.errors) == (len(MIXED_IDS) + 1, 7)


@pytest.mark.slow
def test_ray_resumes_from_parquet_without_duplicates(ray_session, pipeline, tmp_path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"id": f"p{i}", "text": text(i) if i != 4 else None} for i in range(16)]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "in.parquet", row_group_size=5)
    local = tmp_path / "local.jsonl"
    annotate_file(str(pipeline), tmp_path / "in.parquet", local, batch_size=1, progress=False)
    output = tmp_path / "ray.jsonl"
    output.write_text("".join(f"{line}\n" for line in lines_of(local)[::3]) + '{"id": "p', "utf8")

    tally = annotate_on_ray(pipeline, tmp_path / "in.parquet", output)
    assert sorted(lines_of(output)) == sorted(lines_of(local))
    assert (tally.annotated, tally.errors, tally.skipped) == (10, 1, 5)
    assert lines_of(tmp_path / "ray.errors.jsonl") == lines_of(tmp_path / "local.errors.jsonl")
