"""spacy_bert_ner.Tagger.v1: spaCy's tagger model with a faster output layer."""

import numpy
import spacy
from spacy.tokens import Doc
from spacy.training import Example
from thinc.api import fix_random_seed

TOK2VEC = {
    "@architectures": "spacy.HashEmbedCNN.v2",
    "width": 16,
    "depth": 1,
    "embed_size": 100,
    "window_size": 1,
    "maxout_pieces": 2,
    "subword_features": True,
    "pretrained_vectors": None,
}
SENTENCES = [
    (["I", "like", "green", "eggs"], ["PRP", "VBP", "JJ", "NNS"]),
    (["Eat", "blue", "ham"], ["VB", "JJ", "NN"]),
]


def trained_tagger(architecture: str, steps: int, **settings: float) -> spacy.Language:
    fix_random_seed(0)
    nlp = spacy.blank("en")
    model = {"@architectures": architecture, "tok2vec": TOK2VEC, **settings}
    nlp.add_pipe("tagger", config={"model": model})
    examples = [
        Example(Doc(nlp.vocab, words=words), Doc(nlp.vocab, words=words, tags=tags))
        for words, tags in SENTENCES
    ]
    optimizer = nlp.initialize(lambda: examples)
    optimizer.learn_rate = 1e-3
    for _ in range(steps):
        nlp.update(examples, sgd=optimizer)
    return nlp


def output_weights(nlp: spacy.Language) -> numpy.ndarray:
    layer = nlp.get_pipe("tagger").model.get_ref("output_layer")
    return layer.get_param("W") * layer.attrs.get("head_lr_scale", 1.0)


def test_scale_one_trains_exactly_as_spacys_tagger():
    ours = trained_tagger("spacy_bert_ner.Tagger.v1", steps=5)
    spacys = trained_tagger("spacy.Tagger.v2", steps=5)
    numpy.testing.assert_allclose(output_weights(ours), output_weights(spacys), atol=1e-6)
    words = SENTENCES[0][0]
    assert [t.tag_ for t in ours(Doc(ours.vocab, words=words))] == [
        t.tag_ for t in spacys(Doc(spacys.vocab, words=words))
    ]


def test_head_lr_scale_moves_only_the_output_layer_further():
    slow = trained_tagger("spacy_bert_ner.Tagger.v1", steps=1)
    fast = trained_tagger("spacy_bert_ner.Tagger.v1", steps=1, head_lr_scale=50.0)
    assert abs(output_weights(fast)).max() > 20 * abs(output_weights(slow)).max()
    # One step from the same start: the layers below saw the same (zero-weight) output
    # layer, so they moved the same.
    below = [tok2vec_params(nlp) for nlp in (slow, fast)]
    assert below[0]
    for slow_param, fast_param in zip(*below, strict=True):
        numpy.testing.assert_allclose(slow_param, fast_param, atol=1e-6)


def tok2vec_params(nlp: spacy.Language) -> list[numpy.ndarray]:
    tok2vec = nlp.get_pipe("tagger").model.get_ref("tok2vec")
    return [node.get_param(name) for node in tok2vec.walk() for name in node.param_names]


def test_learns_the_tags_and_round_trips(tmp_path):
    nlp = trained_tagger("spacy_bert_ner.Tagger.v1", steps=30, head_lr_scale=10.0)
    words, tags = SENTENCES[0]
    assert [t.tag_ for t in nlp(Doc(nlp.vocab, words=words))] == tags
    nlp.to_disk(tmp_path)
    loaded = spacy.load(tmp_path)
    assert [t.tag_ for t in loaded(Doc(loaded.vocab, words=words))] == tags
    numpy.testing.assert_array_equal(output_weights(loaded), output_weights(nlp))
