"""What this CPU is and which low-precision units it has (``/proc/cpuinfo`` on Linux): the line
every speed figure is printed next to, and the test that decides int8 settings
(``export_lib.onnx_int8``). Imports nothing of tfseg."""

# x86 VNNI / AMX and Arm dot product / i8mm: the instructions that make int8 convolutions pay
INT8_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "i8mm")
SHOWN_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8", "amx_bf16",
               "asimddp", "i8mm")  # fmt: skip


def _read():
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
    return f"{model} ({', '.join(f for f in SHOWN_FLAGS if f in present) or 'no AVX2'})"
