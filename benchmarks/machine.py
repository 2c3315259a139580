"""The machine a benchmark ran on, printed at the top of every benchmark's output.

CPU figures mean little without the CPU: int8 kernels need VNNI or AMX to pay off, bf16 needs
AVX512-BF16 or AMX, and two cores shared with a load generator are not sixteen idle ones.
"""

import os
import platform

from spacy_bert_ner.models.runtime import this_cpu

#: Instruction sets that change which torch/onnxruntime kernels run (fp32, int8, bf16).
X86_FLAGS = (
    "avx2",
    "fma",
    "avx512f",
    "avx512bw",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "amx_bf16",
    "amx_int8",
)
#: Their counterparts on Arm (/proc/cpuinfo "Features"): dot product, int8 matmul, bf16, SVE.
ARM_FLAGS = ("asimd", "asimddp", "i8mm", "bf16", "sve", "sve2")


def describe(threads: str | None = None) -> str:
    """One line: CPU model, the relevant instruction sets present and absent, cores, torch.

    `threads` says how the benchmark sets torch threads where this process's own count is not
    what the timed work runs with (servers, worker processes); by default, this process's.
    """
    import torch

    name, flags = this_cpu()
    if not flags:
        isa = "instruction sets unknown"
    else:
        relevant = X86_FLAGS if platform.machine() in ("x86_64", "AMD64", "i686") else ARM_FLAGS
        present = " ".join(f for f in relevant if f in flags)
        absent = " ".join(f for f in relevant if f not in flags)
        isa = ", ".join(filter(None, [present, absent and f"lacks {absent}"]))
    cores = os.cpu_count() or 1
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    cores_text = f"{cores} cores" + (f", {usable} usable" if usable != cores else "")
    if threads is None:
        n = torch.get_num_threads()
        threads = f"{n} thread{'s' * (n != 1)}"
    return f"Machine: {name}; {cores_text}; {isa}; torch {torch.__version__}, {threads}"
