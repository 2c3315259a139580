"""The model: a `Doc` batch in, one row of tag logits per spaCy token out.

`windows` cuts docs into wordpiece windows, `token_classifier` runs them through the Hugging
Face model (`hf_loading` loads it, `head` sizes its tags, `shim` adapts it to thinc,
`runtime` speeds up inference) and gathers the logits back to tokens; `listener_classifier`
reads them from a shared transformer instead. `architectures` holds the registered builders
that configs name, which check their arguments into `settings`, and `model_api` is what the
pipe asks of a model, whichever built it.
"""
