"""The annotation loop: choose the documents a person should correct (`select`), hand them to
Label Studio or Prodigy with the model's entities as pre-annotations (`formats`), and read the
corrections back into a `.spacy` corpus that `continual` trains on (`importer`)."""
