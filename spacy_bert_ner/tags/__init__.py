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

The package's modules: `names` reads tag strings (scheme names, detection, validation, IOB1 to
IOB2); `scheme` holds `TagScheme`, the transitions, the decoding and the training targets.
"""

from .names import SCHEMES, canonical_scheme, iob1_to_iob2
from .scheme import NO_TARGET, TagScheme, finite_scores, segment_bounds, tags_for_head

__all__ = [
    "NO_TARGET",
    "SCHEMES",
    "TagScheme",
    "canonical_scheme",
    "finite_scores",
    "iob1_to_iob2",
    "segment_bounds",
    "tags_for_head",
]
