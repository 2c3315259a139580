"""Data for continual-learning runs: hide an entity type, sample sentences that hold it, and
fill a partially annotated set with an old model's predictions (pseudo-labels).

The experiment these serve (`experiments.continual`): train a model without one type, then
teach it that type from a small set annotated with that type alone. In such a set every
entity of the other types is O, which is what makes naive fine-tuning forget them.
"""

import random
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from spacy.tokens import Doc, DocBin, Span
from spacy.vocab import Vocab
from wasabi import msg

from ..conll import load_gold_docs
from ..errors import BertNERError
from ..io import atomic_path


def drop_types(docs: Iterable[Doc], types: Iterable[str]) -> list[Doc]:
    """Copies of `docs` whose entities of `types` are gone (their tokens become O)."""
    dropped = set(types)
    return _filter_entities(docs, lambda label: label not in dropped)


def keep_types(docs: Iterable[Doc], types: Iterable[str]) -> list[Doc]:
    """Copies of `docs` keeping only the entities of `types` (all others become O)."""
    kept = set(types)
    return _filter_entities(docs, lambda label: label in kept)


def _filter_entities(docs: Iterable[Doc], keep: Callable[[str], bool]) -> list[Doc]:
    copies = []
    for doc in docs:
        copy = doc.copy()
        spans = [Span(copy, e.start, e.end, label=e.label) for e in doc.ents if keep(e.label_)]
        copy.set_ents(spans, default="outside")
        copies.append(copy)
    return copies


def sample_sentences_with(docs: Iterable[Doc], label: str, n: int, seed: int) -> list[Doc]:
    """`n` sentences (as docs, in corpus order) drawn at random from those holding an entity
    of type `label`."""
    candidates = [
        sent.as_doc()
        for doc in docs
        for sent in (doc.sents if doc.has_annotation("SENT_START") else [doc[:]])
        if any(ent.label_ == label for ent in sent.ents)
    ]
    if len(candidates) < n:
        raise BertNERError(
            f"only {len(candidates)} sentences hold a {label} entity; ask for at most that many"
        )
    chosen = sorted(random.Random(seed).sample(range(len(candidates)), n))
    return [candidates[i] for i in chosen]


def merge_pseudo_labels(gold_docs: Sequence[Doc], predicted_docs: Sequence[Doc]) -> list[Doc]:
    """Copies of `gold_docs` whose entities are the gold ones plus every predicted entity that
    overlaps none of them (gold wins): a set annotated for one type, completed with an old
    model's predictions of the types it already knows."""
    if len(gold_docs) != len(predicted_docs):
        raise BertNERError(
            f"{len(gold_docs)} gold docs but {len(predicted_docs)} predicted docs: cannot pair them"
        )
    merged = []
    for i, (gold, predicted) in enumerate(zip(gold_docs, predicted_docs, strict=True)):
        if [t.text for t in gold] != [t.text for t in predicted]:
            raise BertNERError(f"doc {i}: predicted tokens differ from the gold tokens")
        copy = gold.copy()
        taken: set[int] = set()
        for ent in gold.ents:
            taken.update(range(ent.start, ent.end))
        spans = [Span(copy, e.start, e.end, label=e.label) for e in gold.ents]
        spans += [
            Span(copy, e.start, e.end, label=e.label_)
            for e in predicted.ents
            if taken.isdisjoint(range(e.start, e.end))
        ]
        copy.set_ents(spans, default="outside")
        merged.append(copy)
    return merged


def prepare_continual_data(
    train_path: Path,
    dev_path: Path,
    output_dir: Path,
    *,
    new_type: str,
    n_new: int,
    seed: int = 0,
) -> dict[str, Path]:
    """Write the DocBins of a continual-learning run to `output_dir`:

    - old-train.spacy, old-dev.spacy: train and dev without `new_type` (for the old model);
    - new-train.spacy: `n_new` train sentences holding `new_type`, annotated with it alone.

    Returns the three paths by name ("old-train", "old-dev", "new-train").
    """
    vocab = Vocab()
    train = load_gold_docs(train_path, vocab)
    dev = load_gold_docs(dev_path, vocab)
    new = keep_types(sample_sentences_with(train, new_type, n_new, seed), [new_type])
    paths = {
        "old-train": output_dir / "old-train.spacy",
        "old-dev": output_dir / "old-dev.spacy",
        "new-train": output_dir / "new-train.spacy",
    }
    splits = {
        "old-train": drop_types(train, [new_type]),
        "old-dev": drop_types(dev, [new_type]),
        "new-train": new,
    }
    for name, docs in splits.items():
        # Through a temporary file, as `convert` writes: an interrupted run leaves no half file.
        with atomic_path(paths[name]) as tmp_path:
            tmp_path.write_bytes(DocBin(docs=docs).to_bytes())
    n_entities = sum(len(doc.ents) for doc in new)
    msg.good(
        f"{paths['old-train']}, {paths['old-dev']}: without {new_type}; {paths['new-train']}: "
        f"{len(new)} sentences, {n_entities} {new_type} entities and nothing else"
    )
    return paths
