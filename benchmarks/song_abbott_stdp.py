"""Song, Miller & Abbott 2000 STDP network: synaptic_fwp's engine against Brian2.

The network is Brian2's ``examples/synapses/STDP.py`` (adapted there from Song, Miller & Abbott
2000, Nat Neurosci 3:919, and Song & Abbott 2001): 1000 Poisson inputs at 15 Hz onto one LIF
neuron (``dv/dt = (ge (Ee - vr) + El - v)/taum``, ``dge/dt = -ge/taue``, threshold -54 mV, reset
-60 mV, rest -74 mV, taum 10 ms, taue 5 ms) with all-to-all pair STDP (tau 20 ms,
``dApre = 0.01 gmax``, ``dApost = -1.05 dApre``, hard bounds ``[0, gmax]``, ``w`` initially
uniform in ``[0, gmax]``). ``batch`` independent copies are simulated for ``duration`` seconds at
``dt = 0.1 ms``. With ``--inhibition G`` the neuron also receives Song, Miller & Abbott's
inhibitory inputs: 200 Poisson inputs at 10 Hz onto static GABA synapses of weight ``G`` (in
units of the leak conductance), reversal -70 mV, decay 5 ms (``+ gi (Ei - v)`` in ``dv/dt``,
``dgi/dt = -gi/taui``; Brian2 then integrates with ``exponential_euler``, the conductances held
over the step as in the engine, since ``exact`` needs linear equations):

* synaptic_fwp: one :class:`synaptic_fwp.engine.Network` with ``batch`` instances, float32, with
  1 and with 2 torch threads. The neuron is :class:`LIFPopulation` with ``ampa_drive = Ee - vr``
  (Brian2's fixed driving force), weights in siemens (``w = ge_weight * g_L``), and the rule is
  :meth:`synaptic_fwp.plasticity.PairSTDP.song2000`.
* Brian2 (2.9), the same ``batch`` networks in one simulation (``PoissonGroup(1000 batch)``,
  ``NeuronGroup(batch)``, ``Synapses`` connected ``j = i // 1000``), with the ``cython`` runtime
  target and with the ``cpp_standalone`` device, each in its own subprocess. Code generation and
  compilation are timed separately from simulation (cython: a first run of one step compiles;
  cpp_standalone: ``device.build(compile=True, run=False)``, then the simulation's own timer
  ``device._last_run_time``).

Reported: simulation throughput in network-seconds of biological time per wall-clock second,
the ratios ours/Brian2 (targets: >= 5x cython, >= 1x cpp_standalone), and the weight
distributions at the end (fraction of weights below 0.1 gmax and above 0.9 gmax, mean over the
networks, with a two-sample test per fraction using the spread across networks).

Run: ``python benchmarks/song_abbott_stdp.py`` (full: batch 32, 10 s) or ``--quick`` (batch 4,
1 s; checks the script works). Times depend on the machine load; the ratios are measured in one
run on the same machine.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

# Brian2 example constants (SI)
TAUM, TAUPRE, TAUE = 10e-3, 20e-3, 5e-3
EE, VT, VR, EL = 0.0, -54e-3, -60e-3, -74e-3
F, GMAX, N_IN = 15.0, 0.01, 1000
DT = 1e-4
EI, TAUI, F_IN, N_INH = -70e-3, 5e-3, 10.0, 200  # Song, Miller & Abbott 2000's inhibition


def run_ours(batch: int, duration: float, threads: int, seed: int = 0,
             method: str = "auto", inhibition: float = 0.0) -> dict:
    import torch

    from synaptic_fwp.engine import Network
    from synaptic_fwp.inputs import PoissonInput
    from synaptic_fwp.neurons import LIFPopulation
    from synaptic_fwp.plasticity import PairSTDP

    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    flush = torch.set_flush_denormal(True)
    try:
        g_L = 10e-9  # any value: W is in units of g_L * ge
        net = Network(dt=DT, batch=batch, seed=seed, dtype=torch.float32)
        inp = net.add(PoissonInput(N_IN, rate=F, name="inp"))
        lif = net.add(LIFPopulation(1, C=TAUM * g_L, g_L=g_L, E_L=EL, V_th=VT, V_reset=VR,
                                    t_ref=0.0, tau_ampa=TAUE, ampa_drive=EE - VR, V_init=0.0,
                                    E_gaba=EI, tau_gaba=TAUI, name="out"))
        gmax = GMAX * g_L
        gen = torch.Generator().manual_seed(seed)
        W0 = torch.rand(batch, 1, N_IN, generator=gen) * gmax
        net.connect(inp, lif, W0, PairSTDP.song2000(w_max=gmax), name="S")
        if inhibition:
            inh = net.add(PoissonInput(N_INH, rate=F_IN, name="inh"))
            net.connect(inh, lif, inhibition * g_L, name="I", target="gaba")
        t0, c0 = time.perf_counter(), time.process_time()
        ds = net.run(duration, record=["S.W", "out.spikes"], every=duration, progress=False,
                     method=method)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        w = ds["S_W"].isel(time=-1).values.reshape(batch, N_IN) / gmax
        rate = float(ds["out_spikes"].sum()) / (batch * duration)
    finally:
        torch.set_num_threads(old)
        torch.set_flush_denormal(flush)
    return {"sim_s": wall, "cpu_s": cpu, "w": w.tolist(), "rate_hz": rate}


BRIAN2_CHILD = r'''
import json, sys, time
import numpy as np
from brian2 import *
target, batch, duration, outdir = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
g_in = float(sys.argv[5])
NIN = 1000
if target == "cpp_standalone":
    set_device("cpp_standalone", directory=outdir, build_on_run=False)
else:
    prefs.codegen.target = "cython"
prefs.devices.cpp_standalone.openmp_threads = 0
defaultclock.dt = 0.1*ms
taum = 10*ms; taupre = 20*ms; taupost = taupre; Ee = 0*mV; vt = -54*mV; vr = -60*mV
El = -74*mV; taue = 5*ms; F = 15*Hz; gmax = .01
dApre = .01; dApost = -dApre * taupre / taupost * 1.05; dApost *= gmax; dApre *= gmax
eqs = """dv/dt = (ge * (Ee-vr) + El - v) / taum : volt
dge/dt = -ge / taue : 1"""
if g_in > 0:  # Song, Miller & Abbott 2000's inhibitory inputs (conductance-based)
    Ei = -70*mV; taui = 5*ms
    eqs = """dv/dt = (ge * (Ee-vr) + gi * (Ei - v) + El - v) / taum : volt
