"""CoNLL NER column files -> spaCy `Doc`s and `.spacy` DocBins, one doc per document.

Why not `spacy convert --converter ner`: it ignores `-n` when a file has -DOCSTART- lines,
turns eng.testb's `-DOCSTART- -X- -X- O` lines into one-word sentences, and reads
whitespace-only separator lines as tokens (merging the sentences around them). This reader
gets the published sentence, token and entity counts exactly and keeps each -DOCSTART-
document whole, so training and evaluation can use document context.

Accepted input: CoNLL-2003 (`word POS chunk NER`, IOB1), CoNLL-2002 (`word [POS] NER`, IOB2,
Dutch -DOCSTART- lines without a blank line after them) and any `word ... tag` file; UTF-8
with or without a BOM, LF or CRLF, columns separated by spaces or tabs. In a file of three or
more columns the second is read as the part-of-speech tag and kept as `token.tag_`, so a
multi-task pipeline (a tagger beside the entity recognizer) trains from the same files.
"""

import codecs
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import cast

import spacy
from spacy.tokens import Doc, DocBin
from spacy.vocab import Vocab
from wasabi import msg

from .errors import BertNERError, ConllFormatError, parse_choice
from .io import atomic_path
from .tags import iob1_to_iob2

DOCSTART = "-DOCSTART-"


class ConllScheme(StrEnum):
    """The tag schemes a CoNLL file can be read as (the `convert --scheme` choices)."""

    IOB1 = "IOB1"
    IOB2 = "IOB2"


Sentence = list[tuple[str, str]]
"""(word, tag) pairs of one sentence."""

PosTags = list[str | None]
"""The part-of-speech column of one sentence's lines (None for a line without one)."""

#: Environment variable naming the folder that holds `conll2003/` and `conll2002/`.
DATA_DIR_ENV = "SPACY_BERT_NER_DATA"

_COLUMN_SEPARATOR = re.compile(r"[ \t]+")
_ENTITY_TAG = re.compile(r"[BI]-.+")


@dataclass
class ConllDocument:
    """One -DOCSTART- document (or `n_sents` sentences of a file without them).

    `sentences` hold IOB2 tags whatever the file used, so consumers never see IOB1.
    `scheme` is the scheme the file's tags were read as (given or detected), kept for the
    conversion summary. `pos` holds each sentence's part-of-speech tags when every line of
    the document has one, else None: a tagger must not learn from a half-tagged doc.
    """

    sentences: list[Sentence]
    scheme: ConllScheme
    pos: list[list[str]] | None = None


@dataclass
class ConllStats:
    """What a conversion read, printed after `convert_file` and asserted by the tests
    against the counts published for each corpus."""

    docs: int
    sentences: int
    tokens: int
    entities: dict[str, int]

    @classmethod
    def from_documents(cls, documents: Sequence[ConllDocument]) -> "ConllStats":
        """Count from IOB2 tags: every entity starts with exactly one B- tag."""
        entities: Counter[str] = Counter()
        sentences = tokens = 0
        for document in documents:
            for sentence in document.sentences:
                sentences += 1
                tokens += len(sentence)
                entities.update(tag[2:] for _, tag in sentence if tag.startswith("B-"))
        return cls(
            docs=len(documents),
            sentences=sentences,
            tokens=tokens,
            entities=dict(sorted(entities.items())),
        )


def data_dir() -> Path:
    """The folder of CoNLL corpora that tests and benchmarks read: `$SPACY_BERT_NER_DATA`, or
    else the `shared/data` folder beside a source checkout (where a clone's CI finds it).

    The corpora are not openly licensed, so nothing ships them; one place decides where a
    checkout looks, so a user who sets the variable moves every reader at once. The folder
    may not exist: callers say what is missing (a test skips, a benchmark stops).
    """
    configured = os.environ.get(DATA_DIR_ENV)
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[2] / "shared" / "data"


