"""Chunk-wise parallel scan against the torch recurrence, and against this machine's matmul rate.

One run measures, at B=4, H=4, T=4096, K=V=64, float32 (defaults; see ``--help``):

* for ``delta``, ``gated_delta``, ``gla`` and ``retnet``: the wall time of ``recurrent`` and
  ``chunk`` at 1 and at 2 intra-op threads, best of ``--repeats`` rounds (:func:`rounds`: each
  round runs, rule after rule, the recurrence, a batched 64 x 64 matmul, a 2048 x 2048 matmul
  and the chunk path, at 1 then at 2 threads, so that every function's samples are spread over
  the whole run and see the same machine load as the matmul samples; then ``--chunk-calls - 1``
  more passes over the rules' chunk paths, so that each chunk path gets as many samples per round
  as the 2048 x 2048 product that sets the peak: one next to each of the four rules);
* the speed-up chunk / recurrent, each path at its own best thread count;
* the achieved GFLOP/s of ``chunk``, counting the chunk algorithm's own matrix-product flops
  (:func:`synaptic_fwp.sequence.chunk.chunk_flops`, formula in its docstring), and
* that rate as a fraction of the same run's ``torch.matmul`` rate: of the best rate measured
  anywhere in the run (``%peak``: batched 64 x 64 products, the shape the chunk algorithm is
  made of, ``(B H N, 64, 64) @ (B H N, 64, 64)``, and one 2048 x 2048 product, at both thread
  counts: the machine's attainable rate, the strictest reference and the issue's target), of
  the best 2048 x 2048 rate measured next to that rule (``%mm-il``) and of the best batched
  64 x 64 rate measured next to it (``%bmm64-il``);
* the machine's copy rate next to each rule (a 16 MB ``Tensor.copy_``, the size of one input,
  in GB/s read + written): about half of a chunk call is memory-bound, so a host whose memory
  is slowed by another tenant shows here, beside the fractions it lowers.

Targets (issue 2): speed-up >= 5x for delta and gated_delta, >= 8x for retnet and gla; chunk at
>= 25% of the matmul rate. Times themselves are not reported as results, only ratios against
references measured in the same run.

Usage::

    python benchmarks/scan_chunk.py [--out results.json] [--chunk-sizes 32 64 128]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import time
from collections.abc import Callable

import torch

from synaptic_fwp import rules
from synaptic_fwp.sequence import default_threads, prepare
from synaptic_fwp.sequence.chunk import DEFAULT_CHUNK_SIZE, chunk_flops, scan_chunk
from synaptic_fwp.sequence.recurrent import scan_recurrent

RULES = ("delta", "gated_delta", "gla", "retnet")
TARGET = {"delta": 5.0, "gated_delta": 5.0, "gla": 8.0, "retnet": 8.0}
THREADS = (1, 2)
TARGET_FRACTION = 0.25


def rounds(threads: tuple[int, ...], repeats: int,
           fns: dict[tuple[str, str], Callable[[], object]],
           again: tuple[tuple[str, str], ...] = (), calls: int = 1,
           ) -> dict[tuple[str, str, int], list[list[float]]]:
    """Every timed wall time of every function at every thread count, keyed ``(*key, threads)``:
    one list per timed round, its first sample taken in the round's first pass; torch's thread
    setting is restored afterwards.

    One *round* runs, at each thread count, every function once in the dict's order, then the
    functions in ``again`` ``calls - 1`` more times, in passes over ``again`` in the dict's order
    (so no function runs twice in a row). The first round is a warm-up and is not timed. So the
    samples of each function are spread over the whole run, like the matmul samples that give the
    run's peak rate: a quiet or a busy minute of the machine falls on every function alike, not
    on whichever rule was being timed then (rule by rule, in one window each, a busy minute could
    lower one rule's fraction of a peak measured in another rule's quiet window).
    """
    old = torch.get_num_threads()
    samples: dict[tuple[str, str, int], list[list[float]]] = {}
    passes = [list(fns)] + [[key for key in fns if key in again]] * (calls - 1)
    try:
        for r in range(repeats + 1):
            for th in threads:
                torch.set_num_threads(th)
                if r:
                    for key in fns:
                        samples.setdefault((*key, th), []).append([])
                for keys in passes:
                    for key in keys:
                        t0 = time.perf_counter()
                        fns[key]()
                        dt = time.perf_counter() - t0
                        if r:
                            samples[(*key, th)][-1].append(dt)
            if r:
                print(f"  round {r}/{repeats} done (load {os.getloadavg()[0]:.1f})", flush=True)
        return samples
    finally:
        torch.set_num_threads(old)


def typical_rule(name: str) -> rules.LinearRule:
    """The rule ``name``; RetNet with its constant ``lambda = 1 - 2^-5``."""
    return rules.get(name, decay=1 - 2**-5) if name == "retnet" else rules.get(name)


def typical_gates(rule: rules.LinearRule, B: int, T: int, H: int, K: int,
                  gen: torch.Generator) -> dict[str, torch.Tensor]:
    """Typical per-step gates of ``rule`` (:func:`typical_rule`): eta = sigmoid; Gated DeltaNet
    decay in [0.9, 1); GLA gates sigmoid(x)^(1/16) (Yang et al. 2024)."""
    kw: dict[str, torch.Tensor] = {}
    if "eta" in rule.needs:
        kw["eta"] = torch.sigmoid(torch.randn(B, T, H, generator=gen))
    if "decay" in rule.needs and rule.params.get("decay") is None:
        kw["decay"] = 0.9 + 0.1 * torch.rand(B, T, H, generator=gen)
    if "gate" in rule.needs:
        kw["gate"] = torch.sigmoid(torch.randn(B, T, H, K, generator=gen)) ** (1 / 16)
    return kw


def inputs(name: str, B: int, T: int, H: int, K: int, V: int, seed: int = 0):
    """Typical inputs of each model: L2-normalised keys, :func:`typical_gates`, prepared for
    the backends."""
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(B, T, H, K, generator=gen)
    k = torch.nn.functional.normalize(torch.randn(B, T, H, K, generator=gen), dim=-1)
    v = torch.randn(B, T, H, V, generator=gen)
    rule = typical_rule(name)
    kw = typical_gates(rule, B, T, H, K, gen)
    rule, g, W0 = prepare(q, k, v, rule, **kw)
    return q, k, v, rule, g, W0


def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (Linux), else ``platform.processor()``: the
    host a run was made on changes from session to session, and its numbers with it."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def met(c: dict) -> tuple[bool, bool, bool]:
    """Issue 2's targets for one row: the speed-up, 25% of the run's peak matmul rate and 25% of
    the 2048x2048 rate measured in turn with the rule (unrounded: 24.99% is not met)."""
    return (c["speedup"] >= c["speedup_target"], c["fraction_of_peak_matmul"] >= TARGET_FRACTION,
            c["fraction_of_interleaved_mm2048_best"] >= TARGET_FRACTION)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--B", type=int, default=4)
    ap.add_argument("--H", type=int, default=4)
    ap.add_argument("--T", type=int, default=4096)
    ap.add_argument("--K", type=int, default=64)
    ap.add_argument("--V", type=int, default=64)
    ap.add_argument("--chunk-sizes", type=int, nargs="+", default=None,
                    help="chunk lengths to time (default: the library's, "
                         "synaptic_fwp.sequence.chunk.DEFAULT_CHUNK_SIZE)")
    ap.add_argument("--repeats", type=int, default=10,
                    help="timed rounds (after one warm-up round); each function's time is its best")
    ap.add_argument("--chunk-calls", type=int, default=4,
                    help="timed calls of each chunk path per round and thread count (default 4: "
                         "as many as the 2048x2048 product that sets the peak gets, one next to "
                         "every rule); the first in the round's first pass, the others in later "
                         "passes over the rules")
    ap.add_argument("--rules", nargs="+", default=list(RULES), choices=RULES)
    ap.add_argument("--out", type=str, default=None, help="write the results as JSON here")
    args = ap.parse_args()
    for opt in ("repeats", "chunk_calls"):
        if getattr(args, opt) < 1:
            ap.error(f"--{opt.replace('_', '-')} must be at least 1, got {getattr(args, opt)}")
    B, H, T, K, V = args.B, args.H, args.T, args.K, args.V

    load0 = os.getloadavg()
    res: dict = {
        "config": {"B": B, "H": H, "T": T, "K": K, "V": V, "dtype": "float32",
                   "repeats": args.repeats, "chunk_calls": args.chunk_calls,
                   "torch": torch.__version__,
                   "machine": platform.processor() or platform.machine(), "cpu": cpu_model(),
                   "cpu_count": os.cpu_count(), "loadavg_start": load0},
        "rules": {},
    }
    sizes = args.chunk_sizes or [DEFAULT_CHUNK_SIZE]
    n_mm = B * H * (-(-T // 64))
    ma, mb = torch.randn(n_mm, 64, 64), torch.randn(n_mm, 64, 64)
    A2, B2 = torch.randn(2048, 2048), torch.randn(2048, 2048)
    src, dst = torch.randn(4 * 2**20), torch.empty(4 * 2**20)  # 16 MB, one (4, 4096, 4, 64) input
    copy_bytes = 2 * src.numel() * src.element_size()  # read + written
    bmm_flops, mm_flops = 2 * n_mm * 64**3, 2 * 2048**3
    # per rule, in this order within every round: the recurrence, the copy, the two matmul
    # references and the chunk path at each size (so each rule's references are measured next to
    # it as well).
    # The recurrence comes first: on this machine the call after it runs slower, as after any
    # pause of the big products (gla's chunk path, median of 8 calls in one process: 52 ms after
    # the recurrence, 129 ms after a 0.7 s sleep, 38 ms after another chunk call), so a chunk
    # sample taken right after it would be set against matmul samples taken warm.
    fns: dict[tuple[str, str], Callable[[], object]] = {}
    rule_of = {}
    for name in args.rules:
        q, k, v, rule, g, W0 = inputs(name, B, T, H, K, V)
        rule_of[name] = rule
        fns[name, "rec"] = functools.partial(scan_recurrent, q, k, v, rule, g, W0)
        fns[name, "copy16"] = functools.partial(dst.copy_, src)
        fns[name, "bmm64"] = functools.partial(torch.matmul, ma, mb)
        fns[name, "mm2048"] = functools.partial(torch.matmul, A2, B2)
        for S in sizes:
            fns[name, f"chunk{S}"] = functools.partial(scan_chunk, q, k, v, rule, g, W0,
                                                       chunk_size=S)
    with torch.no_grad():
        samples = rounds(THREADS, args.repeats, fns, calls=args.chunk_calls,
                         again=tuple(key for key in fns if key[1].startswith("chunk")))
    t = {key: min(min(r) for r in rs) for key, rs in samples.items()}  # best of all samples
    t_first = {key: min(r[0] for r in rs) for key, rs in samples.items()}  # of first passes
    peak = max([bmm_flops / x / 1e9 for (_, f, _), x in t.items() if f == "bmm64"]
               + [mm_flops / x / 1e9 for (_, f, _), x in t.items() if f == "mm2048"])
    for name in args.rules:
        rec = {th: t[name, "rec", th] for th in THREADS}
        bmm_rate = {th: bmm_flops / t[name, "bmm64", th] / 1e9 for th in THREADS}
        mm_rate = {th: mm_flops / t[name, "mm2048", th] / 1e9 for th in THREADS}
        copy_rate = {th: copy_bytes / t[name, "copy16", th] / 1e9 for th in THREADS}
        entry = {"recurrent_s": {str(th): x for th, x in rec.items()},
                 "copy16mb_gbps_interleaved": {str(th): x for th, x in copy_rate.items()},
                 "bmm64_gflops_interleaved": {str(th): x for th, x in bmm_rate.items()},
                 "mm2048_gflops_interleaved": {str(th): x for th, x in mm_rate.items()},
                 "chunk": {}}
        for S in sizes:
            ch = {th: t[name, f"chunk{S}", th] for th in THREADS}
            ch1 = {th: t_first[name, f"chunk{S}", th] for th in THREADS}
            th_c = min(ch, key=ch.get)
            th_r = min(rec, key=rec.get)
            flops = chunk_flops(rule_of[name], B, T, H, K, V, S)
            gf = flops / ch[th_c] / 1e9
            c = entry["chunk"][str(S)] = {
                "library_default": S == DEFAULT_CHUNK_SIZE,
                "chunk_s": {str(th): x for th, x in ch.items()},
                "chunk_s_first_pass": {str(th): x for th, x in ch1.items()},
                "best_threads_chunk": th_c,
                "best_threads_recurrent": th_r,
                "speedup": rec[th_r] / ch[th_c],
                "speedup_target": TARGET[name],
                "flops": flops,
                "gflops": gf,
                "fraction_of_peak_matmul": gf / peak,
                # the statistic of runs before --chunk-calls: one chunk sample per round
                "fraction_of_peak_matmul_first_pass": flops / min(ch1.values()) / 1e9 / peak,
                "fraction_of_interleaved_mm2048_best": gf / max(mm_rate.values()),
                "fraction_of_interleaved_bmm64_best": gf / max(bmm_rate.values()),
            }
            c["targets_met"] = dict(zip(("speedup", "peak_25pct", "in_turn_25pct"), met(c),
                                        strict=True))
        res["rules"][name] = entry
    res["config"]["loadavg_end"] = os.getloadavg()
    res["library_threads"] = {  # what synaptic_fwp.scan uses at this size (None: torch's own)
        b: default_threads(b, B * H * V * K) or torch.get_num_threads()
        for b in ("recurrent", "chunk")}
    res["matmul_reference"] = {"peak_gflops": peak, "why": (
        "best torch.matmul rate measured anywhere in this run (batched 64x64 and 2048x2048, "
        "1 and 2 threads, next to every rule in every round): the machine's attainable matmul "
        "rate, the strictest reference; mm2048-il is the best 2048x2048 rate measured next to "
        "that rule's runs")}

    print(f"B={B} H={H} T={T} K={K} V={V} float32 on {res['config']['cpu']}; load average at "
          f"start {load0[0]:.2f}, end {res['config']['loadavg_end'][0]:.2f}")
    copies = [max(e["copy16mb_gbps_interleaved"].values()) for e in res["rules"].values()]
    print(f"16 MB copy next to the rules: best {min(copies):.1f}-{max(copies):.1f} GB/s "
          "(read + written; a slow host memory lowers the chunk path's fractions)")
    print(f"{args.repeats} rounds; peak torch.matmul rate of the whole run {peak:.1f} GFLOP/s "
          "(best 2048x2048 / batched 64x64, 1 and 2 threads, next to every rule in every round)")
    print(f"chunk: best of {args.chunk_calls} calls per round and thread count "
          "(%peak-1st: of the first call of each round only)")
    hdr = (f"{'rule':12s} {'S':>4s} {'rec 1t/2t (s)':>15s} {'chunk 1t/2t (s)':>17s} "
           f"{'speed-up':>9s} {'target':>6s} {'GFLOP/s':>8s} {'%peak':>6s} {'%mm-il':>7s} "
           f"{'%bmm64-il':>9s} {'%peak-1st':>9s}  met: speed-up/25% peak/25% il")
    print(hdr)
    for name, e in res["rules"].items():
        r = e["recurrent_s"]
        for S, c in e["chunk"].items():
            cs = c["chunk_s"]
            star = "*" if c["library_default"] else " "
            print(f"{name:12s} {S + star:>4s} {r['1']:7.3f}/{r['2']:<7.3f} "
                  f"{cs['1']:8.4f}/{cs['2']:<8.4f} "
                  f"{c['speedup']:8.1f}x {c['speedup_target']:5.0f}x {c['gflops']:8.1f} "
                  f"{100 * c['fraction_of_peak_matmul']:5.1f}% "
                  f"{100 * c['fraction_of_interleaved_mm2048_best']:6.1f}% "
                  f"{100 * c['fraction_of_interleaved_bmm64_best']:8.1f}% "
                  f"{100 * c['fraction_of_peak_matmul_first_pass']:8.1f}%  "
                  + "/".join("yes" if ok else "NO" for ok in met(c)))
    lib = res["library_threads"]
    print(f"library default threads at this size: recurrent {lib['recurrent']}, chunk "
          f"{lib['chunk']}; fastest measured: " + ", ".join(
              f"{n} rec {e['chunk'][next(iter(e['chunk']))]['best_threads_recurrent']}"
              f"/chunk {e['chunk'][next(iter(e['chunk']))]['best_threads_chunk']}"
              for n, e in res["rules"].items()))
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(res, fh, indent=2)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
