"""Well-formedness written over tag strings, from each scheme's definition and independently
of the transition matrices in `spacy_bert_ner.tags`, so a wrong matrix cannot vouch for itself."""

import numpy as np

from spacy_bert_ner.tags import TagScheme


def ok_next(scheme: str, prev: str | None, tag: str) -> bool:
    """Whether ``tag`` may follow ``prev`` (None = sequence start), from the scheme's definition."""
    p_prefix, _, p_type = (prev or "O").partition("-")
    prefix, _, entity_type = tag.partition("-")
    if scheme == "IOB2":
        return prefix != "I" or (p_prefix in ("B", "I") and p_type == entity_type)
    if scheme == "IOB1":
        return prefix != "B" or (p_prefix in ("B", "I") and p_type == entity_type)
    last = "E" if scheme == "BIOES" else "L"
    if p_prefix in ("B", "I"):  # an entity is open: it must continue with its own type
        return prefix in ("I", last) and entity_type == p_type
    return prefix not in ("I", last)


def ok_end(scheme: str, tag: str) -> bool:
    return scheme in ("IOB2", "IOB1") or tag[0] not in "BI"


def well_formed(scheme: TagScheme, ids) -> bool:
    tags = [scheme.tags[i] for i in ids]
    if not tags:
        return True
    prevs = [None, *tags[:-1]]
    return all(ok_next(scheme.name, p, t) for p, t in zip(prevs, tags, strict=True)) and ok_end(
        scheme.name, tags[-1]
    )


def encode(scheme: TagScheme, spans: list[tuple[int, int, str, float]], n: int) -> list[str]:
    """Write entity spans back as tags, the way each scheme spells them."""
    tags = ["O"] * n
    previous_end, previous_label = -1, None
    for start, end, label, _ in spans:
        if scheme.name == "IOB1":
            first = "B" if (previous_end == start and previous_label == label) else "I"
            tags[start:end] = [f"{first}-{label}"] + [f"I-{label}"] * (end - start - 1)
        elif scheme.name == "IOB2":
            tags[start:end] = [f"B-{label}"] + [f"I-{label}"] * (end - start - 1)
        else:
            last, single = ("E", "S") if scheme.name == "BIOES" else ("L", "U")
            if end - start == 1:
                tags[start] = f"{single}-{label}"
            else:
                middle = [f"I-{label}"] * (end - start - 2)
                tags[start:end] = [f"B-{label}", *middle, f"{last}-{label}"]
        previous_end, previous_label = end, label
    return tags


def ids_of(scheme: TagScheme, tags: list[str]) -> np.ndarray:
    return np.array([scheme.tags.index(t) for t in tags], dtype=np.int64)
