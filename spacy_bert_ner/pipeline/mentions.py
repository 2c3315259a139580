"""The entity mentions a model was trained on, kept as a compact set of hashes.

Two things need to know whether an entity's text occurred in the training data with its label:
`evaluate --train` splits its scores into "seen" and "unseen" entities (Augenstein et al.
2017, "Generalisation in named entity recognition": unseen mentions are where models fail,
and a test set's score mostly reflects its share of them), and the calibrator, for which
"never seen" is the strongest sign that a span probability is too high on shifted text.

A mention is its label and its text with whitespace runs made one space (the same name split
over a line break is the same name). Case is kept: "Apple" and "apple" are different evidence.
Only 64-bit hashes are stored (BLAKE2b, the same on every machine and Python), so a
pipeline carries the set of a 200,000-mention corpus in about 1.6 MB and never its text; a
collision between two mentions is about one in 10^9 for that corpus, far below what matters.
"""

import hashlib
import re
from collections.abc import Iterable

import numpy
import srsly
from spacy.tokens import Doc, Span

WHITESPACE = re.compile(r"\s+")


def mention_key(text: str, label: str) -> int:
    """The hash under which a mention of `label` with this text is stored."""
    mention = f"{label}\t{WHITESPACE.sub(' ', text.strip())}".encode("utf8", "surrogatepass")
    return int.from_bytes(hashlib.blake2b(mention, digest_size=8).digest(), "little")


class TrainingMentions:
    """Which (text, label) mentions occurred in a training corpus; answers membership only."""

    def __init__(self, keys: Iterable[int] = ()) -> None:
        self._keys = frozenset(int(key) for key in keys)

    @classmethod
    def from_docs(cls, docs: Iterable[Doc]) -> "TrainingMentions":
        """The mentions of `docs`' entities (`doc.ents`: pass reference docs for gold)."""
        return cls(mention_key(ent.text, ent.label_) for doc in docs for ent in doc.ents)

    def __len__(self) -> int:
        return len(self._keys)

    def __bool__(self) -> bool:
        return bool(self._keys)

    def __or__(self, other: "TrainingMentions") -> "TrainingMentions":
        """The mentions of both: a model fine-tuned on new data knows its old corpus too."""
        return TrainingMentions(self._keys | other._keys)

    def contains(self, text: str, label: str) -> bool:
        """Whether a mention with this text and label occurred in training."""
        return mention_key(text, label) in self._keys

    def seen(self, span: Span) -> bool:
        """Whether `span`'s text occurred in training with `span`'s label."""
        return self.contains(span.text, span.label_)

    def to_bytes(self) -> bytes:
        """The hashes, sorted (so equal sets serialise to equal bytes), as msgpack."""
        keys = numpy.array(sorted(self._keys), dtype="uint64")
        return srsly.msgpack_dumps({"version": 1, "keys": keys.tobytes()})

    @classmethod
    def from_bytes(cls, data: bytes) -> "TrainingMentions":
        msg = srsly.msgpack_loads(data)
        return cls(numpy.frombuffer(msg["keys"], dtype="uint64").tolist())
