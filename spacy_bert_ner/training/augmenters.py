"""Augmenters for `spacy.Corpus.v1` and `spacy_bert_ner.SentenceRuns.v1`: case variants,
mention replacement and entity masking.

Case augmentation: train on some texts in lower, upper or title case.

CoNLL-2003 mixes ordinary text with all-caps headlines and sports tables, and users' documents
differ again (lower-cased chat, upper-cased forms). An uncased encoder with bert_ner's case
embeddings (`case_feature`) learns to lean on case, which such text does not have. Showing
the model a share of its training texts in another case, with the same entities, is a cheap
counter to that, in the way spaCy's own `spacy.lower_case.v1` augmenter lower-cases.
"""

import random
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from spacy.language import Language
from spacy.tokens import Doc, Span
from spacy.training import Corpus, Example
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


@registry.augmenters("spacy_bert_ner.mention_replacement.v1")
def create_mention_replacement(path: Path | None, probability: float = 0.3) -> Augmenter:
    """An augmenter that swaps, with `probability` each, an example's entities for another
    mention of the same type from the corpus at `path` (usually the training corpus itself):
    mention replacement (Dai and Adel 2020, "An Analysis of Simple Data Augmentation for
    Named Entity Recognition"). The context stays and the name changes, so the model must
    read the context rather than remember names: a lever for entities unseen in training.

    The pool is the distinct mentions of each type (one draw per distinct name, so rare names
    come up as often as frequent ones), read on first use. A changed example keeps its
    sentence starts and entities; other token annotations (part-of-speech tags) are dropped,
    so use it for a pipeline whose only trained component is bert_ner.
    """
    if not 0.0 <= probability <= 1.0:
        raise BertNERError(
            f"spacy_bert_ner.mention_replacement.v1: probability must be in 0..1, got {probability}"
        )
    if path is None:
        raise BertNERError(
            "spacy_bert_ner.mention_replacement.v1: no corpus path to draw mentions from; set "
            "it (e.g. path = ${paths.train})"
        )
    pools: dict[str, list[tuple[str, ...]]] = {}

    def augment(nlp: Language, example: Example) -> Iterator[Example]:
        if not pools:
            pools.update(mention_pools(Corpus(path)(nlp)))

        def other_mention(ent: Span) -> tuple[str, ...] | None:
            pool = pools.get(ent.label_, [])
            return random.choice(pool) if pool and random.random() < probability else None

        yield replaced_mentions(nlp, example, other_mention)

    return augment


@registry.augmenters("spacy_bert_ner.entity_masking.v1")
def create_entity_masking(probability: float = 0.1, mask: str = "[MASK]") -> Augmenter:
    """An augmenter that replaces, with `probability` each, every word of an example's
    entities by `mask` (BERT's mask token, which its tokenizer reads as that one piece),
    keeping the entity and its label: entity masking, after Peng et al. (2020, "Learning from
    Context or Names? An Empirical Study on Neural Relation Extraction"). With the name
    hidden, only the context can tell the model that an entity is there and of which type,
    which is all it has for a name it never saw. The masks never occur at inference.
    """
    if not 0.0 <= probability <= 1.0:
        raise BertNERError(
            f"spacy_bert_ner.entity_masking.v1: probability must be in 0..1, got {probability}"
        )
    if not mask or mask.split() != [mask]:
        raise BertNERError(f"spacy_bert_ner.entity_masking.v1: mask must be one word, got {mask!r}")

    def masked(ent: Span) -> tuple[str, ...] | None:
        return (mask,) * len(ent) if random.random() < probability else None

    def augment(nlp: Language, example: Example) -> Iterator[Example]:
        yield replaced_mentions(nlp, example, masked)

    return augment


def mention_pools(examples: Iterable[Example]) -> dict[str, list[tuple[str, ...]]]:
    """The distinct mentions (their words) of each entity type of the examples' gold, sorted
    so that a seed draws the same ones on every machine."""
    found: dict[str, set[tuple[str, ...]]] = {}
    for example in examples:
        for ent in example.reference.ents:
            found.setdefault(ent.label_, set()).add(tuple(t.text for t in ent))
    if not found:
        raise BertNERError("spacy_bert_ner.mention_replacement.v1: the corpus holds no entities")
    return {label: sorted(mentions) for label, mentions in sorted(found.items())}


def replaced_mentions(
    nlp: Language, example: Example, replacement: Callable[[Span], tuple[str, ...] | None]
) -> Example:
    """`example` with each entity's words replaced by what `replacement` gives for it (None:
    kept), the entity and its label kept over the new words; the example itself when nothing
    changed."""
    ref = example.reference
    words: list[str] = []
    spaces: list[bool] = []
    tags: list[str] = []
    starts: list[bool] = []
    changed = False
    position = 0
    for ent in ref.ents:
        _keep(ref, position, ent.start, words, spaces, tags, starts)
        mention = replacement(ent) or tuple(t.text for t in ent)
        changed = changed or mention != tuple(t.text for t in ent)
        words += mention
        spaces += [True] * (len(mention) - 1) + [bool(ent[-1].whitespace_)]
        tags += [f"B-{ent.label_}"] + [f"I-{ent.label_}"] * (len(mention) - 1)
        starts += [bool(ent[0].is_sent_start)] + [False] * (len(mention) - 1)
        position = ent.end
    if not changed:
        return example
    _keep(ref, position, len(ref), words, spaces, tags, starts)
    has_starts = ref.has_annotation("SENT_START")
    gold = Doc(nlp.vocab, words=words, spaces=spaces, ents=tags,
               sent_starts=starts if has_starts else None)  # type: ignore[arg-type]  # fmt: skip
    return Example(Doc(nlp.vocab, words=words, spaces=spaces), gold)


def _keep(
    doc: Doc,
    start: int,
    end: int,
    words: list[str],
    spaces: list[bool],
    tags: list[str],
    starts: list[bool],
) -> None:
    """Append tokens `start`..`end` of `doc`, outside any entity, as they are."""
    for token in doc[start:end]:
        words.append(token.text)
        spaces.append(bool(token.whitespace_))
        tags.append("O")
        starts.append(bool(token.is_sent_start))
