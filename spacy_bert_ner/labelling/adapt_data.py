"""What `adapt` trains on: a user's corpus read from any of the project's formats, its labels
mapped to the pipeline's, and an in-domain dev split.

Every refusal is one line naming the file and what is wrong, raised before anything is
written: an absent or empty file, a corpus without text or without entities, labels that
cannot be tags or that the pipeline lacks when new labels are not allowed.
"""

import random
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from spacy.language import Language
from spacy.tokens import Doc, Span

from ..conll import load_gold_docs
from ..errors import BertNERError
from ..training.readers import sentence_runs
from .importer import annotated_docs

#: Suffixes read as annotation exports (Label Studio JSON, Prodigy-style JSONL); `.spacy` is
#: a DocBin; any other name is a CoNLL column file.
EXPORT_SUFFIXES = (".json", ".jsonl")
_BAD_LABEL = re.compile(r"^$|\s|^[BILUE]-")


def read_corpus(path: Path, nlp: Language, what: str) -> list[Doc]:
    """The documents of `path` (.spacy, a Label Studio/Prodigy export or a CoNLL file) that
    hold text; `what` names the argument in the errors (e.g. "TRAIN")."""
    path = Path(path)
    if not path.is_file():
        raise BertNERError(f"{what} {path}: not found (or not a file)")
    if not path.read_bytes().strip():
        raise BertNERError(f"{what} {path}: the file is empty")
    if path.suffix in EXPORT_SUFFIXES:
        docs, _ = annotated_docs(path, nlp)
    else:
        docs = load_gold_docs(path, nlp.vocab)
    docs = [doc for doc in docs if doc.text.strip()]
    if not docs:
        raise BertNERError(f"{what} {path}: holds no text (no document with a word)")
    return docs


def require_entities(docs: Sequence[Doc], path: Path, what: str) -> None:
    """Refuse a corpus to learn from that holds no entity at all."""
    if not any(doc.ents for doc in docs):
        raise BertNERError(f"{what} {path}: holds no entities to learn from")


@dataclass(frozen=True)
class LabelPlan:
    """How the corpus's labels become the pipeline's: `mapping` of every data label to a
    pipeline label (itself for a label kept or new), and the `new` labels to add."""

    mapping: dict[str, str]
    new: tuple[str, ...]


def plan_labels(
    docs: Sequence[Doc],
    model_labels: Sequence[str],
    path: Path,
    label_map: Mapping[str, str] | None = None,
    allow_new: bool = True,
) -> LabelPlan:
    """Map each label of `docs`: by `label_map`, else to the model's label of the same name,
    else of the same name in another case ("per" -> "PER"); the rest are new labels, refused
    unless `allow_new`. A label that cannot be a tag (empty, with whitespace, or a tag
    prefix such as "B-") is refused either way."""
    label_map = dict(label_map or {})
    by_case = {label.lower(): label for label in model_labels}
    counts = Counter(ent.label_ for doc in docs for ent in doc.ents)
    mapping: dict[str, str] = {}
    for label in sorted(counts):
        target = label_map.get(label, label)
        mapping[label] = target if target in model_labels else by_case.get(target.lower(), target)
    bad = sorted(target for target in set(mapping.values()) if _BAD_LABEL.search(target))
    if bad:
        raise BertNERError(
            f"TRAIN {path}: labels {', '.join(map(repr, bad))} cannot be entity types "
            "(empty, whitespace, or a tag prefix such as B-); fix them or map them with "
            "--label-map FROM=TO"
        )
    new = tuple(sorted({target for target in mapping.values() if target not in model_labels}))
    if new and not allow_new:
        found = ", ".join(
            f"{label} ({counts[label]})" for label in mapping if mapping[label] in new
        )
        raise BertNERError(
            f"TRAIN {path}: labels {found} map to none of the pipeline's "
            f"({', '.join(model_labels)}); map them with --label-map FROM=TO, or allow new "
            "labels (--new-labels)"
        )
    return LabelPlan(mapping, new)


def relabelled(docs: Sequence[Doc], mapping: Mapping[str, str]) -> list[Doc]:
    """Copies of `docs` whose entities carry their mapped labels."""
    copies = []
    for doc in docs:
        copy = doc.copy()
        copy.ents = [Span(copy, e.start, e.end, label=mapping[e.label_]) for e in doc.ents]
        copies.append(copy)
    return copies


def split_dev(
    docs: Sequence[Doc], share: float, seed: int, path: Path, max_words: int = 100
) -> tuple[list[Doc], list[Doc]]:
    """(train, dev): `docs` cut into runs of consecutive sentences of at most `max_words`
    words (so both sides keep sentence context), `share` of the runs drawn for dev with
    `seed`. Refused when there are fewer than two runs to share out."""
    runs = cut_runs(docs, max_words)
    if len(runs) < 2:
        raise BertNERError(
            f"TRAIN {path}: too small to cut a dev split from ({len(runs)} run of sentences); "
            "give --dev"
        )
    order = list(range(len(runs)))
    random.Random(seed).shuffle(order)
    n_dev = min(len(runs) - 1, max(1, round(share * len(runs))))
    dev_ids = set(order[:n_dev])
    train = [run for i, run in enumerate(runs) if i not in dev_ids]
    dev = [run for i, run in enumerate(runs) if i in dev_ids]
    return train, dev


def sample_runs(docs: Sequence[Doc], words: int, seed: int, max_words: int = 100) -> list[Doc]:
    """Runs of sentences of `docs` (cut as `split_dev` cuts them) drawn with `seed` until
    they hold `words` words, or all of them."""
    runs = cut_runs(docs, max_words)
    random.Random(seed).shuffle(runs)
    drawn: list[Doc] = []
    total = 0
    for run in runs:
        if total >= words:
            break
        drawn.append(run)
        total += len(run)
    return drawn


def cut_runs(docs: Sequence[Doc], max_words: int) -> list[Doc]:
    """`docs` as runs of consecutive whole sentences of at most `max_words` words."""
    return [doc[start:end].as_doc() for doc in docs for start, end in sentence_runs(doc, max_words)]
