"""Training speed: words/s of `bert_ner` updates vs a plain transformers/torch loop.

Both sides fine-tune the same encoder (the embedded MiniLM by default) on the same
CoNLL-2003 training words, in one process, with the same threads and about the same batch:
- plain: sentences, first-wordpiece labels, `AutoModelForTokenClassification`, torch AdamW,
  batches of `--batch-sentences` sentences padded to their longest (the usual HF recipe);
- bert_ner: whole documents cut into windows, the optimizer and batcher that
  `configs/cpu.cfg` gives `spacy train` (thinc Adam, batch_by_words), via `nlp.update`, which
  is exactly the step `spacy train` runs between its evaluations.
Dev evaluation is excluded from both. Prints words/s and the ratio.

    python benchmarks/train_speed.py [--steps 40] [--conll ../shared/data/conll2003/eng.train]
"""

import argparse
import time
from pathlib import Path

import spacy
import torch
from spacy.tokens import Doc
from spacy.training import Example
from spacy.util import load_config, registry
from transformers import AutoModelForTokenClassification, AutoTokenizer

from spacy_bert_ner.conll import conll_to_docs, read_conll
from spacy_bert_ner.models.architectures import minilm_name

REPO = Path(__file__).resolve().parents[1]
TAGS = ["O", "B-LOC", "I-LOC", "B-MISC", "I-MISC", "B-ORG", "I-ORG", "B-PER", "I-PER"]


def plain_loop(sentences: list[tuple[list[str], list[str]]], name: str, batch: int, steps: int):
    """The reference: what a transformers user writes by hand. Returns (words, seconds)."""
    tokenizer = AutoTokenizer.from_pretrained(name)
    model = AutoModelForTokenClassification.from_pretrained(
        name, num_labels=len(TAGS), id2label=dict(enumerate(TAGS))
    )
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5, weight_decay=0.01)
    tag_id = {t: i for i, t in enumerate(TAGS)}

    def step(chunk: list[tuple[list[str], list[str]]]) -> int:
        words = [w for w, _ in chunk]
        enc = tokenizer(words, is_split_into_words=True, padding=True, return_tensors="pt")
        labels = torch.full(enc["input_ids"].shape, -100)
        for i, (_, tags) in enumerate(chunk):
            seen = set()
            for j, word in enumerate(enc.word_ids(i)):
                if word is not None and word not in seen:
                    seen.add(word)
                    labels[i, j] = tag_id[tags[word]]
        loss = model(**enc, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
        return sum(len(w) for w in words)

    chunks = [sentences[i : i + batch] for i in range(0, len(sentences), batch)]
    for chunk in chunks[:2]:  # warm-up
        step(chunk)
    start, n_words = time.perf_counter(), 0
    for chunk in chunks[2 : 2 + steps]:
        n_words += step(chunk)
    return n_words, time.perf_counter() - start


def bert_ner_loop(docs, name: str, steps: int, words_per_batch: int):
    """`spacy train`'s update step with the optimizer and batcher of configs/cpu.cfg."""
    config = load_config(REPO / "configs" / "cpu.cfg")
    config["components"]["bert_ner"]["model"]["name"] = name
    config["training"]["batcher"]["size"]["rate"] = words_per_batch
    nlp = spacy.blank("en", vocab=docs[0].vocab)  # the gold docs' labels live in that vocab
    nlp.add_pipe("bert_ner", config={"model": config["components"]["bert_ner"]["model"]})
    training = registry.resolve(config["training"])
    optimizer, batcher = training["optimizer"], training["batcher"]
    # Gold docs are CoNLL-tokenized; predicted docs share their tokens, as in spacy train.
    examples = [Example(Doc(nlp.vocab, words=[t.text for t in d]), d) for d in docs]
    nlp.initialize(lambda: examples, sgd=optimizer)
    batches = list(batcher(examples))
    for batch in batches[:2]:
        nlp.update(batch, sgd=optimizer)
    start, n_words = time.perf_counter(), 0
    for batch in batches[2 : 2 + steps]:
        nlp.update(batch, sgd=optimizer)
        n_words += sum(len(eg.reference) for eg in batch)
    return n_words, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--conll", type=Path, default=REPO.parent / "shared/data/conll2003/eng.train"
    )
    parser.add_argument("--model", default=None, help="encoder (default: embedded MiniLM)")
    parser.add_argument("--steps", type=int, default=40, help="timed steps per system")
    parser.add_argument("--batch-sentences", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    name = args.model or minilm_name()

    docs = conll_to_docs(read_conll(args.conll), spacy.blank("en").vocab)
    sentences = [
        (
            [t.text for t in sent],
            [t.ent_iob_ + "-" + t.ent_type_ if t.ent_type_ else "O" for t in sent],
        )
        for doc in docs
        for sent in doc.sents
    ]
    words_per_sentence = sum(len(w) for w, _ in sentences) / len(sentences)
    words_per_batch = round(words_per_sentence * args.batch_sentences)

    plain_words, plain_s = plain_loop(sentences, name, args.batch_sentences, args.steps)
    ours_words, ours_s = bert_ner_loop(docs, name, args.steps, words_per_batch)
    plain_wps, ours_wps = plain_words / plain_s, ours_words / ours_s
    print(
        f"\nencoder {name}; {args.threads} threads; batch {args.batch_sentences} sentences"
        f" (~{words_per_batch} words); {args.steps} timed steps each\n"
    )
    print(f"{'system':<42}{'words':>9}{'seconds':>10}{'words/s':>10}{'ratio':>8}")
    print(
        f"{'plain transformers loop (sentences, AdamW)':<42}{plain_words:>9}{plain_s:>10.1f}"
        f"{plain_wps:>10.0f}{1.0:>8.2f}"
    )
    print(
        f"{'bert_ner under spacy train (documents)':<42}{ours_words:>9}{ours_s:>10.1f}"
        f"{ours_wps:>10.0f}{ours_wps / plain_wps:>8.2f}"
    )


if __name__ == "__main__":
    main()
