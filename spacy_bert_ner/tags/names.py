"""Tag strings: scheme names, prefixes, and whether a model's tags fit a scheme.

What can be read off the tags alone, before any score is decoded: which scheme a downloaded
checkpoint's ``id2label`` uses, whether its inventory is complete, the tags a new head lays out,
and CoNLL-2003's IOB1 rewritten as IOB2. Every error names the supported schemes, so a model
with foreign tags fails with one line that says what would be accepted.
"""

from collections.abc import Iterable, Sequence

from ..errors import TagSchemeError

SCHEMES = ("IOB2", "IOB1", "BIOES", "BILOU")

# Prefixes each entity type must carry, in the order `tags_of_labels` lays them out.
_PREFIXES = {
    "IOB2": ("B", "I"),
    "IOB1": ("B", "I"),
    "BIOES": ("B", "I", "E", "S"),
    "BILOU": ("B", "I", "L", "U"),
}
_ALIASES = {"BILUO": "BILOU", "IOBES": "BIOES"}
OUTSIDE = "O"


def _show(labels: Iterable[str], limit: int = 10) -> str:
    """Quote labels for an error message, cut short so a 1000-label map stays readable."""
    items = list(labels)
    shown = ", ".join(repr(label) for label in items[:limit])
    if len(items) > limit:
        shown += f", ... ({len(items) - limit} more)"
    return f"[{shown}]"


def _scheme_error(problem: str) -> TagSchemeError:
    return TagSchemeError(f"{problem}; supported tag schemes: {', '.join(SCHEMES)}")


def split_tag(tag: str) -> tuple[str, str] | None:
    """``"B-PER"`` -> ``("B", "PER")``; None for anything that is not prefix-dash-type."""
    prefix, dash, entity_type = tag.partition("-")
    if not dash or len(prefix) != 1 or prefix not in "BIESLU" or not entity_type:
        return None
    return prefix, entity_type


def canonical_scheme(name: str) -> str:
    """Normalise a user-given scheme name, so config files may say ``iobes`` or ``BILUO``."""
    upper = name.strip().upper()
    upper = _ALIASES.get(upper, upper)
    if upper not in SCHEMES:
        raise _scheme_error(f"unknown tag scheme {name!r}")
    return upper


def detect_scheme(tags: Sequence[str], scheme: str | None = None) -> str:
    """The scheme of a model's ``id2label`` values: `scheme` when given, else read off them.

    IOB1 and IOB2 share one label set, so IOB1 is chosen only when ``scheme`` says so.
    """
    if scheme is not None:
        return canonical_scheme(scheme)
    prefixes = {p[0] for p in map(split_tag, tags) if p is not None}
    bioes, bilou = prefixes & {"E", "S"}, prefixes & {"L", "U"}
    if bioes and bilou:
        mixed = [t for t in tags if (p := split_tag(t)) and p[0] in bioes | bilou]
        raise _scheme_error(f"tags mix BIOES and BILOU prefixes: {_show(mixed)}")
    return "BIOES" if bioes else "BILOU" if bilou else "IOB2"


def tags_of_labels(labels: Iterable[str], scheme: str) -> tuple[str, ...]:
    """The tags of a new classifier head: ``O``, then each sorted label's prefixes."""
    name = canonical_scheme(scheme)
    tags = [OUTSIDE]
    for label in sorted(set(labels)):
        tags.extend(f"{prefix}-{label}" for prefix in _PREFIXES[name])
    return tuple(tags)


def iob1_to_iob2(tags: Sequence[str]) -> list[str]:
    """Rewrite IOB1 tags (CoNLL-2003's original files) as IOB2.

    IOB1 marks a begin with ``B-`` only between two adjacent entities of one type, so a
    reader that expects IOB2 would otherwise see most entities start with ``I-``.
    """
    out: list[str] = []
    prev_type: str | None = None
    for tag in tags:
        if tag == OUTSIDE:
            out.append(tag)
            prev_type = None
            continue
        parts = split_tag(tag)
        if parts is None or parts[0] not in "BI":
            raise _scheme_error(f"tag {tag!r} is not an IOB1 tag")
        prefix, entity_type = parts
        out.append(f"B-{entity_type}" if prefix == "B" or prev_type != entity_type else tag)
        prev_type = entity_type
    return out


def parse_tags(tags: tuple[str, ...], name: str) -> list[tuple[str, str] | None]:
    """Each tag split into (prefix, type), None for ``O``, once ``tags`` are checked to fit
    scheme ``name``."""
    unparsed = [t for t in tags if t != OUTSIDE and split_tag(t) is None]
    if unparsed:
        raise _scheme_error(f"tags without a B-/I-/E-/S-/L-/U- prefix: {_show(unparsed)}")
    outside = tags.count(OUTSIDE)
    if outside != 1:
        raise _scheme_error(f"expected exactly one 'O' tag, found {outside} in {_show(tags)}")
    duplicates = sorted({t for t in tags if tags.count(t) > 1})
    if duplicates:
        raise _scheme_error(f"duplicate tags {_show(duplicates)}")
    parts = [split_tag(t) for t in tags]
    required = _PREFIXES[name]
    foreign = [t for t, p in zip(tags, parts, strict=True) if p and p[0] not in required]
    if foreign:
        raise _scheme_error(f"tags {_show(foreign)} do not belong to {name}")
    present: dict[str, set[str]] = {}
    for p in parts:
        if p is not None:
            present.setdefault(p[1], set()).add(p[0])
    # An IOB1 model may never have seen a B- tag for a type: its data rarely needs one.
    needed = ("I",) if name == "IOB1" else required
    incomplete = [
        f"{label} has {_show(f'{x}-{label}' for x in sorted(have))}, "
        f"lacks {_show(f'{x}-{label}' for x in needed if x not in have)}"
        for label, have in sorted(present.items())
        if not set(needed) <= have
    ]
    if incomplete:
        raise _scheme_error(f"incomplete {name} tag set: {'; '.join(incomplete)}")
    return parts
