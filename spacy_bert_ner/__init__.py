"""spaCy plugin: a Hugging Face BERT token classifier as the `bert_ner` NER component.

Importing the package registers the `bert_ner` factory, the
`spacy_bert_ner.TokenClassifier.v1` and `spacy_bert_ner.ListenerTokenClassifier.v1`
architectures with the `first_piece.v1` pooling (and the readers, scorer, MiniLM name,
continual-training callbacks and training loggers the configs use); spaCy also finds each
through the package's entry points without this import. Importing changes no process-wide
state. `replace_lone_surrogates` replaces the lone surrogates that spaCy's tokenizer
refuses in a text, as `annotate` and `serve` do (see `spacy_bert_ner.text`).
"""

from .models.architectures import build_token_classifier, minilm_name
from .pipeline.bert_ner import BertNER, make_bert_ner
from .pipeline.scoring import make_scorer
from .text import replace_lone_surrogates
from .training.callbacks import make_add_labels, make_rehearsal
from .training.loggers import make_training_logger
from .training.readers import create_sentence_runs_reader, create_teacher_runs_reader

__all__ = [
    "BertNER",
    "build_token_classifier",
    "create_sentence_runs_reader",
    "create_teacher_runs_reader",
    "make_add_labels",
    "make_bert_ner",
    "make_rehearsal",
    "make_scorer",
    "make_training_logger",
    "minilm_name",
    "replace_lone_surrogates",
]
