"""A recurrent E/I network of 4,000 LIF neurons: synaptic_fwp's engine against Brian2.

The network has the sizes and synapses of the conductance-based benchmark of Vogels & Abbott
2005 (J Neurosci 25:10786) as used in Brette et al. 2007 (J Comput Neurosci 23:349, benchmark 1):
3,200 excitatory and 800 inhibitory conductance-based LIF neurons (C 200 pF, g_L 10 nS,
E_L -60 mV, threshold -50 mV, reset -60 mV, refractory 5 ms), random connectivity 2% (one fixed
matrix, static weights), AMPA onto every neuron from the excitatory ones (0.6 nS, 5 ms, 0 mV),
GABA from the inhibitory ones (6.7 nS, 10 ms, -80 mV). Instead of the benchmark's initial
conductance kick, every neuron gets a constant current of 0.11 nA (alone it would fire
regularly) and starts at a potential drawn uniformly between reset and threshold; recurrent
inhibition holds the excitatory rate near 5 Hz. ``dt = 0.1 ms``.

* synaptic_fwp: one :class:`synaptic_fwp.engine.Network` with ``batch`` instances (per-neuron
  ``V_init``, static projections between two :class:`LIFPopulation`\\ s), float32 and float64,
  with 1 and 2 torch threads; a short run first, so that imports and first calls are not timed.
* Brian2 (2.9, ``cython`` runtime target), the same network built from the engine's own by
  :func:`synaptic_fwp.brian2_export.network_to_brian2` (the engine's exponential integrator as
  a ``run_regularly`` step, Brian2's threshold and reset, ``Synapses`` only where a weight is
  nonzero: 320,000 of them), float64. Each instance is its own Brian2 network, run one after the
  other; a first run of 1 ms compiles, then the simulation is timed. ``cpp_standalone`` is not
  offered by the export.

Reported: simulation throughput in network-seconds of biological time per wall-clock second for
each, the ratio ours/Brian2, and the mean excitatory and inhibitory rates of both (the network
is chaotic, so float32 and float64 runs and Brian2's part ways after a few hundred ms; the rates
must agree, within 10%).

With ``--plastic`` the E -> E synapses follow pair STDP (Song, Miller & Abbott 2000's rule,
``w_max`` twice the initial weight) on the existing synapses only (a connection mask): 204,800
plastic synapses per network.

Run: ``python benchmarks/recurrent_ei.py`` (batch 8, 1 s) or ``--quick`` (batch 2, 0.1 s).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

NE, NI, P_CONN = 3200, 800, 0.02
DT = 1e-4
LIF = dict(C=200e-12, g_L=10e-9, E_L=-60e-3, V_th=-50e-3, V_reset=-60e-3, t_ref=5e-3,
           E_ampa=0.0, tau_ampa=5e-3, E_gaba=-80e-3, tau_gaba=10e-3, I_ext=0.11e-9)
W_EXC, W_INH = 0.6e-9, 6.7e-9


def build(batch: int, dtype: torch.dtype, seed: int = 1, plastic: bool = False):  # noqa: ANN201
    """The engine network: ``batch`` instances of the same connectivity, each with its own
    starting potentials; ``plastic``: E -> E follows pair STDP (Song, Miller & Abbott 2000's
    rule, ``w_max`` twice the initial weight) on its synapses only (a connection mask)."""
    from synaptic_fwp.engine import Network
    from synaptic_fwp.neurons import LIFPopulation
    from synaptic_fwp.plasticity import PairSTDP

    g = torch.Generator().manual_seed(seed)
    net = Network(dt=DT, batch=batch, seed=seed, dtype=dtype)

    def v0(n: int) -> torch.Tensor:
        return -60e-3 + 10e-3 * torch.rand(batch, n, generator=g, dtype=torch.float64)

    E = net.add(LIFPopulation(NE, V_init=v0(NE), name="E", **LIF))
    I = net.add(LIFPopulation(NI, V_init=v0(NI), name="I", **LIF))

    def w(n_post: int, n_pre: int, scale: float) -> torch.Tensor:
        return scale * (torch.rand(n_post, n_pre, generator=g, dtype=torch.float64) < P_CONN)

    wEE = w(NE, NE, W_EXC)
    if plastic:
        net.connect(E, E, wEE, PairSTDP.song2000(w_max=2 * W_EXC), mask=wEE != 0, name="EE")
    else:
        net.connect(E, E, wEE, name="EE")
    net.connect(E, I, w(NI, NE, W_EXC), name="EI")
    net.connect(I, E, w(NE, NI, W_INH), target="gaba", name="IE")
    net.connect(I, I, w(NI, NI, W_INH), target="gaba", name="II")
    return net


def rates(counts_E: np.ndarray, counts_I: np.ndarray, duration: float) -> tuple[float, float]:
    return float(counts_E.sum() / NE / duration), float(counts_I.sum() / NI / duration)


def run_ours(batch: int, duration: float, threads: int, dtype: torch.dtype,
             plastic: bool = False) -> dict:
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        net = build(batch, dtype, plastic=plastic)
        t0, c0 = time.perf_counter(), time.process_time()
        ds = net.run(duration, record=["E.spikes", "I.spikes"], every=duration, progress=False)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    finally:
        torch.set_num_threads(old)
    rE, rI = rates(ds["E_spikes"].values, ds["I_spikes"].values, duration * batch)
    return {"sim_s": wall, "cpu_s": cpu, "rate_E_hz": rE, "rate_I_hz": rI}


def run_brian2(batch: int, duration: float, plastic: bool = False) -> dict:
    from synaptic_fwp.brian2_export import network_to_brian2

    net = build(batch, torch.float64, plastic=plastic)
    sim = build_s = 0.0
    nE = nI = 0
    for b in range(batch):
        t0 = time.perf_counter()
        ex = network_to_brian2(net, instance=b, codegen="cython")
        ex.run(1e-3)  # code generation and compilation (cached after the first instance)
        t1 = time.perf_counter()
        ex.run(duration)
        t2 = time.perf_counter()
        build_s += t1 - t0
        sim += t2 - t1
        nE += sum(len(t) for t in ex.spike_times("E"))
        nI += sum(len(t) for t in ex.spike_times("I"))
    rE, rI = rates(np.array(nE), np.array(nI), (duration + 1e-3) * batch)
    return {"sim_s": sim, "build_s": build_s, "rate_E_hz": rE, "rate_I_hz": rI}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="batch 2, 0.1 s (checks the script)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--duration", type=float, default=1.0, help="biological time (s)")
    ap.add_argument("--threads", default="1,2", help="torch thread counts to time (comma list)")
    ap.add_argument("--no-brian2", action="store_true", help="only time synaptic_fwp")
    ap.add_argument("--json", default=None, help="write the results to this file")
    ap.add_argument("--plastic", action="store_true",
                    help="E -> E follows pair STDP on its synapses (a connection mask)")
    ap.add_argument("--dtypes", default="float32,float64", help="our dtypes to time")
    args = ap.parse_args()
    if args.batch < 1 or not args.duration > 0:
        ap.error(f"--batch must be >= 1 and --duration > 0, got {args.batch}, {args.duration}")
    bad = sorted(set(args.dtypes.split(",")) - {"float32", "float64"})
    if bad:
        ap.error(f"--dtypes takes float32 and/or float64, got {bad}")
    batch, duration = (2, 0.1) if args.quick else (args.batch, args.duration)
    net_s = batch * duration
    plastic = args.plastic
    print(f"Recurrent E/I network: {batch} networks x {duration} s of {NE} E + {NI} I LIF, "
          f"{P_CONN:.0%} connectivity, dt = 0.1 ms" + (", E -> E plastic (pair STDP)"
                                                        if plastic else ""))
    res: dict = {"batch": batch, "duration_s": duration, "plastic": plastic, "ours": {}}
    run_ours(1, 0.005, 1, torch.float32)  # warm-up: imports and first calls
    dtypes = {"float32": torch.float32, "float64": torch.float64}
    for name in args.dtypes.split(","):
        dtype = dtypes[name]
        for th in [int(x) for x in args.threads.split(",")]:
            r = run_ours(batch, duration, th, dtype, plastic)
            res["ours"][f"{name}_{th}"] = r
            print(f"  synaptic_fwp {name} {th} thread(s): {r['sim_s']:7.2f} s wall, "
                  f"{r['cpu_s']:7.2f} s CPU  {net_s / r['sim_s']:7.3f} network-s/s  "
                  f"E {r['rate_E_hz']:.2f} Hz, I {r['rate_I_hz']:.2f} Hz")
    if not args.no_brian2:
        b2 = run_brian2(batch, duration, plastic)
        res["brian2_cython"] = b2
        print(f"  Brian2 cython (float64): {b2['sim_s']:7.2f} s wall "
              f"(+ {b2['build_s']:.1f} s build/compile)  {net_s / b2['sim_s']:7.3f} network-s/s  "
              f"E {b2['rate_E_hz']:.2f} Hz, I {b2['rate_I_hz']:.2f} Hz")
        for key, r in res["ours"].items():
            ratio = b2["sim_s"] / r["sim_s"]
            agree = all(abs(r[k] - b2[k]) <= 0.1 * b2[k] for k in ("rate_E_hz", "rate_I_hz"))
            r["speedup_vs_brian2_cython"] = ratio
            r["rates_agree_10pct"] = agree
            print(f"  ours {key} / Brian2 cython: {ratio:6.2f}x faster; rates within 10%: {agree}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