dge/dt = -ge / taue : 1
dgi/dt = -gi / taui : 1"""
inp = PoissonGroup(NIN * batch, rates=F)
neu = NeuronGroup(batch, eqs, threshold="v>vt", reset="v = vr",
                  method="exponential_euler" if g_in > 0 else "exact")
if g_in > 0:
    inh = PoissonGroup(200 * batch, rates=10*Hz)
    SI = Synapses(inh, neu, on_pre="gi += g_in")
    SI.connect(j="i // 200")
S = Synapses(inp, neu, """w : 1
dApre/dt = -Apre / taupre : 1 (event-driven)
dApost/dt = -Apost / taupost : 1 (event-driven)""", on_pre="""ge += w
Apre += dApre
w = clip(w + Apost, 0, gmax)""", on_post="""Apost += dApost
w = clip(w + Apre, 0, gmax)""")
S.connect(j="i // NIN")
S.w = "rand() * gmax"
spk = SpikeMonitor(neu)
res = {}
import resource
def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime
if target == "cython":
    t0 = time.perf_counter(); run(defaultclock.dt); res["compile_s"] = time.perf_counter() - t0
    t0, c0 = time.perf_counter(), time.process_time()
    run(duration * second)
    res["sim_s"], res["cpu_s"] = time.perf_counter() - t0, time.process_time() - c0
else:
    run(duration * second)
    t0 = time.perf_counter()
    device.build(directory=outdir, compile=True, run=False)
    res["compile_s"] = time.perf_counter() - t0
    t0, c0 = time.perf_counter(), children_cpu()
    device.run(directory=outdir, with_output=False)
    res["wall_s"], res["cpu_s"] = time.perf_counter() - t0, children_cpu() - c0
    res["sim_s"] = float(device._last_run_time)
w = np.asarray(S.w)[np.argsort(np.asarray(S.i))] / gmax
res["w"] = w.reshape(batch, NIN).tolist()
res["rate_hz"] = float(spk.num_spikes) / (batch * duration)
print("RESULT" + json.dumps(res))
'''


def run_brian2(target: str, batch: int, duration: float, inhibition: float = 0.0) -> dict:
    with tempfile.TemporaryDirectory() as d:
        script = os.path.join(d, "child.py")
        with open(script, "w") as f:
            f.write(BRIAN2_CHILD)
        p = subprocess.run([sys.executable, script, target, str(batch), str(duration),
                            os.path.join(d, "standalone"), repr(inhibition)],
                           capture_output=True, text=True)
        for line in p.stdout.splitlines():
            if line.startswith("RESULT"):
                return json.loads(line[6:])
        raise RuntimeError(f"Brian2 {target} failed:\n{p.stdout[-2000:]}\n{p.stderr[-4000:]}")


def fractions(w: np.ndarray) -> dict:
    """Per-network fractions of weights near 0 (< 0.1 gmax) and near gmax (> 0.9 gmax)."""
    lo = (w < 0.1).mean(1)
    hi = (w > 0.9).mean(1)
    return {"near0": lo, "nearmax": hi}


def compare(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float, float]:
    """Means, difference and its z-score (Welch, across networks)."""
    se = math.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b)) if len(a) > 1 else float("nan")
    d = float(a.mean() - b.mean())
    return float(a.mean()), float(b.mean()), d, (d / se if se > 0 else float("nan"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="batch 4, 1 s (checks the script)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--duration", type=float, default=10.0, help="biological time (s)")
    ap.add_argument("--no-brian2", action="store_true", help="only time synaptic_fwp")
    ap.add_argument("--json", default=None, help="write the results to this file")
    ap.add_argument("--threads", default="1,2", help="torch thread counts to time (comma list)")
    ap.add_argument("--inhibition", type=float, default=0.0,
                    help="weight (in units of g_L) of 200 inhibitory inputs at 10 Hz onto GABA "
                         "synapses (Song, Miller & Abbott 2000); 0: none, as Brian2's example")
    args = ap.parse_args()
    batch, duration = (4, 1.0) if args.quick else (args.batch, args.duration)
    net_s = batch * duration
    inh = args.inhibition
    print(f"Song-Abbott STDP: {batch} networks x {duration} s, dt = 0.1 ms, {N_IN} inputs at "
          f"{F} Hz each" + (f", {N_INH} inhibitory at {F_IN} Hz (weight {inh} g_L)" if inh else ""))
    res: dict = {"batch": batch, "duration_s": duration, "inhibition": inh}
    run_ours(2, 0.01, 1, inhibition=inh)  # warm-up: imports and first calls are not simulation
    ours = {}
    for th in [int(x) for x in args.threads.split(",")]:
        r = run_ours(batch, duration, th, inhibition=inh)
        ours[th] = r
        print(f"  synaptic_fwp  {th} thread(s): sim {r['sim_s']:8.2f} s wall, "
              f"{r['cpu_s']:8.2f} s CPU   {net_s / r['sim_s']:8.3f} network-s/s   "
              f"post rate {r['rate_hz']:.1f} Hz")
    res["ours"] = {th: {k: v for k, v in r.items() if k != "w"} for th, r in ours.items()}
    best = min(ours.values(), key=lambda r: r["sim_s"])
    if args.no_brian2:
        return
    b2 = {}
    for target in ("cython", "cpp_standalone"):
        r = run_brian2(target, batch, duration, inh)
        b2[target] = r
        print(f"  Brian2 {target:14s}: sim {r['sim_s']:8.2f} s wall, {r['cpu_s']:8.2f} s CPU   "
              f"{net_s / r['sim_s']:8.3f} network-s/s   (compile {r['compile_s']:.1f} s, "
              f"post rate {r['rate_hz']:.1f} Hz)")
    res["brian2"] = {t: {k: v for k, v in r.items() if k != "w"} for t, r in b2.items()}
    best_cpu = min(ours.values(), key=lambda r: r["cpu_s"])
    print("  throughput ratio synaptic_fwp (best of 1/2 threads) / Brian2, by wall-clock and by "
          "CPU time (the machine is shared; CPU time is the load-independent measure):")
    for t, r in b2.items():
        ratio = r["sim_s"] / best["sim_s"]
        ratio_cpu = r["cpu_s"] / best_cpu["cpu_s"]
        target_ratio = 5.0 if t == "cython" else 1.0
        ok = "meets" if ratio >= target_ratio else "MISSES"
        ok_cpu = "meets" if ratio_cpu >= target_ratio else "MISSES"
        print(f"    vs {t:14s}: wall {ratio:6.2f}x ({ok}), CPU {ratio_cpu:6.2f}x ({ok_cpu})  "
              f"[target >= {target_ratio:g}x]")
        res[f"ratio_vs_{t}"] = ratio
        res[f"cpu_ratio_vs_{t}"] = ratio_cpu
    fo = fractions(np.asarray(best["w"]))
    print("  final weights (fraction of synapses, mean over networks; z = difference / SE):")
    for t, r in b2.items():
        fb = fractions(np.asarray(r["w"]))
        for key in ("near0", "nearmax"):
            a, b, d, z = compare(fo[key], fb[key])
            ok = "agree" if abs(z) < 3 else "DIFFER"
            print(f"    {key:8s} ours {a:.3f}  Brian2 {t:14s} {b:.3f}  diff {d:+.3f}  "
                  f"z {z:+.2f} ({ok})")
            res[f"{key}_{t}"] = {"ours": a, "brian2": b, "z": z}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
