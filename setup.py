"""Build of fastlstm's one extension module, fastlstm._native.kernels.

Only what pyproject.toml cannot say: the source list, the OpenMP probe and
the per-ISA variants, each compiled with its own ISA flags (everything else
uses the baseline flags of the target, so the wheel runs on any x86-64; the
variant is chosen at import by a CPU check).  The flags themselves live in
csrc/build_flags.py, which csrc/tests/build.sh reads too (with the Python
build's own compiler flags, which setuptools puts before ours).

Build knobs (environment variables):
  FASTLSTM_NO_OPENMP=1   build without OpenMP (single-threaded kernels)
  FASTLSTM_NATIVE=1      add -march=native (local builds only, never wheels)
  FASTLSTM_DEBUG=1       -O0 -g, assertions on
  FASTLSTM_SANITIZE=address,undefined   AddressSanitizer + UBSan (.ci/sanitize)
"""
import os
import platform
import shutil
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

CSRC = "csrc"
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), CSRC))
import build_flags  # noqa: E402  (csrc/build_flags.py: the flags, shared with build.sh)

CSRC_DIRS = [CSRC] + [os.path.join(CSRC, d) for d in ("common", "gemm", "rnn")]
# compiled with the baseline flags; each ISA variant's sources
# (build_flags.isa_sources) are added per ISA with its own flags
COMMON_SOURCES = [
    "common/threads.c",
    "common/fingerprint.c",
    "common/cpuinfo.c",
    "common/plans.c",
    "gemm/gemm_dispatch.c",
    "rnn/lstm_rows.c",
    "rnn/lstm_dispatch.c",
]


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
        msvc = self.compiler.compiler_type == "msvc"
        base = build_flags.base_flags(msvc)
        omp = build_flags.MSVC_OPENMP if msvc else build_flags.OPENMP
        use_omp = not build_flags.env_flag("FASTLSTM_NO_OPENMP") and self._try_compile(
            omp, "#include <omp.h>\nint main(void){return omp_get_max_threads() > 0 ? 0 : 1;}\n")
        if use_omp:
            compile_extra, link_extra = base + omp, omp
        else:
            simd = build_flags.OPENMP_SIMD
            simd = simd if not msvc and self._try_compile(simd) else []
            compile_extra, link_extra = base + simd, []
        print(f"fastlstm: OpenMP {'on' if use_omp else 'off'}", file=sys.stderr)

        # the variants' files compile in threads (one gcc each, as many as
        # CPUs, the best ISA's first: the largest, minutes in a sanitizer
        # build) while the extension's own sources compile on this thread;
        # its link waits for them (build_extension)
        self._pending = {}
        depends = headers()
        with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
            for ext in self.extensions:
                # every variant is linked in; one compiled without its flags (not
                # x86-64, MSVC, or a compiler that lacks them) reports itself
                # absent and is never chosen
                for isa in reversed(build_flags.isas()):
                    flags = build_flags.ISA_FLAGS[isa]
                    if flags and not (is_x86_64() and not msvc and self._try_compile(flags)):
                        print(f"fastlstm: no {isa} flags; variant left out", file=sys.stderr)
                        flags = []
                    for src in build_flags.isa_sources(isa):
                        job = pool.submit(
                            self.compiler.compile,
                            [os.path.join(CSRC, src)],
                            output_dir=os.path.join(self.build_temp, isa),
                            macros=[("FL_ISA", isa)],
                            include_dirs=CSRC_DIRS,
                            extra_postargs=compile_extra + flags,
                            depends=depends,
                        )
                        self._pending.setdefault(ext.name, []).append(job)
                ext.extra_compile_args = compile_extra
                ext.extra_link_args = link_extra + ([] if msvc else build_flags.sanitize_flags())
            super().build_extensions()

    def build_extension(self, ext):
        pending = self._pending.pop(ext.name, [])
        compiler = self.compiler
        link = compiler.link_shared_object

        def link_with_variants(objects, *args, **kwargs):
            # the variants' objects, once compiled (a failed compile raises here)
            variant_objects = [obj for job in pending for obj in job.result()]
            return link(list(objects) + variant_objects, *args, **kwargs)

        compiler.link_shared_object = link_with_variants
        try:
            super().build_extension(ext)
        finally:
            compiler.link_shared_object = link
            for job in pending:  # the link did not run (up to date, or failed before)
                job.result()


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
