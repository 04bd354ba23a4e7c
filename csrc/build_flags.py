"""The C flags of fastlstm's build, in one place.

setup.py builds the extension with them and csrc/tests/build.sh the
standalone GEMM test (``python3 csrc/build_flags.py base|openmp|isas|isa NAME``
prints them for the shell).  The ISA variants are the list in
csrc/common/isa.h; ISA_FLAGS gives each its compiler flags (gcc/clang).
Standard library only: build.sh needs nothing but python3 and gcc.

Environment knobs (see README): FASTLSTM_DEBUG=1 (-O0 -g), FASTLSTM_NATIVE=1
(-march=native, local builds only, never wheels).
"""
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

# Baseline of the target everywhere (the wheel runs on any x86-64); the ISA
# flags only on a variant's own sources, chosen at import by a CPU check.
BASE = ["-std=c99", "-O3", "-fno-trapping-math", "-fno-math-errno",
        "-fvisibility=hidden", "-Wall", "-Wno-unused-function"]
MSVC_BASE = ["/O2", "/fp:precise"]
OPENMP = ["-fopenmp"]
MSVC_OPENMP = ["/openmp"]

# -ffp-contract=fast: with -std=c99 GCC would not fuse a*b+c into an FMA in
# the gate loops and activation polynomials (about twice the instructions);
# results stay deterministic for a given variant.
ISA_FLAGS = {
    "generic": [],
    "avx2": ["-mavx2", "-mfma", "-ffp-contract=fast"],
    "avx512": ["-mavx512f", "-mavx512dq", "-mavx512vl", "-mfma", "-ffp-contract=fast"],
}


def env_flag(name):
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def base_flags(msvc=False):
    if msvc:
        return list(MSVC_BASE)
    flags = list(BASE)
    if env_flag("FASTLSTM_DEBUG"):
        flags = [f for f in flags if f != "-O3"] + ["-O0", "-g"]
    if env_flag("FASTLSTM_NATIVE"):
        flags.append("-march=native")
    return flags


def isas():
    """The ISA names of common/isa.h's FL_FOR_EACH_ISA, worst first."""
    with open(os.path.join(HERE, "common", "isa.h")) as fh:
        text = fh.read()
    body = re.search(r"#define FL_FOR_EACH_ISA\(X\)((?:[^\n]*\\\n)*[^\n]*)", text).group(1)
    names = re.findall(r"X\((\w+)\)", body)
    missing = [n for n in names if n not in ISA_FLAGS]
    if missing:
        raise SystemExit(f"csrc/build_flags.py: no ISA_FLAGS entry for {missing}")
    return names


def isa_sources(isa):
    """The sources of one ISA variant (relative to csrc/), compiled with
    -DFL_ISA=<isa> and ISA_FLAGS[isa]."""
    return [f"gemm/gemm_{isa}.c", "rnn/lstm_variant.c"]


if __name__ == "__main__":
    what = sys.argv[1:] or ["base"]
    if what[0] == "base":
        print(" ".join(base_flags()))
    elif what[0] == "openmp":
        print(" ".join(OPENMP))
    elif what[0] == "isas":
        print(" ".join(isas()))
    elif what[0] == "isa" and len(what) == 2:
        print(" ".join(ISA_FLAGS[what[1]]))
    else:
        raise SystemExit(__doc__)
