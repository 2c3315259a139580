"""Tag schemes and constrained decoding for BERT token classifiers.

A token classifier scores every token independently, so its per-token argmax can be
ill-formed: ``O I-PER`` in IOB2, ``B-PER O`` in BIOES. Each evaluator then repairs such
output its own way - seqeval's default (conlleval) mode reads a stray ``I-PER`` as a new
entity, its strict mode drops it - and the reported F1 depends on which one you ran.
Decoding with the scheme's transition constraints (a Viterbi search whose forbidden
transitions are impossible, not merely penalised) makes every output well-formed, so
both modes read the same entities and spaCy receives spans no evaluator disputes.

The scheme is detected from the model's own ``id2label`` so a downloaded checkpoint works
without configuration, and the common case - an argmax that is already well-formed - costs
one vectorised check instead of a Viterbi pass.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from .errors import TagSchemeError

SCHEMES = ("IOB2", "IOB1", "BIOES", "BILOU")

# Prefixes each entity type must carry, in the order `from_labels` lays them out.
_PREFIXES = {
    "IOB2": ("B", "I"),
    "IOB1": ("B", "I"),
    "BIOES": ("B", "I", "E", "S"),
    "BILOU": ("B", "I", "L", "U"),
}
_ALIASES = {"BILUO": "BILOU", "IOBES": "BIOES"}
# Clamp for Viterbi emissions, below and (negated) above: keeps every reachable path score
# finite, so an argmax over candidates always lands on an allowed predecessor, even for -inf,
# NaN or finite scores so large that their sum along a path would overflow to inf (and then
# inf plus a forbidden transition's -inf is NaN).
_FLOOR = -1e30
_OUTSIDE = "O"
#: Training target of a token whose gold tag is unknown: the loss ignores it.
NO_TARGET = -1


def _show(labels: Iterable[str], limit: int = 10) -> str:
    """Quote labels for an error message, cut short so a 1000-label map stays readable."""
    items = list(labels)
    shown = ", ".join(repr(label) for label in items[:limit])
    if len(items) > limit:
        shown += f", ... ({len(items) - limit} more)"
    return f"[{shown}]"


def _scheme_error(problem: str) -> TagSchemeError:
    return TagSchemeError(f"{problem}; supported tag schemes: {', '.join(SCHEMES)}")


def _split(tag: str) -> tuple[str, str] | None:
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


def iob1_to_iob2(tags: Sequence[str]) -> list[str]:
    """Rewrite IOB1 tags (CoNLL-2003's original files) as IOB2.

    IOB1 marks a begin with ``B-`` only between two adjacent entities of one type, so a
    reader that expects IOB2 would otherwise see most entities start with ``I-``.
    """
    out: list[str] = []
    prev_type: str | None = None
    for tag in tags:
        if tag == _OUTSIDE:
            out.append(tag)
            prev_type = None
            continue
        parts = _split(tag)
        if parts is None or parts[0] not in "BI":
            raise _scheme_error(f"tag {tag!r} is not an IOB1 tag")
        prefix, entity_type = parts
        out.append(f"B-{entity_type}" if prefix == "B" or prev_type != entity_type else tag)
        prev_type = entity_type
    return out


@dataclass(frozen=True)
class TagScheme:
    """A model's tag inventory plus the transition rules that define well-formed output.

    Construct it with `from_tags` (an existing model's ``id2label``) or `from_labels`
    (a new head); the constructor itself validates that ``tags`` fit ``name``.
    """

    name: str
    tags: tuple[str, ...]
    labels: tuple[str, ...] = field(init=False)
    outside: int = field(init=False)
    allowed: np.ndarray = field(init=False, repr=False, compare=False)
    allowed_start: np.ndarray = field(init=False, repr=False, compare=False)
    allowed_end: np.ndarray = field(init=False, repr=False, compare=False)
    # Per-tag features that let `entities` find spans without a per-token loop.
    _type_ids: np.ndarray = field(init=False, repr=False, compare=False)
    _begins: np.ndarray = field(init=False, repr=False, compare=False)
    _closes: np.ndarray = field(init=False, repr=False, compare=False)
    # 0 where allowed, -inf where not: adding it makes a forbidden step unreachable.
    _log_trans: np.ndarray = field(init=False, repr=False, compare=False)
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        name = canonical_scheme(self.name)
        tags = tuple(self.tags)
        parts = _validate(tags, name)
        labels = tuple(sorted({p[1] for p in parts if p is not None}))
        type_of = {label: i for i, label in enumerate(labels)}
        prefix = np.array([p[0] if p else _OUTSIDE for p in parts], dtype="<U1")
        type_ids = np.array([type_of[p[1]] if p else -1 for p in parts], dtype=np.int64)

        is_b, is_i = prefix == "B", prefix == "I"
        same_type = (type_ids[:, None] == type_ids[None, :]) & (type_ids[:, None] >= 0)
        if name in ("IOB2", "IOB1"):
            # IOB2: I-X only continues X. IOB1: B-X only splits two adjacent X entities.
            guarded = is_i if name == "IOB2" else is_b
            allowed = ~guarded[None, :] | (same_type & (is_b | is_i)[:, None])
            allowed_start = ~guarded
            allowed_end = np.ones(len(tags), dtype=bool)
            begins = is_b
            closes = prefix == _OUTSIDE
        else:
            last, single = ("E", "S") if name == "BIOES" else ("L", "U")
            is_open = is_b | is_i  # an entity is in progress and must continue
            is_cont = is_i | (prefix == last)  # continues the previous token's entity
            allowed = np.where(is_open[:, None], same_type & is_cont[None, :], ~is_cont[None, :])
            allowed_start = ~is_cont
            allowed_end = ~is_open
            begins = is_b | (prefix == single)
            closes = ~is_open

        log_trans = np.where(allowed, 0.0, -np.inf)
        derived = {
            "name": name,
            "tags": tags,
            "labels": labels,
            "outside": tags.index(_OUTSIDE),
            "allowed": allowed,
            "allowed_start": allowed_start,
            "allowed_end": allowed_end,
            "_type_ids": type_ids,
            "_begins": begins,
            "_closes": closes,
            "_log_trans": log_trans,
            "_index": {tag: i for i, tag in enumerate(tags)},
        }
        for key, value in derived.items():
            if isinstance(value, np.ndarray):
                value.setflags(write=False)
            object.__setattr__(self, key, value)

    @classmethod
    def from_tags(cls, tags: Sequence[str], scheme: str | None = None) -> TagScheme:
        """Read the scheme off a model's ``id2label`` values (in id order).

        IOB1 and IOB2 share one label set, so IOB1 is chosen only when ``scheme`` says so.
        """
        tags = tuple(tags)
        if scheme is not None:
            return cls(canonical_scheme(scheme), tags)
        prefixes = {p[0] for p in map(_split, tags) if p is not None}
        bioes, bilou = prefixes & {"E", "S"}, prefixes & {"L", "U"}
        if bioes and bilou:
            mixed = [t for t in tags if (p := _split(t)) and p[0] in bioes | bilou]
            raise _scheme_error(f"tags mix BIOES and BILOU prefixes: {_show(mixed)}")
        return cls("BIOES" if bioes else "BILOU" if bilou else "IOB2", tags)

    @classmethod
    def from_labels(cls, labels: Iterable[str], scheme: str = "IOB2") -> TagScheme:
        """Lay out the tags of a new classifier head: ``O``, then each sorted label's prefixes."""
        name = canonical_scheme(scheme)
        tags = [_OUTSIDE]
        for label in sorted(set(labels)):
            tags.extend(f"{prefix}-{label}" for prefix in _PREFIXES[name])
        return cls(name, tuple(tags))

    @property
    def tag_types(self) -> np.ndarray:
        """Per tag, the index of its entity type in `labels`; -1 for ``O``."""
        return self._type_ids

    def is_valid(self, tag_ids: np.ndarray) -> bool:
        """Whether a tag-id sequence is well-formed under this scheme (empty counts as valid)."""
        ids = np.asarray(tag_ids)
        if ids.size == 0:
            return True
        return bool(
            self.allowed_start[ids[0]]
            and self.allowed_end[ids[-1]]
            and self.allowed[ids[:-1], ids[1:]].all()
        )

    def decode(self, log_probs: np.ndarray, segment_starts: np.ndarray | None = None) -> np.ndarray:
        """Tag ids of the best-scoring well-formed sequence for one ``(n, T)`` score matrix.

        Scores only need to be additive per token (log-probabilities or logits).
        `segment_starts` (bool, per token) marks where no entity may continue, such as
        sentence starts: the model reads whole documents, but no entity crosses a sentence.
        """
        scores = np.asarray(log_probs)
        if scores.ndim != 2 or scores.shape[1] != len(self.tags):
            raise ValueError(f"expected shape (n, {len(self.tags)}), got {scores.shape}")
        cuts = _cuts(segment_starts, len(scores))
        best = scores.argmax(axis=1)
        # The unconstrained optimum bounds the constrained one; if it is well-formed it is it.
        if self.is_valid(best) and self._valid_cuts(best, cuts):
            return best.astype(np.int64, copy=False)
        return np.concatenate(
            [self._decode_segment(part) for part in np.split(scores, cuts)]
        ).astype(np.int64, copy=False)

    def _valid_cuts(self, tag_ids: np.ndarray, cuts: np.ndarray) -> bool:
        return bool(
            self.allowed_end[tag_ids[cuts - 1]].all() and self.allowed_start[tag_ids[cuts]].all()
        )

    def _decode_segment(self, scores: np.ndarray) -> np.ndarray:
        best = scores.argmax(axis=1)
        return best if self.is_valid(best) else self._viterbi(scores)

    def _viterbi(self, scores: np.ndarray) -> np.ndarray:
        emissions = finite_scores(scores)
        n, size = emissions.shape
        columns = np.arange(size)
        back = np.zeros((n, size), dtype=np.int64)
        # Unreachable tags hold -inf; "O" is reachable everywhere, so some score stays finite.
        score = np.where(self.allowed_start, emissions[0], -np.inf)
        for t in range(1, n):
            candidates = score[:, None] + self._log_trans
            prev = candidates.argmax(axis=0)
            back[t] = prev
            score = candidates[prev, columns] + emissions[t]
        path = np.empty(n, dtype=np.int64)
        current = int(np.where(self.allowed_end, score, -np.inf).argmax())
        path[-1] = current
        rows = back.tolist()
        for t in range(n - 1, 0, -1):
            current = rows[t][current]
            path[t - 1] = current
        return path

    def entity_steps(self) -> tuple[np.ndarray, np.ndarray]:
        """Allowed ``(T, T)`` transitions split the way `entities` reads them: those that
        begin an entity at their second tag, and those that continue the first tag's entity.

        The forward-backward pass (`posteriors`) follows a span through them, so the spans
        whose probability it computes are exactly the ones `entities` would read.
        """
        inside = self._type_ids >= 0
        begins = inside[None, :] & (
            self._begins[None, :]
            | self._closes[:, None]
            | (self._type_ids[:, None] != self._type_ids[None, :])
        )
        return self.allowed & begins, self.allowed & inside[None, :] & ~begins

    def entities(
        self,
        tag_ids: np.ndarray,
        probs: np.ndarray | None = None,
        segment_starts: np.ndarray | None = None,
    ) -> list[tuple[int, int, str, float]]:
        """Spans ``(start, end_exclusive, label, score)`` of a decoded tag sequence.

        The score is the mean probability the model gave the chosen tag over the span, a
        confidence callers can threshold on. Well-formed input reads the same under every
        convention; ill-formed input is read conlleval-style (a type change starts a span).
        """
        ids = np.asarray(tag_ids, dtype=np.int64)
        n = ids.size
        if n == 0:
            return []
        if ids.min() < 0 or ids.max() >= len(self.tags):
            raise ValueError(f"tag ids must lie in [0, {len(self.tags)})")
        types = self._type_ids[ids]
        inside = types >= 0
        prev_types = np.concatenate(([-1], types[:-1]))
        prev_closes = np.concatenate(([True], self._closes[ids[:-1]]))
        begin = inside & (self._begins[ids] | prev_closes | (types != prev_types))
        cuts = _cuts(segment_starts, n)
        begin[cuts] = inside[cuts]  # nothing continues across a segment start
        starts = np.flatnonzero(begin)
        bounds = np.append(np.flatnonzero(begin | ~inside), n)
        ends = bounds[np.searchsorted(bounds, starts, side="right")]
        if probs is None:
            means = np.ones(starts.size)
        else:
            chosen = np.asarray(probs, dtype=np.float64)[np.arange(n), ids]
            # Sums per span, not differences of a running total: after thousands of tokens
            # those cancel a small probability to 0 (or below).
            bounds_of_spans = np.stack([starts, ends], axis=1).ravel()
            sums = np.add.reduceat(np.append(chosen, 0.0), bounds_of_spans)[::2]
            means = sums / (ends - starts)
        return [
            (int(s), int(e), self.labels[types[s]], float(m))
            for s, e, m in zip(starts.tolist(), ends.tolist(), means.tolist(), strict=True)
        ]

    def tag_ids_from_biluo(self, biluo: Sequence[str | None]) -> np.ndarray:
        """Training targets from spaCy's per-token BILUO gold, `NO_TARGET` where the loss ignores.

        ``None``/``"-"`` (gold unknown after misalignment) and labels this head does not
        predict become `NO_TARGET` rather than ``O``, so the model is not taught that they are
        outside.
        """
        out = np.full(len(biluo), NO_TARGET, dtype=np.int64)
        prev: tuple[str, str] | None = None  # previous token's BILUO parts; None if unknown
        prev_known = True  # tag of the position before the first token: "O"
        for i, tag in enumerate(biluo):
            if tag is None or tag == "-":
                prev, prev_known = None, False
                continue
            if tag == _OUTSIDE:
                out[i] = self.outside
                prev, prev_known = None, True
                continue
            parts = _split(tag)
            if parts is None or parts[0] not in "BILU":
                raise ValueError(f"{tag!r} is not a BILUO tag")
            prefix, label = parts
            target = self._from_biluo_prefix(prefix, label, prev, prev_known)
            if target is not None:
                out[i] = self._index.get(f"{target}-{label}", NO_TARGET)
            prev, prev_known = parts, True
        return out

    def _from_biluo_prefix(
        self, prefix: str, label: str, prev: tuple[str, str] | None, prev_known: bool
    ) -> str | None:
        """This scheme's prefix for one BILUO token; None when its context is unknown."""
        if self.name == "BILOU":
            return prefix
        if self.name == "BIOES":
            return {"L": "E", "U": "S"}.get(prefix, prefix)
        if self.name == "IOB2":
            return {"L": "I", "U": "B"}.get(prefix, prefix)
        if prefix in "IL":
            return "I"
        # IOB1: an entity starts with B only right after another entity of its own type.
        if not prev_known:
            return None
        adjacent = prev is not None and prev[0] in "LU" and prev[1] == label
        return "B" if adjacent else "I"


def tags_for_head(
    current: Sequence[str] | None, labels: set[str], scheme: str | None
) -> tuple[str, ...] | None:
    """The tags a head needs to predict `labels`, or None when `current` already does so.

    `scheme` is the configured one; None keeps the current head's (IOB2 for a new head). A
    head whose entity types and scheme match is kept as it is, whatever the tags' order.
    """
    if not labels:
        return None
    current_scheme = TagScheme.from_tags(current, scheme) if current else None
    wanted = scheme or (current_scheme.name if current_scheme else "IOB2")
    if current_scheme is not None and (current_scheme.name, set(current_scheme.labels)) == (
        wanted,
        labels,
    ):
        return None
    return TagScheme.from_labels(labels, wanted).tags


def finite_scores(scores: np.ndarray) -> np.ndarray:
    """Per-token scores as float64 clamped to `_FLOOR`, so sums along any path stay finite."""
    emissions = np.nan_to_num(
        np.asarray(scores, dtype=np.float64), nan=_FLOOR, neginf=_FLOOR, posinf=-_FLOOR
    )
    return np.clip(emissions, _FLOOR, -_FLOOR)


def segment_bounds(segment_starts: np.ndarray | None, n: int) -> np.ndarray:
    """``[0, cut, ..., n]``: where each segment (sentence) of an ``n``-token doc starts and ends."""
    return np.concatenate(([0], _cuts(segment_starts, n), [n])).astype(np.int64)


def _cuts(segment_starts: np.ndarray | None, n: int) -> np.ndarray:
    """Positions (> 0) where a new segment starts."""
    if segment_starts is None:
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(np.asarray(segment_starts, dtype=bool)[1:n]) + 1


def _validate(tags: tuple[str, ...], name: str) -> list[tuple[str, str] | None]:
    """Parse ``tags`` and check they fit scheme ``name``; None marks the ``O`` tag."""
    unparsed = [t for t in tags if t != _OUTSIDE and _split(t) is None]
    if unparsed:
        raise _scheme_error(f"tags without a B-/I-/E-/S-/L-/U- prefix: {_show(unparsed)}")
    outside = tags.count(_OUTSIDE)
    if outside != 1:
        raise _scheme_error(f"expected exactly one 'O' tag, found {outside} in {_show(tags)}")
    duplicates = sorted({t for t in tags if tags.count(t) > 1})
    if duplicates:
        raise _scheme_error(f"duplicate tags {_show(duplicates)}")
    parts = [_split(t) for t in tags]
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
