"""spaCy plugin: a Hugging Face BERT token classifier as the `bert_ner` NER component.

Importing the package registers the `bert_ner` factory and the
`spacy_bert_ner.TokenClassifier.v1` architecture (and the reader, scorer, MiniLM name and
continual-training callbacks the configs use); spaCy also finds them through the package's
entry points without this import.
"""

from .corpus import create_sentence_runs_reader
from .model import build_token_classifier
from .pipe import BertNER, make_bert_ner
from .resume import make_add_labels, make_rehearsal

__all__ = [
    "BertNER",
    "build_token_classifier",
    "create_sentence_runs_reader",
    "make_add_labels",
    "make_bert_ner",
    "make_rehearsal",
]
