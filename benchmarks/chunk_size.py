"""Which chunk length is fastest, by key and value size; and how the library's default fares.

The chunk algorithm does ``2 S (K + V)`` flops per step inside its chunks and ``4 K V`` between
them, plus a few ops per chunk whatever its size, so the best chunk length ``S`` depends on the
shape: with few synapses per neuron (small ``K``, ``V``: a common case for a neuroscience model
of many small instances) ``S = 64`` spends most of its time on ``S x S`` products.
:func:`synaptic_fwp.sequence.chunk.default_chunk_size` picks ``S`` near ``max(K, V)``; this
script checks that choice against every other.

For each shape (``B H K = 4096`` by default, ``H = 4``, ``T = 512``, ``K = V`` from 4 to 128,
plus two shapes with ``K != V``) and each rule (``delta``, ``gated_delta``, ``gla``, ``retnet``,
``hebbian``; the typical gates of ``scan_chunk.py``), it times ``synaptic_fwp.scan`` as a user
calls it: the recurrence and the chunk path at ``S`` = 16, 32, 64 and 128, in rounds (every
function once per round, in turn, so that all see the same machine load), best of
``--repeats`` rounds after a warm-up; with ``--grad``, the forward and backward pass of a loss
on ``y`` and ``W_T`` (``q``, ``k``, ``v`` require gradients: training slow weights). Reported,
per row: each chunk length's time over the fastest one's, the library default's, and the
recurrence's time over the default's (the speed-up ``backend="auto"`` gives). Only ratios
within a row are results, never times.

Usage::

    python benchmarks/chunk_size.py [--grad] [--repeats 3] [--out chunk_size.json]
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import time

import torch
from scan_chunk import typical_gates, typical_rule  # this folder: the same typical inputs

import synaptic_fwp as sf
from synaptic_fwp.sequence.chunk import default_chunk_size

RULES = ("delta", "gated_delta", "gla", "retnet", "hebbian")
SIZES = (16, 32, 64, 128)
SHAPES = tuple((4096 // (4 * K), 4, 512, K, K) for K in (4, 8, 16, 32, 64, 128)) + (
    (16, 4, 512, 64, 8), (16, 4, 512, 8, 64))


def time_shape(B: int, H: int, T: int, K: int, V: int, names: list[str], grad: bool,
               repeats: int) -> dict[tuple[str, object], float]:
    """Best time of the recurrence (key ``(rule, "rec")``) and of the chunk path at every size
    (``(rule, S)``) over ``repeats`` rounds after a warm-up, every function once per round."""
    gen = torch.Generator().manual_seed(0)
    q = torch.randn(B, T, H, K, generator=gen)
    k = torch.nn.functional.normalize(torch.randn(B, T, H, K, generator=gen), dim=-1)
    v = torch.randn(B, T, H, V, generator=gen)
    if grad:
        q, k, v = (x.requires_grad_() for x in (q, k, v))

    def call(name: str, kw: dict, **how: object) -> None:
        y, W = sf.scan(q, k, v, typical_rule(name), **how, **kw)
        if grad:
            (y.square().sum() + W.sum()).backward()

    fns = {}
    for name in names:
        kw = typical_gates(typical_rule(name), B, T, H, K, gen)
        fns[name, "rec"] = functools.partial(call, name, kw, backend="recurrent")
        for S in SIZES:
            fns[name, S] = functools.partial(call, name, kw, backend="chunk", chunk_size=S)
    best = dict.fromkeys(fns, math.inf)
    for r in range(repeats + 1):
        for key, f in fns.items():
            t0 = time.perf_counter()
            f()
            dt = time.perf_counter() - t0
            if r:
                best[key] = min(best[key], dt)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3, help="timed rounds after one warm-up")
    ap.add_argument("--rules", nargs="+", default=list(RULES), choices=RULES)
    ap.add_argument("--T", type=int, default=512, help="sequence length (default 512)")
    ap.add_argument("--K", type=int, nargs="+", default=None,
                    help="only the shapes with K = V among these (default: every shape)")
    ap.add_argument("--grad", action="store_true",
                    help="time forward + backward (q, k, v require gradients)")
    ap.add_argument("--out", type=str, default=None, help="write the results as JSON here")
    args = ap.parse_args()
    for opt in ("repeats", "T"):
        if getattr(args, opt) < 1:
            ap.error(f"--{opt} must be at least 1, got {getattr(args, opt)}")

    print(f"{'forward + backward' if args.grad else 'forward, no autograd'}; "
          f"load average at start {os.getloadavg()[0]:.2f}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads (the library's own choices inside each call)")
    print(f"{'B':>5} {'H':>2} {'T':>4} {'K':>4} {'V':>4} {'rule':12} "
          + " ".join(f"{'S=' + str(S):>6}" for S in SIZES)
          + f" {'default':>8} {'default/best':>12} {'rec/default':>11}")
    shapes = [s for s in SHAPES if args.K is None or (s[3] == s[4] and s[3] in args.K)]
    rows = []
    for B, H, T, K, V in shapes:
        T = args.T
        best = time_shape(B, H, T, K, V, args.rules, args.grad, args.repeats)
        for name in args.rules:
            S0 = default_chunk_size(typical_rule(name), K, V, args.grad)
            times = {S: best[name, S] for S in SIZES}
            fastest = min(times.values())
            row = {"B": B, "H": H, "T": T, "K": K, "V": V, "rule": name, "default": S0,
                   "chunk_over_fastest": {S: t / fastest for S, t in times.items()},
                   "fastest": min(times, key=times.get),
                   "default_over_fastest": times[S0] / fastest,
                   "recurrent_over_default": best[name, "rec"] / times[S0]}
            rows.append(row)
            print(f"{B:5d} {H:2d} {T:4d} {K:4d} {V:4d} {name:12} "
                  + " ".join(f"{x:6.2f}" for x in row["chunk_over_fastest"].values())
                  + f" {S0:8d} {row['default_over_fastest']:12.2f}"
                  f" {row['recurrent_over_default']:11.1f}", flush=True)
    worst = max(rows, key=lambda r: r["default_over_fastest"])
    at64 = [r["chunk_over_fastest"][64] / r["default_over_fastest"] for r in rows]
    print(f"default within {100 * (worst['default_over_fastest'] - 1):.0f}% of the fastest in "
          f"every row (worst: {worst['rule']} K={worst['K']} V={worst['V']}); S=64 everywhere "
          f"would take up to {max(at64):.2f}x the default's time (geometric mean "
          f"{math.exp(sum(map(math.log, at64)) / len(at64)):.2f}x)")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump({"sizes": SIZES, "grad": args.grad, "rows": rows,
                       "loadavg_end": os.getloadavg()}, fh, indent=1)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
