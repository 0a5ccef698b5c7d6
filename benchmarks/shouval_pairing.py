"""Shouval-Bear-Cooper 2002 on the Sjostrom 2001 pairing grid (60 pairs, 0.1/10/20/40/50 Hz,
dt = +-10 ms) for a population of parameter sets: the adaptive scheme (default) against the
fixed-step ``substep`` scheme, measured in the same run (ratios, not bare times matter: the
machine is shared).

    python benchmarks/shouval_pairing.py [--population 30] [--skip-substep]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from synaptic_fwp.plasticity import ShouvalCalcium
from synaptic_fwp.protocols.pairing import pairing

FREQS = [0.1, 10.0, 20.0, 40.0, 50.0]


def grid(rule: ShouvalCalcium, n_pairs: int = 60):
    t, c = time.perf_counter(), time.process_time()
    ds = pairing(rule, dt=[-0.01, 0.01], freq=FREQS, n_pairs=n_pairs, w0=0.25)
    return ds.dw.values, time.perf_counter() - t, time.process_time() - c


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--population", type=int, default=30)
    p.add_argument("--n-pairs", type=int, default=60)
    p.add_argument("--skip-substep", action="store_true")
    a = p.parse_args()
    torch.set_num_threads(1)
    P = a.population
    f64 = torch.float64
    free = dict(alpha1=torch.linspace(0.3, 0.4, P, dtype=f64),
                alpha2=torch.linspace(0.5, 0.6, P, dtype=f64))
    rows = {}
    for label, kw in [("adaptive rtol=1e-6 (fit)", dict(rtol=1e-6, atol=1e-9)),
                      ("adaptive rtol=1e-8 (default)", {}),
                      ("substep (previous default)", dict(scheme="substep"))]:
        if a.skip_substep and label.startswith("substep"):
            continue
        dw, wall, cpu = grid(ShouvalCalcium.from_table(**kw, **free), a.n_pairs)
        rows[label] = (dw, wall, cpu)
        print(f"{label:30s} wall {wall:8.2f} s  cpu {cpu:8.2f} s", flush=True)
    ref_label = "adaptive rtol=1e-8 (default)"
    ref = rows[ref_label][0]
    for label, (dw, wall, cpu) in rows.items():
        print(f"{label:30s} cpu / default {cpu / rows[ref_label][2]:7.2f}  "
              f"wall / default {wall / rows[ref_label][1]:7.2f}  "
              f"max |dw - default| {np.abs(dw - ref).max():.2e}")


if __name__ == "__main__":
    main()
