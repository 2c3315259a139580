"""Inference-time concerns of the torch runtime: precision, int8 weights, heap trimming,
forked workers.

None of these change what the model computes beyond int8's and bf16's rounding; they decide
how fast it runs and how much memory it holds. Nothing here acts at import: a library loaded
into a web server or a Ray actor must leave the host's process-wide settings alone until a
`bert_ner` component is actually created.
"""

import contextlib
import copy
import ctypes
import functools
import logging
import os
import platform
import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import cast

import torch
from torch.ao.quantization import per_channel_dynamic_qconfig
from transformers import PreTrainedModel

from .settings import Backend, Precision

logger = logging.getLogger(__name__)

#: Inference returns freed heap pages to the OS after this many chunks (`release_freed_heap`).
TRIM_EVERY_CHUNKS = 8


def quantize_int8(hf_model: PreTrainedModel) -> PreTrainedModel:
    """A copy with int8 weights (per output channel) in every Linear but the first layer's.

    Per-tensor scales, or quantizing the first layer too, cost MiniLM 0.5-2 F1 on CoNLL-2003
    dev; this choice costs 0.3 there at 2.4x the fp32 words/s on 2 CPU cores.
    """
    first_layer = re.compile(r"\.layer\.0\.")
    targets = {
        name: per_channel_dynamic_qconfig
        for name, module in hf_model.named_modules()
        if isinstance(module, torch.nn.Linear) and not first_layer.search(name)
    }
    with warnings.catch_warnings():  # torch marks its eager quantization API deprecated
        warnings.simplefilter("ignore", UserWarning)
        return torch.ao.quantization.quantize_dynamic(
            copy.deepcopy(hf_model).eval(), targets, dtype=torch.qint8
        )


def release_freed_heap() -> None:
    """Give the pages of freed activations back to the OS (glibc only; a no-op elsewhere).

    glibc raises its mmap threshold each time a large block is freed, so after the first chunk
    the next chunks' activations come from the heap, where freed blocks fragment and RSS creeps
    up chunk after chunk: measured on a 100,000-word doc with MiniLM, peak RSS 1.9x that of a
    1,000-word doc. `malloc_trim` every few chunks (`TRIM_EVERY_CHUNKS`) bounds that creep; after
    every chunk it cost 2.5% of the time on sentence batches. Inference only: in training the
    activations are kept for the backward pass, so there is nothing freed to give back.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    with contextlib.suppress(OSError, AttributeError):
        return cast(Callable[[int], int], ctypes.CDLL("libc.so.6").malloc_trim)
    return None


@functools.cache
def limit_threads_in_forked_children() -> None:
    """Make processes forked from this one start with a single torch thread (once per process).

    `nlp.pipe(n_process=N)` forks workers after torch has started its thread pool; OpenMP
    pools do not survive a fork and the workers hang. One thread per worker is also the right
    split of the cores among N processes. Called when the first `bert_ner` is created, not
    at import, so merely importing the package leaves a host's fork behaviour alone.
    """
    os.register_at_fork(after_in_child=lambda: torch.set_num_threads(1))


def cpu_bf16_kind() -> str | None:
    """The CPU's bfloat16 matrix support: "amx" (AMX tiles), "avx512_bf16" (vector
    instructions only) or None. The one place that asks the CPU, so tests can pretend. torch
    names these checks private, and older releases lack them: a missing one reads as no."""
    for kind, check in (
        ("amx", "_is_amx_tile_supported"),
        ("avx512_bf16", "_is_avx512_bf16_supported"),
    ):
        if getattr(torch.cpu, check, lambda: False)():
            return kind
    return None


def cpu_name() -> str:
    """The CPU's model name ("AMD EPYC"), for tables that report speed: a figure means little
    without the CPU it was measured on."""
    return this_cpu()[0]


def this_cpu() -> tuple[str, set[str]]:
    """This machine's CPU name and feature flags, from /proc/cpuinfo where there is one; the
    name falls back to what `platform` knows, the flags to none."""
    name, flags = "", set[str]()
    with contextlib.suppress(OSError):
        name, flags = cpu_info(Path("/proc/cpuinfo").read_text())
    return name or platform.processor() or platform.machine() or "unknown CPU", flags


def cpu_info(text: str) -> tuple[str, set[str]]:
    """The model name and the feature flags in the text of /proc/cpuinfo (x86 or Arm). An x86
    name gets its family and model numbers, which tell CPU generations apart where the name
    does not (a cloud's "AMD EPYC" is Zen 3 at family 25 model 1, Zen 4 at model 17)."""
    name, flags, numbers = "", set[str](), dict[str, str]()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key in ("model name", "Model") and not name:
            name = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = set(value.split())
        elif key in ("cpu family", "model"):
            numbers.setdefault(key, value.strip())
    if name and len(numbers) == 2:
        name += f" (family {numbers['cpu family']} model {numbers['model']})"
    return name, flags


def choose_precision(
    precision: Precision, *, backend: Backend, device_type: str, mixed_precision: bool
) -> str:
    """The arithmetic a loaded model runs in: "fp32", "bf16", "fp16" (GPU autocast) or "int8".

    `auto` takes bf16 on every CPU with bf16 instructions, AMX or avx512_bf16 alone: bf16
    autocast ran MiniLM 2.55x faster than fp32 at equal F1 on a 2-core Intel Xeon with AMX,
    and 2.1-2.5x on AMD Zen 5 (avx512_bf16, no AMX) with the same test F1 (both measured
    outside this project's machines; Zen 4 in docs/cpu-inference.md). Without either torch
    emulates bf16 (0.27x fp32 on an AVX2 AMD EPYC), so there it stays fp32.
    int8 is never chosen for you: it costs F1. `fp32`, the default, is what the settings
    before this one gave: on GPU, fp16 autocast where `mixed_precision` asks for it, as
    under `auto`. A `bf16` that cannot run here says so once and runs fp32.
    """
    if precision == Precision.INT8:
        return "int8"
    if backend != Backend.TORCH:
        if precision == Precision.BF16:
            logger.warning(
                "bert_ner: backend '%s' runs fp32 or int8; bf16 falls back to fp32", backend
            )
        return "fp32"
    if device_type == "cuda":
        if precision == Precision.BF16:
            return "bf16"
        return "fp16" if mixed_precision else "fp32"
    kind = cpu_bf16_kind()
    if precision == Precision.BF16 and kind is None:
        logger.warning(
            "bert_ner: this CPU has neither AMX nor avx512_bf16, where bf16 runs slower than "
            "fp32; precision 'bf16' falls back to fp32"
        )
        return "fp32"
    if precision == Precision.AUTO:
        return "fp32" if kind is None else "bf16"
    return str(precision)
