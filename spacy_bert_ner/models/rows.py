"""The output both architectures give: one row of tag logits per spaCy token, per doc.

A batch's rows are computed stacked, all its docs' tokens in one array, and handed on as one
array per doc, as spaCy's pipes expect; the pipe stacks them again for its loss and hands back
the gradient split the same way. `split_rows` is that one split, for logits and gradients
alike, so a doc's rows are the same slice on the way in and on the way back.
"""

from collections.abc import Sequence
from typing import Any

import numpy as np

#: Logit given to the "O" tag of tokens without a wordpiece (whitespace, control characters);
#: every other tag gets `-NO_PIECE_LOGIT`. Such a token has nothing to classify, so both
#: architectures make it certainly outside any entity.
NO_PIECE_LOGIT = 1e4


def split_rows(rows: Any, lengths: Sequence[int]) -> list[Any]:
    """Cut stacked per-token rows (a numpy or cupy array) into consecutive per-doc views of
    `lengths` rows each; the views share the stacked array's memory."""
    ends = np.cumsum(lengths, dtype=np.int64)
    return [rows[end - n : end] for n, end in zip(lengths, ends.tolist(), strict=True)]
