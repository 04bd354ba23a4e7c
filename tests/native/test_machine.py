"""The machine as the kernel reads it (CPU model, caches, CPUs), the FMA loop
of each ISA variant, and the plans derived from the cache sizes: sane for a
table of machines, and on the machine the thresholds were measured on
(Zen 3: 32 KiB / 512 KiB / 32 MiB) exactly the constants they replaced."""

import os

import numpy as np
import pytest
from test_threads import cpu_supports

import fastlstm
from fastlstm._native import kernels
from fastlstm.tools import bench

KiB, MiB = 1 << 10, 1 << 20
ISAS = ("generic", "avx2", "avx512")
# rows of the register tile (fp32, fp64) and the smallest panel width the
# variant may have (generic: 8 / 4 with GCC's vectors, 4 with scalars)
TILES = {"generic": (4, 4, 4, 4), "avx2": (6, 6, 16, 8), "avx512": (12, 12, 32, 16)}
# (name, L1d, L2, L3) in bytes; 0: absent
MACHINES = [
    ("zen3", 32 * KiB, 512 * KiB, 32 * MiB),
    ("sapphire rapids", 48 * KiB, 2 * MiB, 105 * MiB),
    ("zen5", 48 * KiB, 1 * MiB, 32 * MiB),
    ("no L3", 32 * KiB, 256 * KiB, 0),
    ("tiny", 4 * KiB, 16 * KiB, 64 * KiB),
    ("absent", 0, 0, 0),
    ("absurd", 1 << 40, 1 << 40, 1 << 42),
]


def compiled_isas():
    out = []
    for isa in ISAS:
        try:
            kernels.plan_for(isa, 0, 0, 0)
            out.append(isa)
        except ValueError:
            pass
    return out


# ---- reading the machine ----------------------------------------------------


def test_cpu_info_is_complete():
    info = kernels.cpu_info()
    assert isinstance(info["model"], str)
    assert info["cpus"] >= 1
    assert info["caches_from"] in ("cpuid", "sysfs", "default")
    assert info["l1d"] > 0 and info["l2"] > 0
    if hasattr(os, "sched_getaffinity"):
        assert info["cpus"] == len(os.sched_getaffinity(0))
    # the sizes in force are those of the source that told them
    caches = {k: info[k] for k in ("l1d", "l2", "l3", "l3_shared")}
    assert caches == kernels.read_caches(info["caches_from"])


def test_default_caches_and_bad_source():
    assert kernels.read_caches("default") == {
        "l1d": 32 * KiB,
        "l2": 512 * KiB,
        "l3": 32 * MiB,
        "l3_shared": 0,
    }
    with pytest.raises(ValueError, match="source"):
        kernels.read_caches("bios")


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs CPU affinity")
def test_cpuid_and_sysfs_agree():
    """Both read CPU 0's caches (cpuid on the CPU the thread runs on, so the
    thread is pinned to CPU 0 while it reads)."""
    old = os.sched_getaffinity(0)
    if 0 not in old:
        pytest.skip("CPU 0 not available to this process")
    os.sched_setaffinity(0, {0})
    try:
        by_cpuid = kernels.read_caches("cpuid")
    finally:
        os.sched_setaffinity(0, old)
    by_sysfs = kernels.read_caches("sysfs")
    if by_cpuid is None or by_sysfs is None:
        pytest.skip("cpuid or sysfs tells nothing here")
    for level in ("l1d", "l2", "l3"):
        assert by_cpuid[level] == by_sysfs[level], level


# ---- the FMA loop -----------------------------------------------------------


@pytest.mark.parametrize("isa", ISAS)
def test_fma_peak_only_for_variants_this_cpu_runs(isa):
    runs = cpu_supports(isa)
    got = kernels.fma_peak(isa, "float32", 1, 0.001)
    if got is None:
        assert isa not in compiled_isas() or runs is not True
    else:
        assert runs is not False
        gflops, ran = got
        assert gflops > 0 and ran == 1


def test_fma_peak_of_the_variant_in_use():
    for dtype in (np.float32, np.float64):
        gflops, ran = kernels.fma_peak(None, dtype, 2, 0.001)
        assert gflops > 0 and 1 <= ran <= 2
    assert kernels.fma_peak("sse9") is None
    with pytest.raises(TypeError, match="dtype"):
        kernels.fma_peak(None, np.int32)
    with pytest.raises(ValueError, match="threads"):
        kernels.fma_peak(None, np.float32, 0)


# ---- plans ------------------------------------------------------------------