def read_conll(
    path: Path | str, scheme: ConllScheme | str | None = None, n_sents: int = 10
) -> list[ConllDocument]:
    """Read a CoNLL NER file into documents of sentences with IOB2 tags.

    -DOCSTART- lines start a new document (blank line after them or not) and never become
    tokens; documents without any sentence are dropped. A file without -DOCSTART- lines is
    cut into documents of `n_sents` sentences. `scheme` is a `ConllScheme`; when None it is
    detected from the whole file (see `detect_scheme`). Raises ConllFormatError naming the
    file and line for undecodable bytes, lines with one column and unknown tags.
    """
    if n_sents < 1:
        raise BertNERError(f"n_sents must be at least 1, got {n_sents}")
    if scheme is not None:
        scheme = parse_choice(ConllScheme, scheme, "tag scheme")
    raw_documents, saw_docstart = _parse(path, _read_text(path))
    sentences = [sentence for document in raw_documents for sentence in document]
    if not sentences:
        raise BertNERError(f"{path}: no tokens found")
    if not saw_docstart:
        raw_documents = [sentences[i : i + n_sents] for i in range(0, len(sentences), n_sents)]
    if scheme is None:
        scheme = detect_scheme([tag for _, tag in sentence] for sentence, _ in sentences)
    # IOB1 -> IOB2 also repairs an IOB2 file's I- starts: an I- that opens an entity becomes B-.
    return [
        ConllDocument(
            sentences=[_to_iob2(sentence) for sentence, _ in document],
            scheme=scheme,
            pos=_complete_pos([pos for _, pos in document]),
        )
        for document in raw_documents
        if document
    ]


def _complete_pos(pos_tags: list[PosTags]) -> list[list[str]] | None:
    if all(tag is not None for sentence in pos_tags for tag in sentence):
        return cast(list[list[str]], pos_tags)
    return None


def detect_scheme(sentences: Iterable[Sequence[str]]) -> ConllScheme:
    """Say whether a file's tags (one sequence per sentence) are IOB1 or IOB2.

    IOB1 when I- tags start more entities than there are B- tags. "Any I- at an entity start"
    would be too eager: CoNLL-2002 Spanish is IOB2 but has one I- start per file (after a
    sentence break inside an entity), and CoNLL-2003 train (IOB1) has two B- starts after O.
    Both schemes are read the same way (an I- that starts an entity counts as B-, as
    conlleval does), so the answer only labels the summary; it never changes entities.
    """
    i_starts = b_tags = 0
    for tags in sentences:
        previous = "O"
        for tag in tags:
            if tag.startswith("B-"):
                b_tags += 1
            elif tag.startswith("I-") and _starts_entity(previous, tag):
                i_starts += 1
            previous = tag
    return ConllScheme.IOB1 if i_starts > b_tags else ConllScheme.IOB2


def conll_to_docs(documents: Iterable[ConllDocument], vocab: Vocab) -> list[Doc]:
    """Make one Doc per document, with sentence starts and gold entities set.

    Tokens are joined by single spaces (the CoNLL files keep no original spacing); the
    sentence starts let document-context training still score and split by sentence.
    """
    docs = []
    for document in documents:
        words: list[str] = []
        tags: list[str] = []
        sent_starts: list[bool | int | None] = []
        for sentence in document.sentences:
            for position, (word, tag) in enumerate(sentence):
                words.append(word)
                tags.append(tag)
                sent_starts.append(position == 0)
        spaces = [True] * (len(words) - 1) + [False]
        pos = None if document.pos is None else [tag for sent in document.pos for tag in sent]
        docs.append(
            Doc(vocab, words=words, spaces=spaces, sent_starts=sent_starts, ents=tags, tags=pos)
        )
    return docs


