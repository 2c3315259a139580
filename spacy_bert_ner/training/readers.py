"""A training corpus reader that keeps document context but not whole documents.

Whole CoNLL documents make batches of one or two stories each (sports tables, one company's
results), so a step's gradient comes from very few topics. Cutting documents into runs of
consecutive sentences of about one window's length keeps every sentence's neighbours (what
the window would show the model anyway) and lets a batch mix many documents.
"""

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from spacy.language import Language
from spacy.tokens import Doc
from spacy.training import Corpus, Example
from spacy.util import registry

from ..errors import BertNERError
from .augmenters import Augmenter


@registry.readers("spacy_bert_ner.SentenceRuns.v1")
def create_sentence_runs_reader(
    path: Path | None, max_words: int = 128, limit: int = 0, augmenter: Augmenter | None = None
) -> Callable[[Language], Iterator[Example]]:
    """Examples of consecutive sentences of at most `max_words` words (a longer sentence
    stands alone), read from a .spacy file of documents with sentence starts.

    `augmenter` (as in `spacy.Corpus.v1`, e.g. `spacy_bert_ner.case_variants.v1`) applies to
    each run, so a batch mixes changed and unchanged runs.

    `path` may be null in a config, as spaCy's `spacy.Corpus.v1` allows, so commands that
    only validate a config (`spacy assemble`, `spacy debug config`) take `--paths.train null`;
    the reader refuses it only when it is built to read.
    """
    if path is None:
        raise BertNERError(
            "spacy_bert_ner.SentenceRuns.v1: no corpus path; set it (e.g. --paths.train)"
        )
    corpus = Corpus(path, limit=limit)

    def read(nlp: Language) -> Iterator[Example]:
        for example in corpus(nlp):
            for start, end in sentence_runs(example.reference, max_words):
                gold = example.reference[start:end].as_doc()
                run = Example(Doc(nlp.vocab, words=[t.text for t in gold]), gold)
                if augmenter is None:
                    yield run
                else:
                    yield from augmenter(nlp, run)

    return read


def sentence_runs(doc: Doc, max_words: int) -> Iterator[tuple[int, int]]:
    """Token ranges of consecutive whole sentences holding at most `max_words` tokens."""
    if not doc.has_annotation("SENT_START"):
        yield 0, len(doc)
        return
    start = end = 0
    for sent in doc.sents:
        if end > start and sent.end - start > max_words:
            yield start, end
            start = sent.start
        end = sent.end
    if end > start:
        yield start, end


@registry.readers("spacy_bert_ner.Shard.v1")
def create_shard_reader(
    corpus: Callable[[Language], Iterable[Example]], rank: int, workers: int
) -> Callable[[Language], Iterator[Example]]:
    """Every `workers`-th example of `corpus` from the `rank`-th on: one data-parallel
    worker's share of the training corpus (any reader: `spacy.Corpus.v1`, `SentenceRuns.v1`).

    Every worker reads the whole corpus and keeps its own examples, so every worker also
    counts them all, and a corpus too small to give each one an example fails the same way
    on all of them (a worker with nothing to train on would take no part in the steps).
    """
    if not 0 <= rank < workers:
        raise BertNERError(f"spacy_bert_ner.Shard.v1: rank {rank} outside 0..{workers - 1}")

    def read(nlp: Language) -> Iterator[Example]:
        seen = 0
        for seen, example in enumerate(corpus(nlp), 1):
            if (seen - 1) % workers == rank:
                yield example
        if seen < workers:
            raise BertNERError(
                f"distributed training: the training corpus holds {seen} examples, fewer than "
                f"the {workers} workers; use fewer workers or more data"
            )

    return read
