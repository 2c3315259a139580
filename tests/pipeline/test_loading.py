"""Finding a pipeline's bert_ner components, whatever their names."""

import pytest
import spacy

from spacy_bert_ner.errors import BertNERError
from spacy_bert_ner.pipeline.loading import bert_ner_pipes, single_bert_ner_pipe


def pipeline_with(*names: str) -> spacy.Language:
    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    for name in names:  # never loaded: finding a pipe must not load its model
        nlp.add_pipe("bert_ner", name=name, config={"model": "not-loaded-until-used"})
    return nlp


def test_pipes_are_found_by_class_whatever_their_names():
    nlp = pipeline_with("ner_bert", "bert_ner")
    assert [name for name, _ in bert_ner_pipes(nlp)] == ["ner_bert", "bert_ner"]
    nlp.disable_pipe("bert_ner")
    assert [name for name, _ in bert_ner_pipes(nlp)] == ["ner_bert"]
    assert single_bert_ner_pipe(nlp, "here") == ("ner_bert", nlp.get_pipe("ner_bert"))


@pytest.mark.parametrize("names", [(), ("a", "b")])
def test_a_command_for_one_pipe_refuses_none_or_two(names):
    with pytest.raises(
        BertNERError, match=f"here: expected one bert_ner component, found {len(names)}"
    ):
        single_bert_ner_pipe(pipeline_with(*names), "here")
