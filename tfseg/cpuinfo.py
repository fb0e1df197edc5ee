"""What this CPU is and which low-precision units it has (``/proc/cpuinfo`` on Linux): the line
every speed figure is printed next to, and the test that decides int8 settings
(``export_lib.onnx_int8``). Imports nothing of tfseg.

Under ``tfseg.bench.isa`` (CPUID masked to a smaller instruction set, e.g. ``avx2``), the flags that
profile hides are left out here too, and the description says which profile is in force: the
libraries see the smaller CPU, so the figures and the int8 settings must describe that one.
"""

import os

# x86 VNNI / AMX and Arm dot product / i8mm: the instructions that make int8 convolutions pay
INT8_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "i8mm")
SHOWN_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8", "amx_bf16",
               "asimddp", "i8mm")  # fmt: skip


# x86 extensions a CPUID mask can hide: /proc/cpuinfo name -> (leaf, sub-leaf, register, bit)
# (Intel SDM vol. 2A, CPUID leaf 07H; AMD APM vol. 3, appendix E)
CPUID_FEATURES = {
    "avx512f": (0x7, 0, "ebx", 16),
    "avx512dq": (0x7, 0, "ebx", 17),
    "avx512ifma": (0x7, 0, "ebx", 21),
    "avx512pf": (0x7, 0, "ebx", 26),
    "avx512er": (0x7, 0, "ebx", 27),
    "avx512cd": (0x7, 0, "ebx", 28),
    "avx512bw": (0x7, 0, "ebx", 30),
    "avx512vl": (0x7, 0, "ebx", 31),
    "avx512vbmi": (0x7, 0, "ecx", 1),
    "avx512_vbmi2": (0x7, 0, "ecx", 6),
    "gfni": (0x7, 0, "ecx", 8),
    "avx512_vnni": (0x7, 0, "ecx", 11),
    "avx512_bitalg": (0x7, 0, "ecx", 12),
    "avx512_vpopcntdq": (0x7, 0, "ecx", 14),
    "avx512_4vnniw": (0x7, 0, "edx", 2),
    "avx512_4fmaps": (0x7, 0, "edx", 3),
    "avx512_vp2intersect": (0x7, 0, "edx", 8),
    "amx_bf16": (0x7, 0, "edx", 22),
    "avx512_fp16": (0x7, 0, "edx", 23),
    "amx_tile": (0x7, 0, "edx", 24),
    "amx_int8": (0x7, 0, "edx", 25),
    "avx_vnni": (0x7, 1, "eax", 4),
    "avx512_bf16": (0x7, 1, "eax", 5),
    "amx_fp16": (0x7, 1, "eax", 21),
    "avx_ifma": (0x7, 1, "eax", 23),
    "avx_vnni_int8": (0x7, 1, "edx", 4),
    "avx_ne_convert": (0x7, 1, "edx", 5),
    "avx_vnni_int16": (0x7, 1, "edx", 10),
    "avx10": (0x7, 1, "edx", 19),
}
_INT8_AND_BF16 = ("avx512_vnni", "avx512_bf16", "avx512_fp16", "avx_vnni", "avx_ifma",
                  "avx_vnni_int8", "avx_ne_convert", "avx_vnni_int16", "avx10", "amx_bf16",
                  "amx_tile", "amx_int8", "amx_fp16", "avx512_4vnniw", "avx512_4fmaps")  # fmt: skip
# name -> (what it stands for, the flags it hides)
ISA_PROFILES = {
    "avx2": (
        "AVX2 + FMA, no AVX-512, VNNI, BF16 or AMX (AMD Zen 2/3, Intel Haswell to Comet Lake)",
        tuple(CPUID_FEATURES),
    ),
    "avx512": (
        "AVX-512 F/CD/BW/DQ/VL without VNNI, BF16 or AMX (Intel Skylake-SP / Skylake-X)",
        ("avx512ifma", "avx512pf", "avx512er", "avx512vbmi", "avx512_vbmi2", "gfni",
         "avx512_bitalg", "avx512_vpopcntdq", "avx512_vp2intersect") + _INT8_AND_BF16,
    ),
}  # fmt: skip
ISA_ENV = "TFSEG_ISA"  # the profile in force, set by tfseg.bench.isa with the LD_PRELOAD shim


def isa_profile():
    """The name of the CPUID profile this process runs under (``tfseg.bench.isa``), or None."""
    name = os.environ.get(ISA_ENV) or None
    if name is None or "cpuid_mask" not in os.environ.get("LD_PRELOAD", ""):
        return None
    if name not in ISA_PROFILES:
        raise ValueError(f"{ISA_ENV}={name!r} is not a CPUID profile; "
                         f"known: {sorted(ISA_PROFILES)}")
    return name


def _proc_cpuinfo():
    """``(model name, set of flags)``; ``("unknown CPU", set())`` without /proc/cpuinfo."""
    model, found = "unknown CPU", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key = line.split(":", 1)[0].strip()
                if key == "model name" and model == "unknown CPU":
                    model = line.split(":", 1)[1].strip()
                if key in ("flags", "Features") and not found:
                    found = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return model, found


def _read():
    """``(model name, set of flags)`` as the libraries see them: without the flags the CPUID
    profile in force hides."""
    model, found = _proc_cpuinfo()
    profile = isa_profile()
    if profile is not None:
        found = found - set(ISA_PROFILES[profile][1])
    return model, found


def cpu_flags():
    """Every flag of the first CPU in /proc/cpuinfo, as a set (empty where there is none)."""
    return _read()[1]


def cpu_int8_features():
    """The CPU flags that give int8 dot products found here (a list; empty where there are none)."""
    present = cpu_flags()
    return [w for w in INT8_FLAGS if w in present]


def cpu_description():
    """The CPU model and its SIMD / int8 / bf16 flags, e.g. ``"AMD EPYC 7B13 (avx2)"``: the line
    the experiment tables put above their figures."""
    model, present = _read()
    shown = ", ".join(f for f in SHOWN_FLAGS if f in present) or "no AVX2"
    profile = isa_profile()
    masked = f"; CPUID masked to the {profile} profile" if profile else ""
    return f"{model} ({shown}{masked})"
