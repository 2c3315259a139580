"""The classification head's tags: one resizing rule (`head_rows`) for both architectures."""

import numpy as np
import pytest
import torch
from thinc.api import Model

from spacy_bert_ner.models.architectures import (
    build_listener_token_classifier,
    build_token_classifier,
    first_piece,
)
from spacy_bert_ner.models.head import RowSource, head_rows, resize_head, tag_names
from spacy_bert_ner.models.hf_loading import load_pretrained
from spacy_bert_ner.models.listener_classifier import TAGS_ATTR
from spacy_bert_ner.models.model_api import architecture, current_tags
from spacy_bert_ner.models.windows import N_CASE_CLASSES

from ..conftest import TINY_TAGS

OUTSIDE = TINY_TAGS.index("O")
#: The same tags in another order; some kept, some dropped, some new, in a new order.
REORDERED = sorted(TINY_TAGS)
REGROWN = ["B-PER", "I-PER", "O", "B-DATE", "B-LOC", "I-LOC", "I-DATE"]


def test_head_rows_leaves_a_head_with_the_same_tags_in_the_same_order_alone():
    assert head_rows(TINY_TAGS, list(TINY_TAGS), below_outside=5.0) is None


def test_head_rows_keeps_every_row_of_a_reorder():
    assert head_rows(TINY_TAGS, REORDERED) == [RowSource(TINY_TAGS.index(t)) for t in REORDERED]


def test_head_rows_starts_new_tags_fresh_or_under_outside():
    fresh = head_rows(TINY_TAGS, ["O", "B-DATE"])
    assert fresh == [RowSource(OUTSIDE), None]
    under = head_rows(TINY_TAGS, ["O", "B-DATE"], below_outside=5.0)
    assert under == [RowSource(OUTSIDE), RowSource(OUTSIDE, 5.0)]


def standalone(tiny_bert) -> Model:
    model = build_token_classifier(str(tiny_bert))
    model.initialize()
    with torch.no_grad():  # Hugging Face starts biases at 0: make each row's tell
        architecture(model).own_model(model).classifier.bias.normal_()
    return model


def listener(tiny_bert) -> Model:
    """The listener's head alone, its weights set (no transformer needed to resize it)."""
    model = build_listener_token_classifier(first_piece(), head_lr_scale=10.0, case_feature=True)
    rng = np.random.default_rng(0)
    model.set_dim("nI", 8)
    model.set_param("W", rng.normal(size=(len(TINY_TAGS), 8)).astype("f"))
    model.set_param("b", rng.normal(size=len(TINY_TAGS)).astype("f"))
    model.set_param("C", rng.normal(size=(N_CASE_CLASSES, len(TINY_TAGS))).astype("f"))
    model.attrs[TAGS_ATTR] = list(TINY_TAGS)
    return model


def effective_rows(model: Model) -> dict[str, np.ndarray]:
    """One row per tag of what the head computes with (the listener stores its head divided by
    `head_lr_scale`)."""
    if not architecture(model).has_own_model:
        scale = architecture(model).settings.head_lr_scale
        return {
            "weight": model.get_param("W") * scale,
            "bias": model.get_param("b") * scale,
            "case": model.get_param("C").T * scale,
        }
    head = architecture(model).own_model(model).classifier
    return {"weight": head.weight.detach().numpy(), "bias": head.bias.detach().numpy()}


@pytest.mark.parametrize("build", [standalone, listener])
@pytest.mark.parametrize("tags", [REORDERED, REGROWN], ids=["reordered", "regrown"])
@pytest.mark.parametrize("below_outside", [None, 3.0])
def test_both_architectures_resize_by_the_same_rule(tiny_bert, build, tags, below_outside):
    """Same tags in, same rows kept: a kept tag's row bit for bit wherever it moves, a new
    tag's row O's lowered by the margin (or fresh without one)."""
    model = build(tiny_bert)
    old = effective_rows(model)
    assert model.attrs["resize_output"](model, tags, below_outside=below_outside) is model
    assert current_tags(model) == tags
    new = effective_rows(model)
    for i, tag in enumerate(tags):
        if tag in TINY_TAGS:
            for name, rows in new.items():
                assert np.array_equal(rows[i], old[name][TINY_TAGS.index(tag)]), (tag, name)
        elif below_outside is not None:
            assert np.array_equal(new["weight"][i], old["weight"][OUTSIDE])
            assert new["bias"][i] == pytest.approx(old["bias"][OUTSIDE] - below_outside, abs=1e-5)


def test_resize_head_keeps_rows_of_shared_tags(tiny_bert):
    hf_model, _ = load_pretrained(tiny_bert)
    old = hf_model.classifier.weight.detach().clone()
    new_tags = ["O", "B-PER", "I-PER", "B-DATE", "I-DATE"]
    assert resize_head(hf_model, new_tags)
    assert tag_names(hf_model.config) == new_tags
    assert hf_model.classifier.weight.shape[0] == 5
    for i, tag in enumerate(new_tags):
        if tag in TINY_TAGS:
            assert torch.equal(hf_model.classifier.weight[i], old[TINY_TAGS.index(tag)])
    assert not torch.equal(hf_model.classifier.weight[3], old[3])


def test_resize_head_can_start_new_tags_under_outside(tiny_bert):
    hf_model, _ = load_pretrained(tiny_bert)
    head = hf_model.classifier
    outside_weight, outside_bias = head.weight[0].detach().clone(), head.bias[0].item()
    resize_head(hf_model, [*TINY_TAGS, "B-DATE", "I-DATE"], below_outside=3.0)
    new_head = hf_model.classifier
    for row in (9, 10):
        assert torch.equal(new_head.weight[row], outside_weight)
        assert new_head.bias[row].item() == pytest.approx(outside_bias - 3.0)
    logits = new_head(torch.randn(50, new_head.in_features) * 10)
    assert torch.allclose(logits[:, 9:], logits[:, :1] - 3.0, atol=1e-4)


def test_resize_head_to_the_same_tags_keeps_the_head_itself(tiny_bert):
    hf_model, _ = load_pretrained(tiny_bert)
    head = hf_model.classifier
    assert not resize_head(hf_model, list(TINY_TAGS))
    assert hf_model.classifier is head
