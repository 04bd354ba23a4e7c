"""The machine as the kernel sees it, in words: what ``show_config()`` and
the benchmark print (CPU model, variant, caches, CPUs, measured FMA peak,
the plans derived from the caches)."""

from __future__ import annotations

from typing import Any

from ._native import kernels


def size_text(n: int) -> str:
    """Bytes as "32 KiB", "1 MiB", "1.5 MiB"; "none" for 0."""
    if n == 0:
        return "none"
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            return f"{n / (1 << shift):g} {unit}"
    return f"{n} B"


def caches_text(info: dict[str, Any]) -> str:
    """The caches in words: L1d 32 KiB, L2 512 KiB per core; L3 32 MiB shared
    by 2 CPUs (cpuid)."""
    l3 = size_text(info["l3"])
    if info["l3"] and info["l3_shared"]:
        l3 += f" shared by {info['l3_shared']} CPUs"
    return (
        f"L1d {size_text(info['l1d'])}, L2 {size_text(info['l2'])} per core; "
        f"L3 {l3} ({info['caches_from']})"
    )


def fma_peaks(threads: int, seconds: float = 0.005) -> dict[str, Any]:
    """Measured GFLOP/s of the variant in use: per thread ("f32", "f64", one
    thread alone) and on ``threads`` threads at once ("f32_all", "f64_all",
    with "threads_ran"); None where it cannot be measured."""
    out: dict[str, Any] = {}
    for key, dtype in (("f32", "float32"), ("f64", "float64")):
        one = kernels.fma_peak(None, dtype, 1, seconds)
        out[key] = None if one is None else one[0]
        if threads > 1:
            many = kernels.fma_peak(None, dtype, threads, seconds)
            out[key + "_all"] = None if many is None else many[0]
            out["threads_ran"] = None if many is None else many[1]
        else:
            out[key + "_all"], out["threads_ran"] = out[key], 1
    return out


def peak_text(p: dict[str, Any], threads: int) -> str:
    """The peaks in words: fp32 93.5 GFLOP/s per thread (181.7 on 2 threads
    at once); fp64 ..."""
    parts = []
    for key, label in (("f32", "fp32"), ("f64", "fp64")):
        if p[key] is None:
            parts.append(f"{label} not measurable")
            continue
        text = f"{label} {p[key]:.1f} GFLOP/s per thread"
        if threads > 1 and p[key + "_all"] is not None:
            text += f" ({p[key + '_all']:.1f} on {p['threads_ran']} threads at once)"
        parts.append(text)
    return "; ".join(parts)


def plan_text(plan: dict[str, int]) -> str:
    """The cache-dependent plans in one line."""
    return (
        f"GEMM blocks MC/KC/NC fp32 {plan['mc_f32']}/{plan['kc']}/{plan['nc_f32']}, "
        f"fp64 {plan['mc_f64']}/{plan['kc']}/{plan['nc_f64']}; "
        f"forward tile {size_text(plan['tile_bytes'])}; "
        f"prefetch and work stealing beyond {size_text(plan['far_bytes'])}; "
        f"dx per step up to {size_text(plan['dx_loop_max_bytes'])} of W_ih"
    )


def active_plan() -> dict[str, int]:
    """The plans in force: the variant in use on this machine's caches."""
    info = kernels.cpu_info()
    return kernels.plan_for(kernels.isa(), info["l1d"], info["l2"], info["l3"])