def test_plans_of_the_measured_machine_are_the_old_constants():
    """On the Zen 3 whose measurements set the constants, the derived plans
    are those constants: speed and results stay as they were."""
    old = {
        "kc": 256,
        "mc_f32": 144,
        "mc_f64": 72,
        "nc_f32": 4096,
        "nc_f64": 2048,
        "tile_bytes": 16 * KiB,
        "far_bytes": 512 * KiB,
        "steal_min_bytes": 512 * KiB,
        "dx_loop_max_bytes": 1 * MiB,
    }
    if "avx2" not in compiled_isas():
        pytest.skip("avx2 variant not compiled in")
    assert kernels.plan_for("avx2", 32 * KiB, 512 * KiB, 32 * MiB) == old
    # and what the defaults stand for when nothing can be read
    assert kernels.plan_for("avx2", 0, 0, 32 * MiB) == old


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("machine", MACHINES, ids=[m[0] for m in MACHINES])
def test_plans_are_sane(isa, machine):
    if isa not in compiled_isas():
        pytest.skip(f"{isa} not compiled in")
    name, l1d, l2, l3 = machine
    p = kernels.plan_for(isa, l1d, l2, l3)
    mr_s, mr_d, nr_s, nr_d = TILES[isa]
    assert p["kc"] == 256  # fixed: it fixes the summation order
    for mc, nc, mr, nr, elem in (
        (p["mc_f32"], p["nc_f32"], mr_s, nr_s, 4),
        (p["mc_f64"], p["nc_f64"], mr_d, nr_d, 8),
    ):
        assert mc >= mr and mc % mr == 0
        assert nc >= nr and nc % nr == 0
        a_block, b_block = mc * p["kc"] * elem, nc * p["kc"] * elem
        # never beyond what any real core has, whatever the report says
        assert a_block <= 32 * MiB and b_block <= 64 * MiB
        if name in ("zen3", "sapphire rapids", "zen5", "no L3"):
            # A in L2 with room for the B micro-panels; B in L3 (in L2 without)
            assert a_block <= l2 / 2
            assert b_block <= (l3 / 4 if l3 else l2 / 2)
            assert mc >= 2 * mr  # a few register tiles per block, at least
    assert 0 < p["tile_bytes"] <= 512 * KiB
    assert 0 < p["far_bytes"] == p["steal_min_bytes"] <= 64 * MiB
    assert p["dx_loop_max_bytes"] == 2 * p["far_bytes"]
    if name in ("zen3", "sapphire rapids", "zen5", "no L3"):
        assert p["tile_bytes"] <= l1d / 2  # the tile stays in L1 with the weights
        assert p["far_bytes"] == l2


@pytest.mark.parametrize("isa", ISAS)
def test_plans_grow_with_the_caches(isa):
    if isa not in compiled_isas():
        pytest.skip(f"{isa} not compiled in")
    small = kernels.plan_for(isa, 32 * KiB, 512 * KiB, 32 * MiB)
    large = kernels.plan_for(isa, 48 * KiB, 2 * MiB, 105 * MiB)
    for key in small:
        assert large[key] >= small[key], key
    assert large["mc_f32"] > small["mc_f32"] and large["nc_f32"] > small["nc_f32"]


def test_plan_for_unknown_variant():
    with pytest.raises(ValueError, match="not compiled in"):
        kernels.plan_for("sse9", 0, 0, 0)


# ---- what users see ---------------------------------------------------------


def test_show_config(capsys):
    cfg = fastlstm.show_config(measure_peak=False)
    out = capsys.readouterr().out
    info = kernels.cpu_info()
    for key in ("cpu", "isa", "caches", "cpus", "fma peak", "plans"):
        assert any(line.startswith(key + " ") for line in out.splitlines()), key
    assert cfg["isa"] == fastlstm._isa() and cfg["fma_peak"] is None
    assert cfg["plans"] == kernels.plan_for(cfg["isa"], info["l1d"], info["l2"], info["l3"])
    assert f"{cfg['plans']['mc_f32']}/256/{cfg['plans']['nc_f32']}" in out

    cfg = fastlstm.show_config()
    out = capsys.readouterr().out
    assert cfg["fma_peak"]["f32"] > 0 and "GFLOP/s per thread" in out


def test_bench_peak_is_measured():
    peak, note = bench.measured_peak_gflops(1, seconds=0.001)
    assert peak > 0 and "FMA loop" in note and fastlstm._isa() in note
    lines = bench.environment(
        bench.datetime.datetime.now(), bench.Peers(), 1, peak, note, (None, None)
    )
    assert any(line.startswith("CPU: ") for line in lines)
    assert any(line.startswith("caches: L1d ") for line in lines)
    assert any(line.startswith("peak: ") and "FMA loop" in line for line in lines)
