"""Case augmentation: train on some texts in lower, upper or title case.

CoNLL-2003 mixes ordinary text with all-caps headlines and sports tables, and users' documents
differ again (lower-cased chat, upper-cased forms). An uncased encoder with bert_ner's case
embeddings (`case_feature`) learns to lean on case, which such text does not have. Showing
the model a share of its training texts in another case, with the same entities, is a cheap
counter to that, in the way spaCy's own `spacy.lower_case.v1` augmenter lower-cases.
"""

import random
from collections.abc import Callable, Iterator

from spacy.language import Language
from spacy.tokens import Doc
from spacy.training import Example
from spacy.util import registry

from ..errors import BertNERError

Augmenter = Callable[[Language, Example], Iterator[Example]]

#: The token annotations a case variant copies over: what `DocBin` keeps but the text.
TOKEN_ATTRS: list[int | str] = [
    "TAG", "HEAD", "DEP", "ENT_IOB", "ENT_TYPE", "ENT_KB_ID", "ENT_ID", "LEMMA", "MORPH", "POS",
    "SENT_START",
]  # fmt: skip


@registry.augmenters("spacy_bert_ner.case_variants.v1")
def create_case_augmenter(lower: float = 0.0, upper: float = 0.0, title: float = 0.0) -> Augmenter:
    """An augmenter that replaces each example, with these probabilities, by its lower-,
    upper- or title-cased copy (tokens, sentence starts and entities kept), else passes it
    on; the corpus keeps its size. Each probability is in 0..1 and together at most 1.
    """
    changes = [(lower, str.lower), (upper, str.upper), (title, str.title)]
    if any(not 0.0 <= level <= 1.0 for level, _ in changes) or lower + upper + title > 1.0:
        raise BertNERError(
            "spacy_bert_ner.case_variants.v1: lower, upper and title are probabilities, "
            f"each in 0..1 and together at most 1 (got {lower}, {upper}, {title})"
        )

    def augment(nlp: Language, example: Example) -> Iterator[Example]:
        draw = random.random()
        for level, change in changes:
            if draw < level:
                yield case_variant(nlp, example, change)
                return
            draw -= level
        yield example

    return augment


def case_variant(nlp: Language, example: Example, change: Callable[[str], str]) -> Example:
    """`example` with `change` applied to every token's text, its annotations unchanged.

    The reference is copied attribute by attribute, not through `Example.to_dict`, which
    writes "not a sentence start" as 0, the value that `Doc` reads as unknown.
    """

    def changed(doc: Doc) -> Doc:
        words = [change(t.text) for t in doc]
        return Doc(nlp.vocab, words=words, spaces=[bool(t.whitespace_) for t in doc])

    reference = changed(example.reference)
    reference.from_array(TOKEN_ATTRS, example.reference.to_array(TOKEN_ATTRS))  # type: ignore[arg-type]
    reference.user_data = dict(example.reference.user_data)
    return Example(changed(example.predicted), reference)
