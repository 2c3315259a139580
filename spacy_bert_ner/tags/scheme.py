"""`TagScheme`: a model's tags with the transitions that make output well-formed, and the
constrained decoding, entity reading and training targets built on them (see the package's
docstring for why decoding is constrained)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from .names import OUTSIDE, canonical_scheme, detect_scheme, parse_tags, split_tag, tags_of_labels

# Clamp for Viterbi emissions, below and (negated) above: keeps every reachable path score
# finite, so an argmax over candidates always lands on an allowed predecessor, even for -inf,
# NaN or finite scores so large that their sum along a path would overflow to inf (and then
# inf plus a forbidden transition's -inf is NaN).
_FLOOR = -1e30
#: Training target of a token whose gold tag is unknown: the loss ignores it.
NO_TARGET = -1


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
        parts = parse_tags(tags, name)
        labels = tuple(sorted({p[1] for p in parts if p is not None}))
        type_of = {label: i for i, label in enumerate(labels)}
        prefix = np.array([p[0] if p else OUTSIDE for p in parts], dtype="<U1")
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
            closes = prefix == OUTSIDE
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
            "outside": tags.index(OUTSIDE),
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
        """Read the scheme off a model's ``id2label`` values (in id order); see `detect_scheme`."""
        return cls(detect_scheme(tags, scheme), tuple(tags))

    @classmethod
    def from_labels(cls, labels: Iterable[str], scheme: str = "IOB2") -> TagScheme:
        """Lay out the tags of a new classifier head (`tags_of_labels`)."""
        return cls(scheme, tags_of_labels(labels, scheme))

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
            if tag == OUTSIDE:
                out[i] = self.outside
                prev, prev_known = None, True
                continue
            parts = split_tag(tag)
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
