"""The C flags of fastlstm's build, in one place.

setup.py builds the extension with them and csrc/tests/build.sh the
standalone GEMM test (``python3 csrc/build_flags.py
cc|python|base|openmp|no-openmp|isas|isa NAME`` prints them for the shell).
The ISA variants are the list in csrc/common/isa.h; ISA_FLAGS gives each its
compiler flags (gcc/clang).

Every compile of setup.py runs the Python build's compiler command (cc and
python_flags(): sysconfig's CC, CFLAGS and CCSHARED with the environment's
overrides, as setuptools applies them), then ours.  build.sh asks this file
for all of it, so the test is compiled exactly as the extension is by the
same Python.  Standard library only, but for setuptools when it is there
(without it: sysconfig's values as they are).

Environment knobs (see README): FASTLSTM_DEBUG=1 (-O0 -g), FASTLSTM_NATIVE=1
(-march=native, local builds only, never wheels), FASTLSTM_SANITIZE=
address,undefined (sanitizer build for .ci/sanitize; compile and link).
"""
import os
import re
import shlex
import sys
import sysconfig

HERE = os.path.dirname(os.path.abspath(__file__))

# Baseline of the target everywhere (the wheel runs on any x86-64); the ISA
# flags only on a variant's own sources, chosen at import by a CPU check.
BASE = ["-std=c99", "-O3", "-fno-trapping-math", "-fno-math-errno",
        "-fvisibility=hidden", "-Wall", "-Wno-unused-function"]
MSVC_BASE = ["/O2", "/fp:precise"]
OPENMP = ["-fopenmp"]
MSVC_OPENMP = ["/openmp"]
# without OpenMP (FASTLSTM_NO_OPENMP=1, or no OpenMP runtime): the simd
# pragmas of the gate loops still vectorize where the compiler takes this
OPENMP_SIMD = ["-fopenmp-simd"]

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


def _python_compiler():
    """The compile command setuptools builds C with (a list of words: the
    compiler, then its flags), for this Python and environment."""
    try:
        # setuptools first: its distutils is the one setup.py builds with
        import setuptools  # noqa: F401, I001
        from distutils.ccompiler import new_compiler
        from distutils.sysconfig import customize_compiler
    except ImportError:  # sysconfig's flags as they are
        words = shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")
        for var in ("CFLAGS", "CCSHARED"):
            words += shlex.split(sysconfig.get_config_var(var) or "")
        return words
    compiler = new_compiler()
    customize_compiler(compiler)
    return list(compiler.compiler_so)


def _cc_words():
    return len(shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"))


def cc():
    """The C compiler setup.py compiles with."""
    return _python_compiler()[:_cc_words()]


def python_flags():
    """The flags setup.py's compiles start with, before base_flags() (for
    CPython builds on Linux, e.g. -DNDEBUG -g -fwrapv -O3 -Wall -fPIC)."""
    return _python_compiler()[_cc_words():]


def base_flags(msvc=False):
    if msvc:
        return list(MSVC_BASE)
    flags = list(BASE)
    if env_flag("FASTLSTM_DEBUG"):
        flags = [f for f in flags if f != "-O3"] + ["-O0", "-g"]
    if env_flag("FASTLSTM_NATIVE"):
        flags.append("-march=native")
    return flags + sanitize_flags()


def sanitize_flags():
    """FASTLSTM_SANITIZE=address,undefined (any of gcc/clang's -fsanitize
    names): instrumented code that stops at the first report, with frames
    kept for readable stacks.  Given to the compile and to the link."""
    names = os.environ.get("FASTLSTM_SANITIZE", "").strip()
    if not names:
        return []
    if not re.fullmatch(r"[a-z-]+(,[a-z-]+)*", names):
        raise SystemExit(f"FASTLSTM_SANITIZE={names!r}: expected names such as address,undefined")
    return [f"-fsanitize={names}", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer", "-g"]


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
    return [f"gemm/gemm_{isa}.c", "rnn/lstm_variant.c", "common/fma_peak.c"]


if __name__ == "__main__":
    what = sys.argv[1:] or ["base"]
    if what[0] == "cc":
        print(" ".join(cc()))
    elif what[0] == "python":
        print(" ".join(python_flags()))
    elif what[0] == "base":
        print(" ".join(base_flags()))
    elif what[0] == "openmp":
        print(" ".join(OPENMP))
    elif what[0] == "no-openmp":
        print(" ".join(OPENMP_SIMD))
    elif what[0] == "isas":
        print(" ".join(isas()))
    elif what[0] == "isa" and len(what) == 2:
        print(" ".join(ISA_FLAGS[what[1]]))
    else:
        raise SystemExit(__doc__)
