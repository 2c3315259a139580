"""The configs in configs/: complete as spaCy fills them, and the distillation config is
cpu.cfg with the teachers' reader, so the two can differ only in what the student learns from."""

import subprocess
import sys
from pathlib import Path

import pytest
from thinc.api import Config

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_configs_are_complete():
    """`spacy init fill-config` has nothing to add to the configs that build every component
    (cpu_frozen_transformer.cfg sources two, which fill-config would load)."""
    for name in ("cpu.cfg", "gpu.cfg", "cpu_multitask.cfg", "cpu_distill.cfg"):
        path = REPO / "configs" / name
        filled = subprocess.run(
            [sys.executable, "-m", "spacy", "init", "fill-config", str(path), "-"],
            capture_output=True,
            text=True,
        )
        assert filled.returncode == 0, filled.stderr
        assert Config().from_str(filled.stdout, interpolate=False) == Config().from_disk(
            path, interpolate=False
        )


def test_the_distillation_config_is_cpu_cfg_reading_teacher_distributions():
    """The student differs from a model trained with cpu.cfg by what it learns from alone."""
    cpu = Config().from_disk(REPO / "configs" / "cpu.cfg", interpolate=False)
    student = Config().from_disk(REPO / "configs" / "cpu_distill.cfg", interpolate=False)
    assert student["paths"].pop("teachers") == "training/teachers.msgpack"
    reader = student["corpora"]["train"]
    assert reader.pop("@readers") == "spacy_bert_ner.TeacherRuns.v1"
    assert reader.pop("teachers") == "${paths.teachers}"
    del cpu["corpora"]["train"]["@readers"]  # spacy_bert_ner.SentenceRuns.v1
    assert student["components"]["bert_ner"]["distill_weight"] == 0.5
    assert student == cpu
