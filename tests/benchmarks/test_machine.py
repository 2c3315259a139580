from benchmarks.machine import X86_FLAGS, describe
from spacy_bert_ner.models.runtime import cpu_info

X86 = """processor\t: 0
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu sse2 avx2 fma avx512f avx512_vnni amx_int8 amx_bf16
processor\t: 1
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu sse2 avx2
"""
ARM = """processor\t: 0
Features\t: fp asimd asimddp i8mm bf16
CPU implementer\t: 0x41
Model\t\t: Raspberry Pi 5
"""


def test_cpu_info_reads_the_first_core_of_x86_and_arm():
    name, flags = cpu_info(X86)
    assert name == "Intel(R) Xeon(R) Platinum 8480+"
    assert {"avx512_vnni", "amx_int8"} <= flags and "fpu" in flags
    assert cpu_info(ARM) == ("Raspberry Pi 5", {"fp", "asimd", "asimddp", "i8mm", "bf16"})
    assert cpu_info("") == ("", set())


def test_cpu_info_names_the_family_and_model_of_x86():
    zen4 = "cpu family\t: 25\nmodel\t\t: 17\nmodel name\t: AMD EPYC\nflags\t\t: avx512_bf16\n"
    assert cpu_info(zen4) == ("AMD EPYC (family 25 model 17)", {"avx512_bf16"})


def test_describe_names_the_flags_present_and_absent_cores_and_torch_threads():
    import torch

    line = describe()
    assert line.startswith("Machine: ") and "cores" in line
    assert f"torch {torch.__version__}, {torch.get_num_threads()} thread" in line
    assert any(flag in line for flag in X86_FLAGS) or "instruction sets unknown" in line
    assert describe("1 per worker").endswith("1 per worker")
