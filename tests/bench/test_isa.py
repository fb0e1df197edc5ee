"""tfseg.bench.isa: programs run under a CPUID profile see the smaller CPU (C probe, PyTorch's
dispatcher, tfseg.cpuinfo), other faults still reach the program's handler, bad input is refused.
The checks that run the shim need Linux x86-64 with CPUID faulting and a C compiler (skipped
elsewhere, with the reason)."""

import importlib.util
import os
import subprocess
import sys

import pytest

from tfseg.bench import isa
from tfseg.cpuinfo import CPUID_FEATURES, ISA_PROFILES

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
needs_shim = pytest.mark.skipif(isa.unavailable_reason() is not None,
                                reason=str(isa.unavailable_reason()))

# leaf 7 / 7.1 registers, leaf 1 asked with garbage in ECX (CPUID ignores ECX for leaf 1), and the
# APIC ID of the CPU that ran it
PROBE = r"""
#include <stdio.h>
static void cpuid(unsigned leaf, unsigned sub, unsigned r[4]) {
    __asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3])
                     : "a"(leaf), "c"(sub));
}
int main(void) {
    unsigned a[4], b[4], c[4], d[4];
    cpuid(7, 0, a); cpuid(7, 1, b); cpuid(1, 0, c); cpuid(1, 0x444d4163, d);
    printf("%x %x %x %x %x %x %x %x\n", a[1], a[2], a[3], b[0], b[3], c[2], d[2], c[1] >> 24);
    return 0;
}
"""


def _bits(profile):
    """{(leaf, sub, register): bits} that ``profile`` clears, from the feature table."""
    out = {}
    for name in ISA_PROFILES[profile][1]:
        leaf, sub, reg, bit = CPUID_FEATURES[name]
        out[(leaf, sub, reg)] = out.get((leaf, sub, reg), 0) | 1 << bit
    return out


def test_mask_spec_clears_the_profile_bits():
    spec = isa.mask_spec("avx2")
    fields = dict(item.split("=") for item in spec.split(","))
    ebx = int(fields["7.0.ebx"], 16)
    assert ebx & 1 << 16 and ebx & 1 << 31  # avx512f, avx512vl
    assert int(fields["7.0.ecx"], 16) & 1 << 11  # avx512_vnni
    assert int(fields["7.1.eax"], 16) & 1 << 5  # avx512_bf16
    assert int(fields["7.0.edx"], 16) & 1 << 25  # amx_int8
    # the avx512 profile keeps AVX-512 F/CD/BW/DQ/VL and drops VNNI / BF16 / AMX
    keep = isa.mask_spec("avx512")
    fields = dict(item.split("=") for item in keep.split(","))
    assert not int(fields["7.0.ebx"], 16) & (1 << 16 | 1 << 17 | 1 << 28 | 1 << 30 | 1 << 31)
    assert int(fields["7.0.ecx"], 16) & 1 << 11


def test_unknown_profile_and_missing_command_are_refused(capsys):
    with pytest.raises(isa.IsaError, match="'avx9'"):
        isa.mask_spec("avx9")
    assert isa.main(["--isa=avx9", "--", "true"]) == 2
    assert "unknown --isa profile 'avx9'" in capsys.readouterr().err
    if isa.unavailable_reason() is None:
        assert isa.main(["--isa=avx2"]) == 2
        assert "no command" in capsys.readouterr().err


def test_cpuinfo_leaves_out_the_hidden_flags_only_under_the_shim(monkeypatch):
    from tfseg import cpuinfo

    monkeypatch.setattr(cpuinfo, "_proc_cpuinfo", lambda: (
        "Some CPU", {"avx2", "avx512f", "avx512_vnni", "avx512_bf16"}))
    monkeypatch.setenv(cpuinfo.ISA_ENV, "avx2")
    monkeypatch.delenv("LD_PRELOAD", raising=False)
    assert cpuinfo.isa_profile() is None  # the variable alone masks nothing
    assert cpuinfo.cpu_int8_features() == ["avx512_vnni"]
    monkeypatch.setenv("LD_PRELOAD", "/x/cpuid_mask-0123.so")
    assert cpuinfo.isa_profile() == "avx2"
    assert cpuinfo.cpu_int8_features() == []
    assert cpuinfo.cpu_description() == "Some CPU (avx2; CPUID masked to the avx2 profile)"
    monkeypatch.setenv(cpuinfo.ISA_ENV, "avx512")
    assert cpuinfo.cpu_flags() == {"avx2", "avx512f"}
    monkeypatch.setenv(cpuinfo.ISA_ENV, "sse9")
    with pytest.raises(ValueError, match="'sse9'"):
        cpuinfo.cpu_flags()


