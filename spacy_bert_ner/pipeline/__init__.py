"""The `bert_ner` spaCy component: logits to entities, training, saving.

`bert_ner` holds the factory and the `TrainablePipe`; `gold` turns training examples into
targets (and names the entities it cannot learn), `losses` computes the token cross-entropy
and the rehearsal and distillation KL, `teacher` reads the teacher distributions a
distillation reader puts on the examples, `spans` writes entities and scores to the doc,
`scoring` gives spaCy's NER figures, and `loading` loads a saved pipeline for the commands
with a one-line error.
"""
