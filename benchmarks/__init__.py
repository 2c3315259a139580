"""Benchmarks of spacy-bert-ner against the raw forward pass and the other ways of getting NER
out of a Hugging Face model. Not part of the installed package.

Run each from the repository root as a module, so that the checkout's `spacy_bert_ner` and
these shared helpers import without path edits:

    python -m benchmarks.speed            # inference words/s, long docs, profile, accuracy
    python -m benchmarks.train_speed      # training words/s against a plain transformers loop
    python -m benchmarks.shared_encoder   # one shared transformer pass against one per task
    python -m benchmarks.annotate_speed   # `annotate` docs/s, local processes against Ray
    python -m benchmarks.serve_load       # the HTTP service under concurrent clients

The CoNLL-2003 files come from `spacy_bert_ner.conll.data_dir()` ($SPACY_BERT_NER_DATA).
"""
