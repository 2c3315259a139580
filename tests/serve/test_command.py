"""The `serve` command before anything starts: the local engine's path never imports Ray, and
settings that cannot work are one-line errors."""

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from spacy_bert_ner.cli import app
from spacy_bert_ner.cli.inference import SERVE
from spacy_bert_ner.serve.settings import ServiceSettings


@pytest.mark.slow
def test_the_local_engine_never_imports_ray():
    code = (
        "import sys, spacy_bert_ner.cli, spacy_bert_ner.serve.command, spacy_bert_ner.serve.local; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'ray'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_the_cli_takes_its_defaults_from_the_settings():
    assert SERVE == ServiceSettings()
    assert ServiceSettings().with_cores(8).cpus_per_replica == 8.0
    assert ServiceSettings(max_replicas=3).with_cores(8).cpus_per_replica == 2.0
    assert ServiceSettings(cpus_per_replica=1.5).with_cores(8).cpus_per_replica == 1.5


@pytest.mark.parametrize(
    "options,message",
    [
        (["--max-batch-size=0"], "--max-batch-size must be >= 1"),
        (["--port=70000"], "--port must be between 1 and 65535"),
        (["--address=auto"], "--address, --metrics-port and --replicas are for --engine ray"),
        (["--replicas=2"], "are for --engine ray"),
        (["--engine=spark"], "'spark' is not one of"),
        (["--engine=ray", "--label-studio=models"], "--label-studio needs --engine local"),
        (["--label-studio=models", "--label-studio-every=0"], "--label-studio-every must be"),
    ],
)
def test_settings_that_cannot_work_are_one_line(trained_tiny, options, message):
    result = CliRunner().invoke(app, ["serve", str(trained_tiny), *options])
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output