def convert_file(
    input_path: Path | str,
    output_dir: Path | str,
    scheme: ConllScheme | str | None = None,
    n_sents: int = 10,
    lang: str = "en",
) -> Path:
    """Convert a CoNLL file to `output_dir/<input file name>.spacy` and print its counts.

    The name keeps the whole input name (eng.train -> eng.train.spacy) because CoNLL files
    have no real suffix. Everything is built before anything is written, and the DocBin is
    written to a temporary file that replaces the target at the end, so a malformed line or
    an interrupted run leaves no partial output.
    """
    input_path, output_dir = Path(input_path), Path(output_dir)
    try:
        vocab = spacy.blank(lang).vocab
    except ImportError as err:
        raise BertNERError(f"unknown language code {lang!r} for --lang") from err
    documents = read_conll(input_path, scheme=scheme, n_sents=n_sents)
    data = DocBin(docs=conll_to_docs(documents, vocab)).to_bytes()
    output_path = output_dir / f"{input_path.name}.spacy"
    with atomic_path(output_path) as tmp_path:
        tmp_path.write_bytes(data)
    stats = ConllStats.from_documents(documents)
    msg.good(f"Wrote {output_path} (tags read as {documents[0].scheme})")
    rows: list[tuple[str, int]] = [
        ("documents", stats.docs),
        ("sentences", stats.sentences),
        ("tokens", stats.tokens),
    ]
    rows += [(f"{label} entities", count) for label, count in stats.entities.items()]
    msg.table(rows, header=("", "count"), aligns=("l", "r"), divider=True)
    return output_path


def load_gold_docs(path: Path | str, vocab: Vocab) -> list[Doc]:
    """Gold docs for evaluation from a `.spacy` DocBin or, for any other name, a CoNLL file,
    so `evaluate` can score straight from the shared task files."""
    path = Path(path)
    if path.suffix != ".spacy":
        return conll_to_docs(read_conll(path), vocab)
    try:
        return list(DocBin().from_disk(path).get_docs(vocab))
    except OSError as err:
        raise BertNERError(f"{path}: cannot read ({err.strerror})") from None
    except Exception:  # whatever a damaged file breaks inside spaCy, the file is the cause
        raise BertNERError(
            f"{path}: not a .spacy (DocBin) file, or a damaged one (truncated or overwritten)"
        ) from None


def _read_text(path: Path | str) -> str:
    """Decode as UTF-8 without a BOM; a bad byte is reported with its line, since the
    usual cause is a Latin-1 copy of CoNLL-2002."""
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise BertNERError(f"{path}: cannot read ({err.strerror})") from err
    data = data.removeprefix(codecs.BOM_UTF8)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line_no = data.count(b"\n", 0, err.start) + 1
        problem = f"byte 0x{data[err.start]:02x} is not UTF-8 (re-encode the file as UTF-8)"
        raise ConllFormatError(path, line_no, problem) from None


def _parse(path: Path | str, text: str) -> tuple[list[list[tuple[Sentence, PosTags]]], bool]:
    """Split into documents of sentences (with their part-of-speech column) with the file's
    own tags, checking every line; also say whether the file had any -DOCSTART- line."""
    documents: list[list[tuple[Sentence, PosTags]]] = [[]]
    sentence: Sentence = []
    pos: PosTags = []
    saw_docstart = False
    for line_no, line in enumerate(text.split("\n"), start=1):
        columns = _COLUMN_SEPARATOR.split(line.strip(" \t\r"))
        if not line.strip() or columns[0] == DOCSTART:
            if sentence:
                documents[-1].append((sentence, pos))
                sentence, pos = [], []
            if line.strip():
                saw_docstart = True
                documents.append([])
            continue
        if len(columns) < 2:
            problem = f"expected at least 2 columns (word ... tag), got {len(columns)}"
            raise ConllFormatError(path, line_no, problem)
        tag = columns[-1]
        if tag != "O" and not _ENTITY_TAG.fullmatch(tag):
            raise ConllFormatError(path, line_no, f"unknown tag {tag!r}")
        sentence.append((columns[0], tag))
        pos.append(columns[1] if len(columns) >= 3 else None)
    if sentence:
        documents[-1].append((sentence, pos))
    return documents, saw_docstart


def _starts_entity(previous: str, tag: str) -> bool:
    """Whether an I- tag opens a new entity: after O or after another entity type."""
    return previous == "O" or previous[2:] != tag[2:]


def _to_iob2(sentence: Sentence) -> Sentence:
    """One sentence's tags through `iob1_to_iob2`; a sentence start always opens an entity."""
    words, tags = zip(*sentence, strict=True)
    return list(zip(words, iob1_to_iob2(tags), strict=True))
