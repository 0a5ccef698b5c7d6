"""Does ``Network.run(method="auto")`` take the faster torch path? Feed-forward LIF networks.

The event-window path (``method="window"``) solves the linear dynamics between postsynaptic
spikes in closed form; each postsynaptic spike of an instance (of any of its neurons) ends a
segment of a window and costs a round of the window's work. The step path (``"step"``)
advances every ``dt``. ``"auto"`` starts on the window path and goes on with the step path when
the first window's segments are shorter than ``synaptic_fwp.engine.WINDOW_MIN_STEPS`` steps.

Workloads (pair STDP, Song, Miller & Abbott 2000, float32, 8 instances, 0.2 s, records every
10 ms), from rare to frequent postsynaptic spikes per instance:

* ``one``: 1,000 Poisson inputs at 10 Hz onto 1 LIF neuron (~150 Hz);
* ``ten``: the same inputs onto 10 LIF neurons (~150 Hz each);
* ``hundred``: onto 100 LIF neurons (~80 Hz each).

For each, the wall time of ``step``, ``window`` and ``auto`` (best of ``--repeats``, each run on
a fresh network after a short warm-up run of its own), and ``auto``'s time over the faster of the
other two (1.0: ``auto`` chose well; its first window is the price of finding out).

Run: ``python benchmarks/engine_auto.py [--threads 1] [--repeats 2] [--connectivity 1]``
(``--connectivity 0.2``: a connection mask keeps 20% of the synapses, weights scaled by 5).
"""

from __future__ import annotations

import argparse
import time

import torch

from synaptic_fwp.engine import Network
from synaptic_fwp.inputs import PoissonInput
from synaptic_fwp.neurons import LIFPopulation
from synaptic_fwp.plasticity import PairSTDP

WORKLOADS = {"one": (1, 0.5e-9), "ten": (10, 0.3e-9), "hundred": (100, 0.2e-9)}
B, N_IN, DURATION, EVERY = 8, 1000, 0.2, 0.01


def build(n_post: int, w: float, connectivity: float = 1.0) -> Network:
    """The workload's network; with ``connectivity < 1`` a connection mask keeps that fraction
    of the synapses (each instance its own draw), their weights scaled by ``1 / connectivity``
    so that the mean drive stays the same."""
    net = Network(dt=1e-4, batch=B, seed=0)
    inp = net.add(PoissonInput(N_IN, rate=10.0, name="inp"))
    out = net.add(LIFPopulation(n_post, C=200e-12, g_L=10e-9, E_L=-70e-3, V_th=-54e-3,
                                V_reset=-60e-3, t_ref=2e-3, name="out"))
    g = torch.Generator().manual_seed(0)
    w = w / connectivity
    W0 = w * torch.rand(B, n_post, N_IN, generator=g)
    mask = None if connectivity == 1.0 else torch.rand(B, n_post, N_IN, generator=g) < connectivity
    net.connect(inp, out, W0, PairSTDP.song2000(w_max=2 * w), mask=mask, name="S")
    return net


def timed(n_post: int, w: float, method: str, connectivity: float = 1.0) -> tuple[float, float]:
    """Wall time of a 0.2 s run (after a 10 ms warm-up run on another network) and the mean
    output rate (Hz)."""
    build(n_post, w, connectivity).run(0.01, record=["out.spikes"], every=0.01, progress=False,
                                       method=method)
    net = build(n_post, w, connectivity)
    t0 = time.perf_counter()
    ds = net.run(DURATION, record=["out.spikes"], every=EVERY, progress=False, method=method)
    return time.perf_counter() - t0, float(ds["out_spikes"].sum()) / B / n_post / DURATION


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    ap.add_argument("--repeats", type=int, default=2, help="runs of each; the best is kept")
    ap.add_argument("--connectivity", type=float, default=1.0,
                    help="fraction of the input synapses that exist (a connection mask below 1)")
    args = ap.parse_args()
    if args.threads < 1 or args.repeats < 1:
        ap.error("--threads and --repeats must be at least 1")
    if not 0 < args.connectivity <= 1:
        ap.error(f"--connectivity must be in (0, 1], got {args.connectivity}")
    torch.set_num_threads(args.threads)
    print(f"{B} instances x {DURATION} s, {N_IN} Poisson inputs at 10 Hz, pair STDP, float32, "
          f"connectivity {args.connectivity:g}, {args.threads} thread(s), best of {args.repeats}")
    print(f"{'workload':9s} {'rate (Hz)':>9s} {'step (s)':>9s} {'window (s)':>10s} "
          f"{'auto (s)':>9s} {'auto / best':>11s}")
    for name, (n_post, w) in WORKLOADS.items():
        t = {}
        rate = 0.0
        for method in ("step", "window", "auto"):
            runs = [timed(n_post, w, method, args.connectivity) for _ in range(args.repeats)]
            t[method] = min(r[0] for r in runs)
            rate = runs[0][1]
        best = min(t["step"], t["window"])
        print(f"{name:9s} {rate:9.1f} {t['step']:9.2f} {t['window']:10.2f} {t['auto']:9.2f} "
              f"{t['auto'] / best:11.2f}")


if __name__ == "__main__":
    main()
