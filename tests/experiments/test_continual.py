"""Scoring of the continual-learning experiment and the recipe it trains with (the whole run
is in test_project.py)."""

import pytest
import spacy
from spacy.tokens import Doc

from spacy_bert_ner.experiments.continual import (
    ContinualSettings,
    continue_training,
    score_continual,
)
from spacy_bert_ner.experiments.recipe import Recipe

from ..conftest import NEW_ROWS, examples_of

WORDS = ["Angela", "Merkel", "met", "German", "fans", "in", "Paris", "."]


def test_old_types_are_scored_without_the_new_type_on_either_side():
    vocab = spacy.blank("en").vocab
    gold = Doc(vocab, words=WORDS, ents=["B-PER", "I-PER", "O", "B-MISC", "O", "O", "B-LOC", "O"])
    # PER right, LOC missed, German called LOC: an old-type false positive, a MISC miss.
    pred = Doc(vocab, words=WORDS, ents=["B-PER", "I-PER", "O", "B-LOC", "O", "O", "O", "O"])
    scores = score_continual([gold], [pred], "MISC")
    assert scores["old_per_type"] == {"LOC": 0.0, "PER": 1.0}
    assert scores["old_f1"] == pytest.approx(0.5)  # P 1/2, R 1/2
    assert scores["new_f1"] == 0.0 and scores["new_recall"] == 0.0
    assert scores["all_f1"] == pytest.approx(2 * (1 / 2 * 1 / 3) / (1 / 2 + 1 / 3))

    only_misc = Doc(vocab, words=WORDS, ents=["O", "O", "O", "B-MISC", "O", "O", "O", "O"])
    scores = score_continual([gold], [only_misc], "MISC")
    assert scores["new_f1"] == 1.0 and scores["old_f1"] == 0.0


@pytest.mark.parametrize("learn_rate", [None, 0.5])
def test_continuing_trains_with_the_recipe_of_the_pipelines_own_config(
    trained_tiny, monkeypatch, learn_rate
):
    nlp = spacy.load(trained_tiny)
    fitted = []
    optimizer_for = Recipe.optimizer_for

    def spy(recipe, total_steps, peak_rate=None):
        fitted.append((recipe, total_steps, peak_rate))
        return optimizer_for(recipe, total_steps, peak_rate)

    monkeypatch.setattr(Recipe, "optimizer_for", spy)
    settings = ContinualSettings(epochs=2, words_per_batch=8, learn_rate=learn_rate)
    _, steps, losses = continue_training(nlp, examples_of(nlp, NEW_ROWS), None, settings)
    assert fitted == [(Recipe.of(nlp.config), steps, learn_rate)] and steps > 2
    assert losses["bert_ner"] > 0
