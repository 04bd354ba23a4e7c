#!/bin/sh
# Build (and optionally run) the standalone GEMM test/benchmark, compiled as
# setup.py compiles the extension (csrc/build_flags.py: the compiler and
# flags of the Python build, then ours; baseline flags everywhere, each
# ISA's flags on its own variant file).
#   csrc/tests/build.sh            build $OUT/test_gemm (default OUT:
#                                  /tmp/fastlstm-gemm-test)
#   csrc/tests/build.sh test       build, then run the tests once per
#                                  FASTLSTM_ISA value (each run checks every
#                                  variant the CPU runs against gemm_ref.c; a
#                                  variant the CPU lacks falls back to the best
#                                  it runs); exits non-zero on any failure
#   csrc/tests/build.sh bench [T]  build, then benchmark with T threads
#   csrc/tests/build.sh lib        build $OUT/libfastlstm_gemm.so, for
#     python3 csrc/tests/bench_compare.py $OUT/libfastlstm_gemm.so [T]
#                                  (fastlstm vs numpy, alternating, same
#                                  process); the one build that adds a flag,
#                                  -fvisibility=default, so that ctypes sees
#                                  the symbols the extension keeps hidden
# $PYTHON (default python3) is the Python whose build setup.py would run
# under: its compiler and flags are used ($CC, $CFLAGS, $CPPFLAGS apply as
# they do there).  FASTLSTM_NO_OPENMP=1 builds without OpenMP.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(dirname "$HERE")
OUT=${OUT:-/tmp/fastlstm-gemm-test}
PY=${PYTHON:-python3}
FLAGS() { "$PY" "$SRC/build_flags.py" "$@"; }
FL_CC=$(FLAGS cc)
FL_CFLAGS="$(FLAGS python) $(FLAGS base)"
if [ "${FASTLSTM_NO_OPENMP:-0}" = "1" ]; then
    OMP=$(FLAGS no-openmp)
else
    OMP=$(FLAGS openmp)
fi
ISAS=$(FLAGS isas)
MODE=${1:-}
[ "$MODE" = lib ] && FL_CFLAGS="$FL_CFLAGS -fvisibility=default"
mkdir -p "$OUT"
rm -f "$OUT"/*.o

compile_one() { # file, object name, extra flags
    f=$1; o=$2; shift 2
    # shellcheck disable=SC2086
    $FL_CC $FL_CFLAGS $OMP -I"$SRC" -I"$SRC/common" -I"$SRC/gemm" "$@" -c "$SRC/$f" -o "$OUT/$o.o"
}
compile_one common/threads.c threads
compile_one common/cpuinfo.c cpuinfo
compile_one common/plans.c plans
compile_one gemm/gemm_dispatch.c gemm_dispatch
for isa in $ISAS; do
    # shellcheck disable=SC2046
    compile_one "gemm/gemm_$isa.c" "gemm_$isa" -DFL_ISA="$isa" $(FLAGS isa "$isa")
    # shellcheck disable=SC2046
    compile_one common/fma_peak.c "fma_peak_$isa" -DFL_ISA="$isa" $(FLAGS isa "$isa")
done
LIBOBJS="$OUT/threads.o $OUT/cpuinfo.o $OUT/plans.o $OUT/gemm_dispatch.o"
for isa in $ISAS; do LIBOBJS="$LIBOBJS $OUT/gemm_$isa.o $OUT/fma_peak_$isa.o"; done

if [ "$MODE" = lib ]; then
    # shellcheck disable=SC2086
    $FL_CC $FL_CFLAGS $OMP -shared -o "$OUT/libfastlstm_gemm.so" $LIBOBJS -lm
    exit 0
fi
compile_one tests/gemm_ref.c gemm_ref
compile_one tests/test_gemm.c test_gemm
# shellcheck disable=SC2086
$FL_CC $FL_CFLAGS $OMP -o "$OUT/test_gemm" $LIBOBJS "$OUT/gemm_ref.o" "$OUT/test_gemm.o" -lm

case "$MODE" in
test)
    for isa in $ISAS; do
        echo "== FASTLSTM_ISA=$isa"
        FASTLSTM_ISA=$isa "$OUT/test_gemm"
    done ;;
bench)
    "$OUT/test_gemm" bench "${2:-0}" ;;
esac