@needs_shim
def test_a_program_under_a_profile_sees_the_smaller_cpu(tmp_path):
    source = tmp_path / "probe.c"
    source.write_text(PROBE)
    probe = str(tmp_path / "probe")
    subprocess.run(["cc", "-O1", "-o", probe, str(source)], check=True)
    def on(cpu, env=None):  # pinned by a Python that execs the probe (no preexec_fn: threads)
        pin = f"import os; os.sched_setaffinity(0, {{{cpu}}}); os.execv({probe!r}, [{probe!r}])"
        return [int(v, 16) for v in subprocess.check_output(
            [sys.executable, "-c", pin], env=env, text=True, timeout=60).split()]

    for cpu in sorted(os.sched_getaffinity(0))[:2]:
        real = on(cpu)
        for profile in ISA_PROFILES:
            seen = on(cpu, isa.environment(profile, cache_dir=str(tmp_path / "cache")))
            bits = _bits(profile)
            expected = [real[0] & ~bits.get((7, 0, "ebx"), 0),
                        real[1] & ~bits.get((7, 0, "ecx"), 0),
                        real[2] & ~bits.get((7, 0, "edx"), 0),
                        real[3] & ~bits.get((7, 1, "eax"), 0),
                        real[4] & ~bits.get((7, 1, "edx"), 0), real[5], real[5], real[7]]
            # leaf 1 whatever ECX holds, and the APIC ID of the CPU it ran on: the real answers
            assert seen == expected, (profile, cpu)


@needs_shim
def test_other_faults_reach_the_programs_handler_and_bad_masks_stop_the_process(tmp_path):
    env = isa.environment("avx2", cache_dir=str(tmp_path))
    crash = subprocess.run(
        [sys.executable, "-X", "faulthandler", "-c", "import ctypes; ctypes.string_at(0)"],
        env=env, capture_output=True, text=True, timeout=60)
    assert crash.returncode == -11
    assert "Segmentation fault" in crash.stderr  # Python's faulthandler ran
    # the runner reports a signal as a shell does
    assert isa.run("avx2", ["sh", "-c", "kill -SEGV $$"], cache_dir=str(tmp_path)) == 128 + 11
    assert isa.run("avx2", ["sh", "-c", "exit 7"], cache_dir=str(tmp_path)) == 7
    env[isa.MASK_ENV] = "7.0.ebx=zz"
    bad = subprocess.run(["true"], env=env, capture_output=True, text=True)
    assert bad.returncode == 3 and "malformed TFSEG_CPUID_MASK" in bad.stderr


@needs_shim
def test_libraries_and_tfseg_see_the_profile(tmp_path):
    pytest.importorskip("torch")
    spec = importlib.util.spec_from_file_location("cpuinfo", os.path.join(REPO, "tfseg",
                                                                          "cpuinfo.py"))
    assert spec is not None
    code = ("import importlib.util, torch\n"
            f"spec = importlib.util.spec_from_file_location('c', {spec.origin!r})\n"
            "c = importlib.util.module_from_spec(spec); spec.loader.exec_module(c)\n"
            "print(torch.backends.cpu.get_cpu_capability(), c.cpu_int8_features(), "
            "c.cpu_description())")
    out = subprocess.check_output([sys.executable, "-c", code], text=True, timeout=120,
                                  env=isa.environment("avx2", cache_dir=str(tmp_path)))
    assert out.startswith("AVX2 [] ")
    assert out.rstrip().endswith("; CPUID masked to the avx2 profile)")
