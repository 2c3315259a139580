"""Evaluation as NER papers report it: seqeval scores (`scores`), plots (`plots`), a page of
the model's errors (`errors_page`), and the `evaluate` command that runs them (`command`)."""
