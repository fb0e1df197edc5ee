"""Run a program as on an x86 CPU with fewer instruction-set extensions: measure, on a machine with
AVX-512 VNNI, what a user with an AVX2-only CPU (AMD Zen 3, Intel Haswell..Comet Lake) gets.

    python -m tfseg.bench.isa --isa=avx2 -- python -m tfseg.benchmark --runtimes=auto ...

LiteRT's XNNPACK, onnxruntime's MLAS, oneDNN (TensorFlow, PyTorch) and PyTorch's dispatcher choose
their kernels from the CPUID instruction. ``cpuid_mask.c``, compiled here with the system C
compiler into a cache folder and loaded with ``LD_PRELOAD``, answers CPUID with the profile's
feature bits cleared (Linux CPUID faulting: CPU flag ``cpuid_fault``, kernel >= 4.12), so every
library in the process and its children takes its AVX2 path; ``tfseg.cpuinfo`` reports the smaller
flag set and names the profile next to every figure. Profiles: ``tfseg.cpuinfo.ISA_PROFILES``.

What it is not: the instructions run on this machine's cores, with their caches, clock and
execution units (a Zen 4 runs AVX2 code somewhat faster than a Zen 3); a library that reads
``/proc/cpuinfo`` or ``getauxval`` instead of CPUID is not fooled; glibc picks its string functions
before the mask is in force. Ratios between runtimes on one masked machine describe the
instruction set; absolute times describe this machine.

Refused with a clear message and exit status 2: a non-x86-64 or non-Linux machine, a CPU / kernel
without CPUID faulting, no C compiler, an unknown profile, no command.
"""

import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile

from tfseg.cpuinfo import CPUID_FEATURES, ISA_ENV, ISA_PROFILES, cpu_flags

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cpuid_mask.c")
MASK_ENV = "TFSEG_CPUID_MASK"  # read by cpuid_mask.c: LEAF.SUB.REG=BITS,...


class IsaError(RuntimeError):
    """The mask cannot be applied here (the message says why)."""


def mask_spec(profile):
    """``TFSEG_CPUID_MASK`` for a profile: the bits to clear per leaf / sub-leaf / register, e.g.
    ``"7.0.ebx=0xdc230000,..."``."""
    if profile not in ISA_PROFILES:
        raise IsaError(f"unknown --isa profile {profile!r}; known: {sorted(ISA_PROFILES)}")
    bits = {}
    for name in ISA_PROFILES[profile][1]:
        leaf, sub, reg, bit = CPUID_FEATURES[name]
        bits[(leaf, sub, reg)] = bits.get((leaf, sub, reg), 0) | (1 << bit)
    return ",".join(f"{leaf:x}.{sub}.{reg}={v:#010x}"
                    for (leaf, sub, reg), v in sorted(bits.items()))


def unavailable_reason():
    """Why the mask cannot work on this machine, or None when it can."""
    if sys.platform != "linux" or platform.machine() not in ("x86_64", "AMD64"):
        return f"CPUID masking needs Linux on x86-64 (this is {sys.platform} {platform.machine()})"
    if "cpuid_fault" not in cpu_flags():
        return ("this CPU / kernel has no CPUID faulting (flag cpuid_fault missing from "
                "/proc/cpuinfo), which the mask needs")  # fmt: skip
    if _compiler() is None:
        return "no C compiler (cc, gcc or clang) to build the CPUID shim"
    return None


def _compiler():
    return next((shutil.which(c) for c in ("cc", "gcc", "clang") if shutil.which(c)), None)


def shim_path(cache_dir=None):
    """The compiled shim (built once per source version; written atomically)."""
    reason = unavailable_reason()
    if reason:
        raise IsaError(reason)
    with open(SOURCE, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:16]
    cache_dir = cache_dir or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "tfseg")
    os.makedirs(cache_dir, exist_ok=True)
    target = os.path.join(cache_dir, f"cpuid_mask-{digest}.so")
    if os.path.exists(target):
        return target
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=cache_dir)
    os.close(fd)
    try:
        run = subprocess.run([_compiler(), "-O2", "-shared", "-fPIC", "-o", tmp, SOURCE, "-ldl"],
                             capture_output=True, text=True)  # fmt: skip
        if run.returncode != 0:
            raise IsaError(f"compiling {SOURCE} failed:\n{run.stderr.strip()}")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return target


def environment(profile, env=None, cache_dir=None):
    """A copy of ``env`` (default: this process's) that runs programs under the profile."""
    spec = mask_spec(profile)
    env = dict(os.environ if env is None else env)
    preload = [p for p in env.get("LD_PRELOAD", "").split(":") if p and "cpuid_mask" not in p]
    env["LD_PRELOAD"] = ":".join([shim_path(cache_dir)] + preload)
    env[MASK_ENV] = spec
    env[ISA_ENV] = profile
    return env


def run(profile, command, env=None, cache_dir=None):
    """Run ``command`` (a list) under the profile; returns its exit status (128 + N where a
    signal N ended it, as a shell reports it)."""
    if not command:
        raise IsaError("no command to run (put it after --)")
    status = subprocess.call(command, env=environment(profile, env, cache_dir))
    return 128 - status if status < 0 else status


def main(argv=None):
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m tfseg.bench.isa",
        description="Run a command as on a CPU with fewer x86 extensions (CPUID masked).",
        epilog="profiles: " + "; ".join(f"{k}: {v[0]}" for k, v in ISA_PROFILES.items()))
    parser.add_argument("--isa", required=True, help="profile: " + ", ".join(ISA_PROFILES))
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    try:
        return run(args.isa, command)
    except IsaError as e:
        print(f"tfseg.bench.isa: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
