"""How sure the model is of each entity: posterior probabilities over the decoding lattice.

The mean probability of an entity's tags is not the probability that the entity is right: it
ignores that the same tokens could also have been a longer span, another type, or nothing,
and a two-token entity whose tags each score 0.8 may be right far less than 80% of the time.
Under the model's token distributions restricted to the well-formed tag sequences that
`TagScheme.decode` chooses among, the probability that exactly one span carries exactly one
label is a sum over all sequences that read that way. Forward-backward computes it: the
forward scores reach the token before the span, a walk through the transitions that continue
an entity covers the span, and the backward scores leave it through any transition that does
not continue it (`TagScheme.entity_steps`). The same pass gives, per token, the probability
that it lies outside every entity, which is what `labelling.select` counts as missed mass,
and, on request, per token and label the probability that an entity of that label begins
there (`estimate` counts the expected entities left unpredicted from them).

Everything is in log space (a max-shifted matrix product per step, since the transitions are
allowed-or-not), vectorised over the segments (sentences) of a batch of docs; segments are
grouped by length so a long document is never padded against many short ones.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .tags import TagScheme, finite_scores, segment_bounds

#: Padded (segment, token) cells computed at once: bounds the memory of a group's forward
#: and backward scores (2 x 8 bytes x tags per cell) whatever the batch holds.
_GROUP_CELLS = 1 << 17


@dataclass(frozen=True)
class DocPosteriors:
    """One doc's figures: per requested span its probability, per token P(outside), and
    (when asked for) per token and label P(an entity of that label begins here)."""

    span_probs: np.ndarray
    outside_probs: np.ndarray
    start_probs: np.ndarray | None = None


def posteriors(
    scheme: TagScheme,
    log_probs: Sequence[np.ndarray],
    spans: Sequence[Sequence[tuple[int, int, str]]],
    segment_starts: Sequence[np.ndarray | None] | None = None,
    *,
    with_starts: bool = False,
) -> list[DocPosteriors]:
    """Posterior probability of each ``(start, end_exclusive, label)`` span of each doc, and
    of each token being outside any entity, under `scheme`'s lattice.

    ``log_probs[i]`` is doc i's ``(n, T)`` matrix of tag log-probabilities; spans must lie
    inside one segment of `segment_starts` (as decoded entities do), else their probability
    is 0. `with_starts` adds each token's ``(n, labels)`` probabilities of beginning an
    entity of each of `scheme.labels`.
    """
    starts = segment_starts or [None] * len(log_probs)
    segments = [
        (doc, int(a), int(b))
        for doc, (scores, cuts) in enumerate(zip(log_probs, starts, strict=True))
        for a, b in _pairs(segment_bounds(cuts, len(scores)))
        if b > a
    ]
    span_probs = [np.zeros(len(doc_spans)) for doc_spans in spans]
    outside = [np.zeros(len(scores)) for scores in log_probs]
    begins = [np.zeros((len(scores), len(scheme.labels))) for scores in log_probs]
    groups = _groups_by_length(segments)
    group_of = {g: (k, row) for k, group in enumerate(groups) for row, g in enumerate(group)}
    by_group: list[list[tuple[int, int, int, int, int, int]]] = [[] for _ in groups]
    for g, doc, index, start, end, label in _locate_spans(scheme, spans, segments):
        k, row = group_of[g]
        by_group[k].append((row, doc, index, start, end, label))
    lattice = _Lattice(scheme)
    for group, located in zip(groups, by_group, strict=True):
        emissions, lengths = _pad([log_probs[d][a:b] for d, a, b in (segments[g] for g in group)])
        alpha, beta, log_z = lattice.forward_backward(emissions, lengths)
        inside = np.arange(emissions.shape[1])[None, :] < lengths[:, None]  # not padding
        log_out = alpha[..., scheme.outside] + beta[..., scheme.outside] - log_z[:, None]
        with np.errstate(under="ignore"):
            out = np.exp(np.where(inside, log_out, -np.inf))
        for row, g in enumerate(group):
            doc, a, b = segments[g]
            outside[doc][a:b] = np.minimum(out[row, : b - a], 1.0)
        if with_starts:
            begun = lattice.begin_marginals(emissions, alpha, beta, log_z, len(scheme.labels))
            for row, g in enumerate(group):
                doc, a, b = segments[g]
                begins[doc][a:b] = begun[row, : b - a]
        if not located:
            continue
        rows, docs, index, start, end, label = np.array(located, dtype=np.int64).T
        mass = lattice.span_log_mass(emissions, lengths, alpha, beta, rows, start, end, label)
        with np.errstate(under="ignore"):
            probs = np.clip(np.exp(mass - log_z[rows]), 0.0, 1.0)
        for d, i, p in zip(docs.tolist(), index.tolist(), probs.tolist(), strict=True):
            span_probs[d][i] = p
    return [
        DocPosteriors(p, o, s if with_starts else None)
        for p, o, s in zip(span_probs, outside, begins, strict=True)
    ]


class _Lattice:
    """The scheme's transitions as 0/1 matrices, and the passes over them."""

    def __init__(self, scheme: TagScheme) -> None:
        begin, cont = scheme.entity_steps()
        self.trans = scheme.allowed.astype(np.float64)
        self.begin = begin.astype(np.float64)
        self.cont = cont.astype(np.float64)
        self.leave = (scheme.allowed & ~cont).astype(np.float64)
        with np.errstate(divide="ignore"):
            self.log_start = np.log(scheme.allowed_start.astype(np.float64))
            self.log_end = np.log(scheme.allowed_end.astype(np.float64))
            self.log_start_entity = np.log(
                (scheme.allowed_start & (scheme.tag_types >= 0)).astype(np.float64)
            )
        self.tag_types = scheme.tag_types

    def forward_backward(
        self, emissions: np.ndarray, lengths: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Forward scores (emission at t included), backward scores (excluded), log Z."""
        n_rows, width, _ = emissions.shape
        alpha = np.empty_like(emissions)
        beta = np.empty_like(emissions)
        alpha[:, 0] = self.log_start + emissions[:, 0]
        for t in range(1, width):
            alpha[:, t] = _step(alpha[:, t - 1], self.trans) + emissions[:, t]
        beta[:, width - 1] = self.log_end
        for t in range(width - 2, -1, -1):
            back = _step(beta[:, t + 1] + emissions[:, t + 1], self.trans.T)
            beta[:, t] = np.where((lengths - 1 == t)[:, None], self.log_end, back)
        last = alpha[np.arange(n_rows), lengths - 1] + self.log_end
        return alpha, beta, _logsumexp(last)

    def begin_marginals(
        self,
        emissions: np.ndarray,
        alpha: np.ndarray,
        beta: np.ndarray,
        log_z: np.ndarray,
        n_labels: int,
    ) -> np.ndarray:
        """``(rows, width, n_labels)``: the probability that an entity of each label begins at
        each position (padding positions hold garbage the caller leaves out)."""
        n_rows, width, n_tags = emissions.shape
        entered = np.empty_like(emissions)
        entered[:, 0] = self.log_start_entity
        if width > 1:
            flat = alpha[:, :-1].reshape(-1, n_tags)
            entered[:, 1:] = _step(flat, self.begin).reshape(n_rows, width - 1, n_tags)
        with np.errstate(under="ignore"):
            tags = np.exp(np.minimum(entered + emissions + beta - log_z[:, None, None], 0.0))
        out = np.zeros((n_rows, width, n_labels))
        for label in range(n_labels):
            out[..., label] = tags[..., self.tag_types == label].sum(axis=-1)
        return np.minimum(out, 1.0)

    def span_log_mass(
        self,
        emissions: np.ndarray,
        lengths: np.ndarray,
        alpha: np.ndarray,
        beta: np.ndarray,
        rows: np.ndarray,
        start: np.ndarray,
        end: np.ndarray,
        label: np.ndarray,
    ) -> np.ndarray:
        """Log of the summed weight of the paths that read [start, end) as one `label` entity."""
        width = emissions.shape[1]
        entered = _step(alpha[rows, np.maximum(start - 1, 0)], self.begin)
        score = np.where((start > 0)[:, None], entered, self.log_start_entity)
        score = score + emissions[rows, start]
        score = np.where(self.tag_types[None, :] == label[:, None], score, -np.inf)
        for k in range(1, int((end - start).max())):
            position = np.minimum(start + k, width - 1)
            moved = _step(score, self.cont) + emissions[rows, position]
            score = np.where((end - start > k)[:, None], moved, score)
        after = np.minimum(end, width - 1)
        left = _step(emissions[rows, after] + beta[rows, after], self.leave.T)
        exit_score = np.where((end == lengths[rows])[:, None], self.log_end, left)
        return _logsumexp(score + exit_score)


def _step(scores: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """``log(exp(scores) @ steps)`` per row without overflow: shifted by the row's maximum.

    `einsum` rather than a BLAS product: its additions run in one order whatever the number
    of rows, so a doc gets the same scores bit for bit alone or in any batch.
    """
    top = scores.max(axis=-1, keepdims=True)
    top[~np.isfinite(top)] = 0.0
    with np.errstate(divide="ignore", under="ignore"):
        return top + np.log(np.einsum("ga,ab->gb", np.exp(scores - top), steps))


def _logsumexp(scores: np.ndarray) -> np.ndarray:
    top = scores.max(axis=-1)
    top[~np.isfinite(top)] = 0.0
    with np.errstate(divide="ignore", under="ignore"):
        return top + np.log(np.exp(scores - top[:, None]).sum(axis=-1))


def _pairs(bounds: np.ndarray) -> zip[tuple[int, int]]:
    return zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True)


def _pad(parts: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.array([len(part) for part in parts], dtype=np.int64)
    out = np.zeros((len(parts), int(lengths.max()), parts[0].shape[1]))
    for row, part in enumerate(parts):
        out[row, : len(part)] = part
    return finite_scores(out), lengths


def _groups_by_length(segments: list[tuple[int, int, int]]) -> list[list[int]]:
    """Segment indices in groups of similar length whose padded size stays under the budget."""
    order = sorted(range(len(segments)), key=lambda g: segments[g][2] - segments[g][1])
    groups: list[list[int]] = []
    for g in order:
        length = segments[g][2] - segments[g][1]  # the longest so far: the group's width
        if groups and (len(groups[-1]) + 1) * length <= _GROUP_CELLS:
            groups[-1].append(g)
        else:
            groups.append([g])
    return groups


def _locate_spans(
    scheme: TagScheme,
    spans: Sequence[Sequence[tuple[int, int, str]]],
    segments: list[tuple[int, int, int]],
) -> list[tuple[int, int, int, int, int, int]]:
    """Per span inside one segment: (segment, doc, index, local start, local end, label id);
    a span across segments, empty or of an unknown label is left out (its probability is 0)."""
    seg_ids: dict[int, list[int]] = {}
    for g, (doc, _, _) in enumerate(segments):
        seg_ids.setdefault(doc, []).append(g)
    label_ids = {label: i for i, label in enumerate(scheme.labels)}
    located = []
    for doc, doc_spans in enumerate(spans):
        ids = seg_ids.get(doc, [])
        seg_starts = [segments[g][1] for g in ids]
        # Decoded entities come in order, so one pass over the segments finds them all.
        k = 0
        for index, (start, end, label) in enumerate(doc_spans):
            if k >= len(ids) or seg_starts[k] > start:
                k = bisect_right(seg_starts, start) - 1
            while k + 1 < len(ids) and seg_starts[k + 1] <= start:
                k += 1
            if k < 0 or start >= end or label not in label_ids:
                continue
            _, a, b = segments[ids[k]]
            if end <= b:
                located.append((ids[k], doc, index, start - a, end - a, label_ids[label]))
    return located
