"""Build of fastlstm's one extension module, fastlstm._native.kernels.

Only what pyproject.toml cannot say: the source list, per-compiler flags, the
OpenMP probe and the per-ISA variant files, which are compiled with their own
ISA flags (everything else uses the baseline flags of the target, so the
wheel runs on any x86-64; the variant is chosen at import by a CPU check).

Build knobs (environment variables):
  FASTLSTM_NO_OPENMP=1   build without OpenMP (single-threaded kernels)
  FASTLSTM_NATIVE=1      add -march=native (local builds only, never wheels)
  FASTLSTM_DEBUG=1       -O0 -g, assertions on
"""
import os
import platform
import shutil
import sys
import tempfile

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

CSRC = "csrc"
CSRC_DIRS = [CSRC] + [os.path.join(CSRC, d) for d in ("common", "gemm", "rnn")]
COMMON_SOURCES = [
    "common/threads.c", "gemm/gemm_generic.c", "gemm/gemm_dispatch.c",
    "rnn/lstm_rows.c", "rnn/lstm_generic.c", "rnn/lstm_dispatch.c",
]
# file -> ISA flags (gcc/clang); compiled only on x86-64.  -ffp-contract=fast:
# with -std=c99 GCC would not fuse a*b+c into an FMA in the gate loops and
# activation polynomials (about twice the instructions); results stay
# deterministic for a given variant.
ISA_SOURCES = {
    "avx2": (["gemm/gemm_avx2.c", "rnn/lstm_avx2.c"], ["-mavx2", "-mfma", "-ffp-contract=fast"]),
    "avx512": (["gemm/gemm_avx512.c", "rnn/lstm_avx512.c"],
               ["-mavx512f", "-mavx512dq", "-mavx512vl", "-mfma", "-ffp-contract=fast"]),
}


def env_flag(name):
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def is_x86_64():
    return platform.machine().lower() in ("x86_64", "amd64")


class BuildExt(build_ext):
    def _try_compile(self, flags, code="int main(void){return 0;}\n"):
        tmp = tempfile.mkdtemp()
        try:
            src = os.path.join(tmp, "probe.c")
            with open(src, "w") as fh:
                fh.write(code)
            objs = self.compiler.compile([src], output_dir=tmp, extra_postargs=flags)
            self.compiler.link_executable(objs, "probe", output_dir=tmp,
                                          extra_postargs=flags)
            return True
        except Exception:
            return False
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def build_extensions(self):
        ctype = self.compiler.compiler_type
        if ctype == "msvc":
            base = ["/O2", "/fp:precise"]
            omp = ["/openmp"]
        else:
            base = ["-std=c99", "-O3", "-fno-trapping-math", "-fno-math-errno",
                    "-fvisibility=hidden", "-Wall", "-Wno-unused-function"]
            if env_flag("FASTLSTM_DEBUG"):
                base = [f for f in base if f != "-O3"] + ["-O0", "-g"]
            if env_flag("FASTLSTM_NATIVE"):
                base.append("-march=native")
            omp = ["-fopenmp"]
        use_omp = not env_flag("FASTLSTM_NO_OPENMP") and self._try_compile(
            omp, "#include <omp.h>\nint main(void){return omp_get_max_threads() > 0 ? 0 : 1;}\n")
        if use_omp:
            compile_extra, link_extra = base + omp, omp
        else:
            simd = ["-fopenmp-simd"] if ctype != "msvc" and self._try_compile(["-fopenmp-simd"]) else []
            compile_extra, link_extra = base + simd, []
        print(f"fastlstm: OpenMP {'on' if use_omp else 'off'}", file=sys.stderr)

        for ext in self.extensions:
            macros = []
            if is_x86_64() and ctype != "msvc":
                for isa, (files, flags) in ISA_SOURCES.items():
                    if not self._try_compile(flags):
                        print(f"fastlstm: compiler lacks {isa}; variant skipped", file=sys.stderr)
                        continue
                    objs = self.compiler.compile(
                        [os.path.join(CSRC, f) for f in files],
                        output_dir=self.build_temp,
                        include_dirs=CSRC_DIRS,
                        extra_postargs=compile_extra + flags,
                        depends=headers(),
                    )
                    ext.extra_objects = list(ext.extra_objects or []) + objs
                    macros.append((f"FL_HAVE_{isa.upper()}", "1"))
            ext.define_macros = list(ext.define_macros or []) + macros
            ext.extra_compile_args = compile_extra
            ext.extra_link_args = link_extra
        super().build_extensions()


def headers():
    return [os.path.join(d, f) for d in CSRC_DIRS for f in os.listdir(d) if f.endswith(".h")]


def extensions():
    from Cython.Build import cythonize

    ext = Extension(
        "fastlstm._native.kernels",
        sources=["fastlstm/_native/kernels.pyx"] + [os.path.join(CSRC, f) for f in COMMON_SOURCES],
        include_dirs=CSRC_DIRS,
        depends=headers(),
    )
    return cythonize([ext], compiler_directives={"language_level": "3"})


setup(ext_modules=extensions(), cmdclass={"build_ext": BuildExt})
