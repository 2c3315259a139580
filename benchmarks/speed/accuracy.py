"""`--accuracy`: entity F1 of the systems that return Docs, against the CoNLL gold tags of the
same sentences. With the random-head MiniLM it only shows whether the systems agree."""

from ..inputs import Sentences
from .rounds import Result
from .systems import BERT_NER_SYSTEMS


def print_accuracy(results: list[Result], sents: Sentences, model_kind: str) -> None:
    """seqeval conlleval P/R/F1 of the bert_ner systems and hfpipe at the largest pipe batch,
    and each bert_ner variant's F1 loss against torch fp32."""
    from spacy.tokens import Doc

    from spacy_bert_ner.evaluation.scores import score_docs

    print()
    print("Accuracy (seqeval conlleval, entity micro F1) on the same sentences")
    if model_kind == "random":
        print("  (random head: these figures only show that the systems agree, not quality)")
    scored = {}
    biggest = max((r.pipe_batch or 0) for r in results)
    for r in results:
        if r.docs is None or r.system not in (*BERT_NER_SYSTEMS, "hfpipe"):
            continue
        if r.pipe_batch != biggest:
            continue
        # Gold in the predictions' vocab: a label the gold sentences lack must still be known.
        vocab = r.docs[0].vocab
        pairs = zip(sents.words, sents.tags, strict=True)
        gold = [Doc(vocab, words=words, ents=tags) for words, tags in pairs]
        metrics = score_docs(gold, r.docs)["conlleval"]
        scored[r.system] = metrics["f1"]
        print(
            f"  {r.system:<8} P {metrics['precision']:.4f}  R {metrics['recall']:.4f}  "
            f"F1 {metrics['f1']:.4f}"
        )
    for other in ("bf16", "int8", "ort", "ortint8"):
        if "fp32" in scored and other in scored:
            loss = 100 * (scored["fp32"] - scored[other])
            print(f"  {other} F1 loss vs fp32: {loss:.2f} points (negative: it scored higher)")
    if not scored:
        print("  (no bert_ner/hfpipe results to score)")
