"""`benchmarks.guarantee_splits` on the tiny model: every split is counted for each label,
each split's threshold is one `calibrate --target-precision` could choose, and a split whose
kept entities are all right is never a miss."""

import spacy
from spacy.tokens import Doc, DocBin

from benchmarks.guarantee_splits import main, parse_args, run_splits
from tests.conftest import OLD_ROWS

WORDS = ["angela", "berlin", "met", "the", "paris", "of", "macron", "and", "merkel"]


def test_half_splits_of_a_tiny_dev_set(trained_tiny, tmp_path, capsys):
    vocab = spacy.blank("en").vocab
    docs = [Doc(vocab, words=words, ents=tags) for words, tags in OLD_ROWS] * 20
    docs += [Doc(vocab, words=WORDS[i:] + WORDS[:i], ents=["O"] * len(WORDS)) for i in range(9)]
    DocBin(docs=docs).to_disk(tmp_path / "dev.spacy")
    argv = [str(trained_tiny), str(tmp_path / "dev.spacy"), "--splits", "5",
            "--target", "0.5", "--risk", "0.2"]  # fmt: skip
    results = run_splits(parse_args(argv))
    assert set(results) == {"LOC", "PER"}
    assert any(figures["splits"] for figures in results.values())
    for figures in results.values():
        assert 0 <= figures["misses"] <= figures["splits"] <= 5
        if figures["splits"]:
            assert 0.0 < figures["threshold"] <= 0.75  # the first candidate for a 0.5 target
    main(argv)
    assert "5 half-splits" in capsys.readouterr().out
