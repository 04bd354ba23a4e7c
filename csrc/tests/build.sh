#!/bin/sh
# Build (and optionally run) the standalone GEMM test/benchmark, with the
# flags of the extension build (csrc/build_flags.py: baseline flags
# everywhere, each ISA's flags on its own variant file).
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
# FASTLSTM_NO_OPENMP=1 builds without OpenMP.  Needs gcc (or $CC) and python3.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(dirname "$HERE")
OUT=${OUT:-/tmp/fastlstm-gemm-test}
CC=${CC:-gcc}
PY=${PYTHON:-python3}
FLAGS() { "$PY" "$SRC/build_flags.py" "$@"; }
CFLAGS="$(FLAGS base) -fPIC"
OMP=$(FLAGS openmp)
[ "${FASTLSTM_NO_OPENMP:-0}" = "1" ] && OMP=""
ISAS=$(FLAGS isas)
MODE=${1:-}
[ "$MODE" = lib ] && CFLAGS="$CFLAGS -fvisibility=default"
mkdir -p "$OUT"
rm -f "$OUT"/*.o

cc() { # file, object name, extra flags
    f=$1; o=$2; shift 2
    # shellcheck disable=SC2086
    $CC $CFLAGS $OMP -I"$SRC" -I"$SRC/common" -I"$SRC/gemm" "$@" -c "$SRC/$f" -o "$OUT/$o.o"
}
cc common/threads.c threads
cc gemm/gemm_dispatch.c gemm_dispatch
for isa in $ISAS; do
    # shellcheck disable=SC2046
    cc "gemm/gemm_$isa.c" "gemm_$isa" -DFL_ISA="$isa" $(FLAGS isa "$isa")
done
LIBOBJS="$OUT/threads.o $OUT/gemm_dispatch.o"
for isa in $ISAS; do LIBOBJS="$LIBOBJS $OUT/gemm_$isa.o"; done

if [ "$MODE" = lib ]; then
    # shellcheck disable=SC2086
    $CC $CFLAGS $OMP -shared -o "$OUT/libfastlstm_gemm.so" $LIBOBJS -lm
    exit 0
fi
cc tests/gemm_ref.c gemm_ref
cc tests/test_gemm.c test_gemm
# shellcheck disable=SC2086
$CC $CFLAGS $OMP -o "$OUT/test_gemm" $LIBOBJS "$OUT/gemm_ref.o" "$OUT/test_gemm.o" -lm

case "$MODE" in
test)
    for isa in $ISAS; do
        echo "== FASTLSTM_ISA=$isa"
        FASTLSTM_ISA=$isa "$OUT/test_gemm"
    done ;;
bench)
    "$OUT/test_gemm" bench "${2:-0}" ;;
esac
