from pathlib import Path

import pytest
import spacy

from benchmarks.inputs import bert_ner_pipeline, hf_model, read_sentences


def test_sentences_keep_their_words_and_iob2_tags(conll_path: Path):
    sents = read_sentences(conll_path, limit=4)
    assert len(sents.words) == 4 and sents.n_words == 5 + 3 + 5 + 5
    assert sents.tags[0] == ["B-PER", "I-PER", "O", "O", "B-LOC"]
    assert sents.texts()[1] == "berlin and paris"
    assert sents.head(1).words == [sents.words[0]]


def test_a_missing_conll_file_stops_with_its_path_and_the_variable(tmp_path: Path):
    with pytest.raises(SystemExit, match=r"nowhere\.conll: no such CoNLL file.*SPACY_BERT_NER"):
        read_sentences(tmp_path / "nowhere.conll")


def test_a_spacy_pipeline_gives_its_bert_ner_model(trained_tiny: Path, tmp_path: Path):
    hf_dir, kind = hf_model(str(trained_tiny), tmp_path)
    assert kind == "spacy" and hf_dir == trained_tiny / "bert_ner" / "model"
    assert bert_ner_pipeline(str(trained_tiny), tmp_path) == (trained_tiny, hf_dir, "spacy")


def test_a_hf_classifier_is_wrapped_in_a_loadable_pipeline(tiny_bert: Path, tmp_path: Path):
    pipeline, hf_dir, kind = bert_ner_pipeline(str(tiny_bert), tmp_path)
    assert (kind, hf_dir) == ("hf", tiny_bert)
    assert spacy.load(pipeline).pipe_names == ["bert_ner"]


def test_a_directory_that_is_neither_is_refused(tmp_path: Path):
    with pytest.raises(SystemExit, match="neither a Hugging Face model dir nor a spaCy pipeline"):
        hf_model(str(tmp_path), tmp_path)
