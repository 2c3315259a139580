"""CPU inference speed of `bert_ner` against the raw forward pass and the other spaCy/HF NER
paths: `python -m benchmarks.speed` (see `__main__.py` for the options)."""
