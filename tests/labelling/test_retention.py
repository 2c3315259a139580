"""`adapt --retention`: what the guard reports at the end of a run. (A whole guarded run on
the tiny pipeline, marking, ranking and the threshold, is in test_adapt.py.)"""

from spacy_bert_ner.labelling.retention import report_retention

START = {"start_f": 0.90, "start_dev_f": 0.30, "words": 5000}


def test_a_model_best_that_beat_the_start_in_domain_is_reported_as_improved(capsys) -> None:
    report = report_retention(START, {"ents_f": 0.85, "retention_f": 0.895}, 1.0)
    assert report["improved"] and report["best_f"] == 0.895 and report["words"] == 5000
    assert "no checkpoint beat" not in capsys.readouterr().out


def test_a_model_best_no_better_than_the_start_warns_how_to_loosen_the_guard(capsys) -> None:
    report = report_retention(START, {"ents_f": 0.30, "retention_f": 0.90}, 1.0)
    assert not report["improved"]
    out = capsys.readouterr().out
    assert "no checkpoint beat the pipeline" in out and "--max-forgetting" in out
