"""`assets`: spaCy's asset fetching, offline-friendly: files in place are checked, not
downloaded; a missing one that cannot be downloaded is one line saying where to put it."""

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from spacy_bert_ner.cli import app

ROOT = Path(__file__).resolve().parents[1]
# A port nothing listens on: the download fails at once, as it does offline.
UNREACHABLE = "http://127.0.0.1:9/"


@pytest.fixture
def project(tmp_path) -> Path:
    text = (ROOT / "project.yml").read_text()
    text = text.replace(
        "https://raw.githubusercontent.com/synalp/NER/master/corpus/CoNLL-2003/", UNREACHABLE
    )
    (tmp_path / "project.yml").write_text(text)
    (tmp_path / "assets").mkdir()
    return tmp_path


def test_files_in_place_are_checked_not_downloaded(project, data_dir):
    for name in ("eng.train", "eng.testa", "eng.testb"):
        shutil.copy(data_dir / "conll2003" / name, project / "assets" / name)
    result = CliRunner().invoke(app, ["assets", str(project)])
    assert result.exit_code == 0, result.output
    assert result.output.count("Skipping download with matching checksum") == 3


def test_a_missing_file_offline_is_one_line_saying_where_to_put_it(project, data_dir):
    shutil.copy(data_dir / "conll2003" / "eng.train", project / "assets" / "eng.train")
    result = CliRunner().invoke(app, ["assets", str(project)])
    assert result.exit_code == 1
    [line] = [line for line in result.output.splitlines() if line.startswith("\u2718")]
    assert "assets/eng.testa (md5 7b3e0ba9cdf7fbbf127b55d9b9dd5457" in line
    assert "assets/eng.testb" in line and "assets/eng.train" not in line
    assert f"into {project / 'assets'}/ (see assets/README.md)" in line
    assert "Traceback" not in result.output
