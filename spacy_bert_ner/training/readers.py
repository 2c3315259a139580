"""A training corpus reader that keeps document context but not whole documents.

Whole CoNLL documents make batches of one or two stories each (sports tables, one company's
results), so a step's gradient comes from very few topics. Cutting documents into runs of
consecutive sentences of about one window's length keeps every sentence's neighbours (what
the window would show the model anyway) and lets a batch mix many documents. `TeacherRuns.v1`
reads the same runs with the teachers' distributions of their tokens attached, for
distillation (`training.distill`).
"""

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from spacy.language import Language
from spacy.tokens import Doc
from spacy.training import Corpus, Example
from spacy.util import registry

from ..errors import BertNERError
from ..pipeline.teacher import attach_teacher
from .augmenters import Augmenter
from .distill import TeacherDistributions, read_teacher_distributions


@registry.readers("spacy_bert_ner.SentenceRuns.v1")
def create_sentence_runs_reader(
    path: Path | None, max_words: int = 128, limit: int = 0, augmenter: Augmenter | None = None
) -> Callable[[Language], Iterator[Example]]:
    """Examples of consecutive sentences of at most `max_words` words (a longer sentence
    stands alone), read from a .spacy file of documents with sentence starts (`path` may
    be null until the reader reads, see `_corpus`).

    `augmenter` (as in `spacy.Corpus.v1`, e.g. `spacy_bert_ner.case_variants.v1`) applies to
    each run, so a batch mixes changed and unchanged runs.
    """
    corpus = _corpus("spacy_bert_ner.SentenceRuns.v1", path, limit)

    def read(nlp: Language) -> Iterator[Example]:
        for example in corpus(nlp):
            for _, run in run_examples(example.reference, max_words, nlp):
                yield from augmented(nlp, run, augmenter)

    return read


@registry.readers("spacy_bert_ner.TeacherRuns.v1")
def create_teacher_runs_reader(
    path: Path | None,
    teachers: Path | None,
    max_words: int = 128,
    limit: int = 0,
    augmenter: Augmenter | None = None,
) -> Callable[[Language], Iterator[Example]]:
    """`SentenceRuns.v1`'s examples, each reference doc carrying the teachers' distributions
    of its tokens (`pipeline.teacher`), from `teachers`, the file `teacher-distributions`
    wrote for the documents at `path`. A document the file lacks is an error naming it.
    The augmenter must keep the reference's `user_data`, as `case_variants.v1` does (an
    example that lost its distributions is refused in training, naming it).
    """
    corpus = _corpus("spacy_bert_ner.TeacherRuns.v1", path, limit)
    if teachers is None:
        raise BertNERError(
            "spacy_bert_ner.TeacherRuns.v1: no teacher distributions file; set it "
            "(e.g. --paths.teachers)"
        )
    loaded: list[TeacherDistributions] = []  # read once, on the first pass

    def read(nlp: Language) -> Iterator[Example]:
        if not loaded:
            loaded.append(read_teacher_distributions(teachers))
        distributions = loaded[0]
        for example in corpus(nlp):
            rows = distributions.rows_of(example.reference, teachers)
            for (start, end), run in run_examples(example.reference, max_words, nlp):
                attach_teacher(run.reference, distributions.tags, rows[start:end])
                yield from augmented(nlp, run, augmenter)

    return read


def _corpus(reader: str, path: Path | None, limit: int) -> Corpus:
    """`path` may be null in a config, as spaCy's `spacy.Corpus.v1` allows, so commands that
    only validate a config (`spacy assemble`, `spacy debug config`) take `--paths.train null`;
    the reader refuses it only when it is built to read."""
    if path is None:
        raise BertNERError(f"{reader}: no corpus path; set it (e.g. --paths.train)")
    return Corpus(path, limit=limit)


def augmented(nlp: Language, example: Example, augmenter: Augmenter | None) -> Iterator[Example]:
    """What `augmenter` makes of `example`; the example itself without one."""
    if augmenter is None:
        yield example
    else:
        yield from augmenter(nlp, example)


def run_examples(
    doc: Doc, max_words: int, nlp: Language
) -> Iterator[tuple[tuple[int, int], Example]]:
    """The examples of `doc`'s `sentence_runs`, each with its token range in `doc`: the run
    as gold, its words (no annotation) as the predicted doc."""
    for start, end in sentence_runs(doc, max_words):
        gold = doc[start:end].as_doc()
        yield (start, end), Example(Doc(nlp.vocab, words=[t.text for t in gold]), gold)


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
