"""Triton kernels against their roofline bound and against the torch paths, in one run.

For every kernel (the fused recurrent kernel of each rule family and the chunk-wise kernels),
forward and forward + backward, prints:

* ``bound``: the roofline time (``kernels/roofline.py``, derivation in ``docs/roofline.md``:
  H100 HBM 3.35 TB/s, tensor-core and CUDA-core peaks) divided by the measured time, i.e. the
  achieved fraction of the bound;
* ``x rec``, ``x chunk``: speed-up over the torch recurrence (``scan_recurrent``, the oracle)
  and over the torch chunk-wise path (``scan_chunk``), measured in the same run on the same
  device;
* ``err``: the largest difference from the torch recurrence, divided by its largest magnitude.

Only ratios are printed, never bare times (DESIGN.md). On a GPU (default: B=8, H=8, T=2048,
K=V=64, bfloat16) times are ``triton.testing.do_bench`` medians. With ``--interpret`` the script
sets ``TRITON_INTERPRET=1`` before importing Triton and runs end to end on the CPU with tiny
sizes (B=1, H=2, T=20, K=V=8, float32): the ratios then only show that everything runs (the
interpreter is orders of magnitude slower than a GPU) and the bound column is not meaningful.

Usage::

    python benchmarks/gpu_kernels.py                 # on a machine with a CUDA GPU
    python benchmarks/gpu_kernels.py --interpret     # anywhere, tiny sizes, CPU interpreter
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable

CASES = [  # (rule, mode)
    ("hebbian", "recurrent"), ("mamba2", "recurrent"), ("gla", "recurrent"),
    ("gla_table1", "recurrent"), ("delta", "recurrent"), ("gated_delta", "recurrent"),
    ("oja", "recurrent"), ("bcm", "recurrent"),
    ("hebbian", "chunk"), ("mamba2", "chunk"), ("mlstm", "chunk"), ("gla", "chunk"),
    ("gla_table1", "chunk"), ("delta", "chunk"), ("gated_delta", "chunk"),
]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--interpret", action="store_true",
                   help="run under TRITON_INTERPRET=1 on the CPU with tiny sizes")
    p.add_argument("--B", type=int)
    p.add_argument("--H", type=int)
    p.add_argument("--T", type=int)
    p.add_argument("--K", type=int)
    p.add_argument("--V", type=int)
    p.add_argument("--dtype", choices=["float32", "float16", "bfloat16"])
    p.add_argument("--chunk-size", type=int, default=64)
    p.add_argument("--rules", nargs="*",
                   help="restrict to these rule names ('stdp' for the spiking projection)")
    p.add_argument("--no-backward", action="store_true", help="forward only")
    a = p.parse_args(argv)
    if a.interpret:
        os.environ["TRITON_INTERPRET"] = "1"
    import torch
    from synaptic_fwp.kernels import scan_triton
    from synaptic_fwp.kernels.launch import INTERPRETED, kernel_plan
    from synaptic_fwp.kernels.roofline import bound_seconds, kernel_cost

    from synaptic_fwp import rules
    from synaptic_fwp.sequence import prepare
    from synaptic_fwp.sequence.chunk import scan_chunk
    from synaptic_fwp.sequence.recurrent import scan_recurrent

    if a.interpret:
        dev, defaults = "cpu", dict(B=1, H=2, T=20, K=8, V=8, dtype="float32")
        torch.set_num_threads(1)
    else:
        if not torch.cuda.is_available():
            sys.exit("no CUDA device: run with --interpret to check the script on the CPU")
        if INTERPRETED:
            sys.exit("TRITON_INTERPRET=1 is set: unset it to benchmark on the GPU")
        dev, defaults = "cuda", dict(B=8, H=8, T=2048, K=64, V=64, dtype="bfloat16")
    cfg = {n: getattr(a, n) if getattr(a, n) is not None else d for n, d in defaults.items()}
    B, H, T, K, V = (cfg[n] for n in "BHTKV")
    dtype = getattr(torch, cfg["dtype"])
    s = torch.finfo(dtype).bits // 8

    def timeit(fn: Callable[[], object]) -> float:
        if dev == "cuda":
            import triton.testing

            return triton.testing.do_bench(fn, warmup=5, rep=50)
        fn()  # warm-up (the interpreter has no compile step, torch has caches)
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0

    gen = torch.Generator(device="cpu").manual_seed(0)

    def inputs(rule):
        def r(*shape, lo=None):
            x = torch.rand(*shape, generator=gen) if lo is not None else torch.randn(
                *shape, generator=gen)
            if lo is not None:
                x = lo + (1 - lo) * x
            return x.to(dev, dtype)

        k = torch.nn.functional.normalize(torch.randn(B, T, H, K, generator=gen), dim=-1)
        x = dict(q=r(B, T, H, K), k=k.to(dev, dtype), v=r(B, T, H, V))
        kw = {}
        if "eta" in rule.needs:
            kw["eta"] = r(B, T, H, lo=0.1)
        if "decay" in rule.needs:
            kw["decay"] = r(B, T, H, lo=0.9)
        if "gate" in rule.needs:
            kw["gate"] = r(B, T, H, V if rule.decay == "post" else K, lo=0.9)
        return x, kw

    print(f"device={dev} dtype={cfg['dtype']} B={B} H={H} T={T} K={K} V={V} "
          f"chunk={a.chunk_size}" + ("  [interpreter: ratios only show the script runs]"
                                     if a.interpret else ""))
    print(f"{'rule':<12}{'mode':<10}{'pass':<9}{'limit':<9}{'bound':>8}{'x rec':>9}"
          f"{'x chunk':>9}{'err':>10}")
    for name, mode in CASES:
        if a.rules and name not in a.rules:
            continue
        rule = rules.get(name)
        x, kw = inputs(rule)
        r_, g, W0 = prepare(x["q"], x["k"], x["v"], rule, **kw)
        plan = kernel_plan(r_, K, V, T, 0, a.chunk_size, mode)
        spec = dict(decay=getattr(r_, "decay", "none"), correction=r_.correction,
                    write=getattr(r_, "write", "eta"), K=K, V=V, mode=mode, s=s,
                    bt=plan.bt, seg=plan.seg)
        has_chunk = getattr(r_, "has_chunk_form", False)

        def tri(q, k, v, g, W0, r_=r_, mode=mode):
            return scan_triton(q, k, v, r_, g, W0, 0, a.chunk_size, mode=mode)

        def rec(q, k, v, g, W0, r_=r_):
            return scan_recurrent(q, k, v, r_, g, W0)

        def chk(q, k, v, g, W0, r_=r_):
            return scan_chunk(q, k, v, r_, g, W0, chunk_size=a.chunk_size)

        with torch.no_grad():
            y_t = tri(x["q"], x["k"], x["v"], g, W0)[0].double()
            y_r = rec(x["q"].double(), x["k"].double(), x["v"].double(),
                      {n: (t.double() if t is not None else None) for n, t in g.items()},
                      W0.double())[0]
        err = float((y_t - y_r).abs().max() / y_r.abs().max())
        passes = ["fwd"] if a.no_backward else ["fwd", "fwd+bwd"]
        for pas in passes:
            def job(fn, pas=pas, x=x, g=g, W0=W0):
                if pas == "fwd":
                    def run():
                        with torch.no_grad():
                            fn(x["q"], x["k"], x["v"], g, W0)
                    return run
                leaves = {n: t.detach().clone().requires_grad_(True) for n, t in x.items()}
                gl = {n: (t.detach().clone().requires_grad_(True) if t is not None else None)
                      for n, t in g.items()}

                def run():
                    y, W, _ = fn(leaves["q"], leaves["k"], leaves["v"], gl, W0)
                    (y.float().sum() + W.float().sum()).backward()
                return run

            t_tri = timeit(job(tri))
            t_rec = timeit(job(rec))
            t_chk = timeit(job(chk)) if has_chunk else float("nan")
            c = kernel_cost(**spec, backward=False, bcm_output=False)
            bound = bound_seconds(c, B, T, H)
            if pas != "fwd":
                bound += bound_seconds(kernel_cost(**spec, backward=True), B, T, H)
            t_tri_s = t_tri / 1e3 if dev == "cuda" else t_tri  # do_bench gives milliseconds
            t_rec_s = t_rec / 1e3 if dev == "cuda" else t_rec
            t_chk_s = t_chk / 1e3 if dev == "cuda" else t_chk
            print(f"{name:<12}{mode:<10}{pas:<9}{c.limiter():<9}{bound / t_tri_s:>8.3g}"
                  f"{t_rec_s / t_tri_s:>9.3g}{t_chk_s / t_tri_s:>9.3g}{err:>10.1e}")
    if not a.rules or "stdp" in a.rules:
        for neuron in ("lif", "adex", "lif_gaba", "lif_istdp"):
            spiking(dev, timeit, a.interpret, neuron)


def spiking(dev: str, timeit: Callable[[Callable[[], object]], float], interpret: bool,
            neuron: str = "lif") -> None:
    """The fused spiking projection (Poisson -> LIF or AdEx with triplet STDP; ``lif_gaba``:
    plus a static GABA input of ``n_pre / 4`` Poisson sources, Song, Miller & Abbott 2000's
    feed-forward inhibition; ``lif_istdp``: the same inhibition plastic by Vogels et al. 2011's
    inhibitory STDP) against the engine's torch path on the same device: speed-up, spikes equal,
    fraction of the roofline bound."""
    import torch
    from synaptic_fwp.kernels.roofline import spiking_cost
    from synaptic_fwp.kernels.spiking import run_lif_stdp

    from synaptic_fwp.engine import Network
    from synaptic_fwp.inputs import PoissonInput
    from synaptic_fwp.neurons import AdExPopulation, LIFPopulation
    from synaptic_fwp.plasticity import InhibitorySTDP, TripletSTDP

    B, n_pre, n_post, steps = (1, 8, 4, 20) if interpret else (1024, 256, 64, 2000)
    dt, w_max = 1e-4, 4e-9
    dtype = torch.float32
    rule = TripletSTDP.from_table("visual_cortex", "all_to_all", bounds="hard", w_max=w_max)
    gen = torch.Generator().manual_seed(0)
    W0 = (0.5 * w_max * torch.rand(B, n_post, n_pre, generator=gen)).to(dev, dtype)
    n_i = n_pre // 4 if neuron in ("lif_gaba", "lif_istdp") else 0
    rule_i = InhibitorySTDP(eta=1e-11) if neuron == "lif_istdp" else None
    Wi = (1e-9 * torch.rand(n_post, max(n_i, 1), generator=gen)).to(dev, dtype)

    def build():
        net = Network(dt=dt, batch=B, seed=1, device=dev, dtype=dtype)
        inp = net.add(PoissonInput(n_pre, rate=20.0, name="inp"))
        if neuron == "adex":  # regular spiking, held just below rheobase
            pop = AdExPopulation(n_post, ampa_drive=60e-3, I_ext=0.5e-9, name="lif")
        else:
            pop = LIFPopulation(n_post, ampa_drive=60e-3, name="lif")
        lif = net.add(pop)
        net.connect(inp, lif, W0, rule, name="S")
        if n_i:
            inh = net.add(PoissonInput(n_i, rate=10.0, name="inh"))
            net.connect(inh, lif, Wi, rule_i, name="I", target="gaba")
        return net, inp, lif

    net, inp, lif = build()
    ev = inp.events(inp.init_state(), 0, steps)
    pre = torch.zeros(B, steps, n_pre, dtype=torch.bool, device=dev)
    pre[ev.b.to(dev), ev.step.to(dev), ev.i.to(dev)] = True
    gaba = None
    if n_i:
        inh = net.inputs["inh"]
        ev = inh.events(inh.init_state(), 0, steps)
        pre_i = torch.zeros(B, steps, n_i, dtype=torch.bool, device=dev)
        pre_i[ev.b.to(dev), ev.step.to(dev), ev.i.to(dev)] = True
        gaba = (pre_i, Wi, rule_i)
    ds = net.run(steps * dt, record=["lif.spikes"], progress=False)
    ref = torch.from_numpy(ds["lif_spikes"].values).bool().to(dev)
    out = run_lif_stdp(pre, W0, rule, lif, dt, gaba=gaba)
    same = bool(torch.equal(out["spikes"], ref))

    def eng():
        n2, _, _ = build()
        n2.run(steps * dt, progress=False)

    t_eng = timeit(eng)
    t_ker = timeit(lambda: run_lif_stdp(pre, W0, rule, lif, dt, gaba=gaba))
    scale = 1e-3 if dev == "cuda" else 1.0
    bound = spiking_cost(n_pre, n_post, n_gaba=n_i, gaba_plastic=rule_i is not None).bound(
        B * steps)
    print(f"\nspiking projection ({neuron}) B={B} n_pre={n_pre} n_post={n_post} steps={steps} "
          "float32: "
          f"bound fraction {bound / (t_ker * scale):.3g}, x engine {t_eng / t_ker:.3g}, "
          f"spikes equal to the engine: {same} ({int(ref.sum())} post spikes)")


if __name__ == "__main__":
    main()
