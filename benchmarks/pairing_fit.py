"""Fitting workload: the Sjostrom protocol grid for many triplet-STDP parameter sets at once.

Grid: 60 pairs at 0.1, 10, 20, 40, 50 Hz, dt = -10 / +10 ms (10 protocols; 600 s of biological
time at 0.1 Hz) x 1,000 parameter sets of the all-to-all triplet rule (Pfister & Gerstner 2006)
= 10,000 synapses, in ONE batched call of ``synaptic_fwp.protocols.pairing`` (event-driven,
exact exponential decay between events). Reference measured in the same run: Brian2 with the
same 10,000 synapses in one ``Synapses`` object (event-driven traces, per-synapse parameters),
``cpp_standalone`` device; its compile time is reported separately from its simulation time
(``device._last_run_time``, the time of the network run loop inside the binary).

Both results are checked against the closed form (geometric series of exponentials,
``synaptic_fwp.plasticity.stdp.pairing_closed_form``).

Usage::

    python benchmarks/pairing_fit.py            # 1000 parameter sets, Brian2 reference
    python benchmarks/pairing_fit.py --quick    # 100 parameter sets
    python benchmarks/pairing_fit.py --no-brian2
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import numpy as np
import torch

from synaptic_fwp.plasticity.stdp import TripletSTDP, pairing_closed_form
from synaptic_fwp.protocols.pairing import pairing

FREQS = np.array([0.1, 10.0, 20.0, 40.0, 50.0])
DELAYS = np.array([-0.010, 0.010])
N_PAIRS = 60
NAMES = ("tau_plus", "tau_minus", "tau_x", "tau_y", "A2_plus", "A3_plus", "A2_minus", "A3_minus")


def parameter_sets(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """``n`` sets scattered around the visual-cortex all-to-all full fit (x U(0.5, 1.5))."""
    base = TripletSTDP.from_table("visual_cortex", "all_to_all", "full")
    rng = np.random.default_rng(seed)
    return {k: getattr(base, k) * rng.uniform(0.5, 1.5, n) for k in NAMES}


def run_ours(params: dict[str, np.ndarray], dtype: torch.dtype, repeats: int):
    rule = TripletSTDP(**{k: torch.tensor(v, dtype=dtype) for k, v in params.items()})
    pairing(rule, dt=DELAYS, freq=FREQS, n_pairs=N_PAIRS, dtype=dtype)  # warm-up
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        ds = pairing(rule, dt=DELAYS, freq=FREQS, n_pairs=N_PAIRS, dtype=dtype)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return ds["dw"].values, min(wall), min(cpu), rule


def run_brian2(params: dict[str, np.ndarray]):
    import brian2 as b2

    b2.prefs.codegen.target = "numpy"  # irrelevant for standalone, silences a warning
    workdir = tempfile.mkdtemp(prefix="pairing_fit_b2_")
    b2.set_device("cpp_standalone", directory=workdir, build_on_run=False)
    b2.prefs.devices.cpp_standalone.openmp_threads = 0
    b2.defaultclock.dt = 0.1 * b2.ms
    P = next(iter(params.values())).size
    G = FREQS.size * DELAYS.size
    pre_i, pre_t, post_i, post_t = [], [], [], []
    g = 0
    for f in FREQS:
        for d in DELAYS:
            tm = np.arange(N_PAIRS) / f
            shift = min(0.0, d)
            pre_i.append(np.full(N_PAIRS, g))
            pre_t.append(tm - shift)
            post_i.append(np.full(N_PAIRS, g))
            post_t.append(tm + d - shift)
            g += 1
    pre_t_all = np.round(np.concatenate(pre_t) / 1e-4) * 1e-4
    post_t_all = np.round(np.concatenate(post_t) / 1e-4) * 1e-4
    pre = b2.SpikeGeneratorGroup(G, np.concatenate(pre_i), pre_t_all * b2.second)
    post = b2.SpikeGeneratorGroup(G, np.concatenate(post_i), post_t_all * b2.second)
    model = """
    w : 1
    tau_plus : second (constant)
    tau_minus : second (constant)
    tau_x : second (constant)
    tau_y : second (constant)
    A2_plus : 1 (constant)
    A3_plus : 1 (constant)
    A2_minus : 1 (constant)
    A3_minus : 1 (constant)
    dr1/dt = -r1 / tau_plus : 1 (event-driven)
    dr2/dt = -r2 / tau_x : 1 (event-driven)
    do1/dt = -o1 / tau_minus : 1 (event-driven)
    do2/dt = -o2 / tau_y : 1 (event-driven)
    """
    on_pre = "w = w - o1 * (A2_minus + A3_minus * r2)\nr1 += 1\nr2 += 1"
    on_post = "w = w + r1 * (A2_plus + A3_plus * o2)\no1 += 1\no2 += 1"
    S = b2.Synapses(pre, post, model=model, on_pre=on_pre, on_post=on_post)
    # synapse s = p * G + g connects protocol g's pre and post generators
    gi = np.tile(np.arange(G), P)
    S.connect(i=gi, j=gi)
    for k, v in params.items():
        vv = np.repeat(v, G)
        setattr(S, k, vv * b2.second if k.startswith("tau") else vv)
    S.w = 0.0
    duration = max(pre_t_all.max(), post_t_all.max()) + 1e-3
    b2.run(duration * b2.second)
    t0 = time.perf_counter()
    b2.device.build(directory=workdir, compile=True, run=True, debug=False)
    total = time.perf_counter() - t0
    sim = float(b2.device._last_run_time)
    compile_t = sum(v for v in b2.device.timers["compile"].values() if v is not None)
    binary = b2.device.timers["run_binary"]
    w = np.asarray(S.w[:]).reshape(P, FREQS.size, DELAYS.size)
    b2.device.reinit()
    b2.device.activate()
    b2.set_device("runtime")
    return w, dict(simulation_s=sim, compile_s=compile_t, binary_s=binary, build_total_s=total,
                   duration_s=float(duration))


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="100 parameter sets")
    ap.add_argument("--n-sets", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--no-brian2", action="store_true")
    ap.add_argument("--json", default=None, help="write the results to this JSON file")
    a = ap.parse_args(argv)
    n = a.n_sets or (100 if a.quick else 1000)
    params = parameter_sets(n)
    out: dict = {"n_sets": n, "n_synapses": n * FREQS.size * DELAYS.size,
                 "protocols": {"freq_Hz": FREQS.tolist(), "dt_ms": (DELAYS * 1e3).tolist(),
                               "n_pairs": N_PAIRS}}
    rule64 = TripletSTDP(**{k: torch.tensor(v, dtype=torch.float64) for k, v in params.items()})
    cf = pairing_closed_form(rule64, DELAYS[None, :], FREQS[:, None], N_PAIRS)
    scale = np.abs(cf).max()
    for name, dtype in (("float64", torch.float64), ("float32", torch.float32)):
        dw, wall, cpu, _ = run_ours(params, dtype, a.repeats)
        out[f"ours_{name}"] = dict(
            wall_s=wall, cpu_s=cpu,
            max_abs_err_vs_closed_form=float(np.abs(dw - cf).max()),
            max_rel_err_vs_closed_form=float((np.abs(dw - cf) / np.abs(cf)).max()),
            max_err_rel_to_largest=float(np.abs(dw - cf).max() / scale),
        )
    if not a.no_brian2:
        w, b = run_brian2(params)
        b["max_abs_err_vs_closed_form"] = float(np.abs(w - cf).max())
        b["max_err_rel_to_largest"] = float(np.abs(w - cf).max() / scale)
        out["brian2_cpp_standalone"] = b
        for name in ("float64", "float32"):
            out[f"speedup_{name}_vs_brian2_simulation"] = b["simulation_s"] / out[f"ours_{name}"][
                "wall_s"]
            out[f"speedup_{name}_vs_brian2_compile_plus_binary"] = (
                (b["compile_s"] + b["binary_s"]) / out[f"ours_{name}"]["wall_s"])
    print(json.dumps(out, indent=2))
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(out, fh, indent=2)
    return out


if __name__ == "__main__":
    main()
