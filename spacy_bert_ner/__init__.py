"""spaCy plugin: a Hugging Face BERT token classifier as the `bert_ner` NER component.

Importing the package registers the `bert_ner` factory and the
`spacy_bert_ner.TokenClassifier.v1` architecture; spaCy also finds both through the
`spacy_factories` / `spacy_architectures` entry points without this import.
"""

from .model import build_token_classifier
from .pipe import BertNER, make_bert_ner

__all__ = ["BertNER", "build_token_classifier", "make_bert_ner"]
