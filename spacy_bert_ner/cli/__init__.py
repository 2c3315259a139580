"""The command line, `python -m spacy_bert_ner ...`: one Typer `app` (`app.py`, which also
turns every input error into one line), with its commands grouped by what they do to a
pipeline: bring data in and out (`data`), fit weights (`training`), score them (`evaluation`),
run them on new text (`inference`). Importing a group registers its commands."""

from . import data, evaluation, inference, training
from .app import app

__all__ = ["app", "data", "evaluation", "inference", "training"]
