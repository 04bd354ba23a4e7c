#!/bin/sh
# Build (and optionally run) the standalone GEMM test/benchmark.
#   csrc/tests/build.sh            build into $OUT (default: /tmp/fastlstm-gemm-test)
#   csrc/tests/build.sh test       build, then run the tests once per FASTLSTM_ISA
#   csrc/tests/build.sh bench [T]  build, then benchmark with T threads
#   python3 csrc/tests/bench_compare.py $OUT/libfastlstm_gemm.so [T]
#                                  fastlstm vs numpy, alternating, same process
# Baseline flags everywhere; ISA flags only on the variant files; never
# -march=native or -ffast-math.  FASTLSTM_NO_OPENMP=1 builds without OpenMP.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(dirname "$HERE")
OUT=${OUT:-/tmp/fastlstm-gemm-test}
CC=${CC:-gcc}
CFLAGS=${CFLAGS:-"-O2 -std=c99 -Wall -Wextra -fPIC"}
OMP="-fopenmp"
[ "${FASTLSTM_NO_OPENMP:-0}" = "1" ] && OMP=""
mkdir -p "$OUT"

cc() { # file, extra flags
    f=$1; shift
    $CC $CFLAGS $OMP -I"$SRC" -I"$SRC/common" -I"$SRC/gemm" "$@" -c "$SRC/$f" -o "$OUT/$(basename "$f" .c).o"
}
cc common/threads.c
cc tests/gemm_ref.c
cc gemm/gemm_generic.c
cc gemm/gemm_avx2.c -mavx2 -mfma
cc gemm/gemm_avx512.c -mavx512f -mavx512dq -mavx512vl -mfma
cc gemm/gemm_dispatch.c
cc tests/test_gemm.c
$CC $CFLAGS $OMP -o "$OUT/test_gemm" "$OUT"/threads.o "$OUT"/gemm_ref.o \
    "$OUT"/gemm_generic.o "$OUT"/gemm_avx2.o "$OUT"/gemm_avx512.o \
    "$OUT"/gemm_dispatch.o "$OUT"/test_gemm.o -lm

# the same objects as a shared library, for csrc/tests/bench_compare.py
$CC $CFLAGS $OMP -shared -o "$OUT/libfastlstm_gemm.so" "$OUT"/threads.o \
    "$OUT"/gemm_generic.o "$OUT"/gemm_avx2.o "$OUT"/gemm_avx512.o \
    "$OUT"/gemm_dispatch.o -lm

case "${1:-}" in
test)
    for isa in generic avx2 avx512; do
        echo "== FASTLSTM_ISA=$isa"
        FASTLSTM_ISA=$isa "$OUT/test_gemm"
    done ;;
bench)
    "$OUT/test_gemm" bench "${2:-0}" ;;
esac
