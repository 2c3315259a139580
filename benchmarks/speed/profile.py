"""`--profile`: where bert_ner fp32 spends its time, and how much of it is the model's own
forward pass (everything outside it is the component's overhead)."""

import argparse
import time
from pathlib import Path
from typing import Any

from ..inputs import Sentences
from .systems import bert_ner_nlp, pipe_docs


def profile_fp32(args: argparse.Namespace, model_dir: Path, sents: Sentences) -> None:
    """pyinstrument over bert_ner fp32 (after a warm-up), plus exact time inside model.forward."""
    import torch
    from pyinstrument import Profiler

    nlp = bert_ner_nlp(model_dir, args.batch_size)
    pipe_docs(nlp, sents.head(args.warmup), args.profile_pipe_batch)
    pipe: Any = nlp.get_pipe("bert_ner")
    hf_model = pipe.hf_model
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
