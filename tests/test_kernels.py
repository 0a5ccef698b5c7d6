"""The Triton kernels equal the torch oracle (``scan_recurrent`` in float64), under Triton's CPU
interpreter (``TRITON_INTERPRET=1``): outputs, final state, strided states and the gradients
with respect to ``q, k, v``, the gates and ``W_0``, for every rule of the catalogue, both kernel
families (fused recurrent, chunk-wise), odd sizes (K=5, V=3), T not a multiple of the chunk,
random initial states, H > 1 and several V blocks.

Tolerances (error divided by the largest magnitude of the reference): float32 1e-4; float16
2e-3 and bfloat16 1.6e-2 (about four units in the last place of the output format; the kernels
compute in float32 and round only on the final store, and the oracle runs on the same rounded
inputs in float64).

The interpreter is chosen when Triton decorates the kernels, so this module sets
``TRITON_INTERPRET=1`` only while it imports them and, through a module fixture, while its own
tests run; the variable is restored in between so it does not leak into other test files.
"""

from __future__ import annotations

import os

import pytest
import torch
from _triton_interp import import_interpreted, interpreter  # noqa: F401

from synaptic_fwp import rules
from synaptic_fwp.sequence import prepare, scan
from synaptic_fwp.sequence.recurrent import scan_recurrent

_mods, _SKIP = import_interpreted("synaptic_fwp.kernels.launch", "synaptic_fwp.kernels")
if _SKIP:
    pytest.skip(_SKIP, allow_module_level=True)
launch, _kernels = _mods
scan_triton_public = _kernels.scan_triton


TOL32 = 1e-4
RULES = rules.names() + ["bcm_output", "retnet_const"]


def _rule(name: str):
    if name == "bcm_output":
        return rules.get("bcm", drive="output", theta_decay=0.8, theta0=0.1)
    if name == "retnet_const":
        return rules.get("retnet", decay=0.9)
    if name == "bcm":
        return rules.get("bcm", theta_decay=0.7, theta0=0.2)
    return rules.get(name)


def _inputs(rule, B, T, H, K, V, seed, dtype=torch.float64, zero_decay=False):
    gen = torch.Generator().manual_seed(seed)

    def r(*s):
        return torch.randn(*s, generator=gen, dtype=torch.float64)

    def u(*s, lo=0.5):
        return lo + (1 - lo) * torch.rand(*s, generator=gen, dtype=torch.float64)

    k = r(B, T, H, K)
    k = k / k.norm(dim=-1, keepdim=True)  # keeps the delta rule's transition contractive
    x = {"q": r(B, T, H, K), "k": k, "v": r(B, T, H, V), "W0": 0.5 * r(B, H, V, K)}
    if "eta" in rule.needs:
        x["eta"] = u(B, T, H, lo=0.1)
    if "decay" in rule.needs and getattr(rule, "constant_decay", None) is None:
        lam = u(B, T, H)
        if zero_decay:
            lam[:, ::5] = 0.0
            lam[:, 1::7] = 1.0
        x["decay"] = lam
    if "gate" in rule.needs:
        x["gate"] = u(B, T, H, V if rule.decay == "post" else K)
    return {n: t.to(dtype) for n, t in x.items()}


def _run(fn, rule, x, stride, grad=True):
    """Outputs of ``fn`` and the gradients of a random linear functional of all of them."""
    leaves = {n: t.detach().clone().requires_grad_(grad) for n, t in x.items()}
    gates = {n: leaves[n] for n in ("eta", "decay", "gate") if n in leaves}
    r, g, W0 = prepare(leaves["q"], leaves["k"], leaves["v"], rule,
                       initial_state=leaves["W0"], **gates)
    y, W, st = fn(leaves["q"], leaves["k"], leaves["v"], r, g, W0, stride)
    out = {"y": y.detach().double(), "W": W.detach().double()}
    if stride:
        out["states"] = st.detach().double()
    if grad:
        gen = torch.Generator().manual_seed(123)
        loss = sum((t.double() * torch.randn(t.shape, generator=gen, dtype=torch.float64)).sum()
                   for t in ((y, W, st) if stride else (y, W)))
        loss.backward()
        for n, t in leaves.items():
            out["d" + n] = (t.grad if t.grad is not None else torch.zeros_like(t)).double()
    return out


def _compare(got, ref, tol, what):
    assert got.keys() == ref.keys(), what
    for n in ref:
        scale = ref[n].abs().max().clamp_min(1e-12)
        err = float((got[n] - ref[n]).abs().max() / scale)
        assert err <= tol, f"{what}: {n} normalised error {err:.2e} > {tol:.0e}"


def _oracle(x, rule, stride, grad=True):
    return _run(lambda *a: scan_recurrent(*a), rule, x, stride, grad)


def _kernel(mode, chunk_size, block_v=None):
    def fn(q, k, v, r, g, W0, stride):
        return launch.scan_triton(q, k, v, r, g, W0, stride, chunk_size, mode=mode,
                                  block_v=block_v)
    return fn


@pytest.mark.parametrize("name", RULES)
def test_recurrent_kernel_equals_oracle(name):
    """Fused recurrent kernel, float32: T=11 with backward checkpoints every 4 steps (3
    segments, the last partial), states every 3 steps, H=2, K=5, V=3, random W0."""
    rule = _rule(name)
    x = _inputs(rule, 1, 11, 2, 5, 3, seed=len(name))
    got = _run(_kernel("recurrent", 4), rule, {n: t.float() for n, t in x.items()}, 3)
    _compare(got, _oracle(x, rule, 3), TOL32, f"{name} recurrent")


CHUNK_RULES = [n for n in RULES if launch.has_chunk_kernel(_rule(n))]


def test_chunk_kernels_cover_the_catalogue():
    assert set(CHUNK_RULES) == set(RULES) - {"oja", "bcm", "bcm_output"}


@pytest.mark.parametrize("name", CHUNK_RULES)
def test_chunk_kernel_equals_oracle(name):
    """Chunk-wise kernel, float32: T=20 (chunks of 16, the last one partial), states every 16
    steps, H=2, K=5, V=3, random W0; gradients through the recurrent backward kernel."""
    rule = _rule(name)
    x = _inputs(rule, 1, 20, 2, 5, 3, seed=len(name) + 1)
    got = _run(_kernel("chunk", 16), rule, {n: t.float() for n, t in x.items()}, 16)
    _compare(got, _oracle(x, rule, 16), TOL32, f"{name} chunk")


@pytest.mark.parametrize("name", ["gated_delta_table1", "gated_rfa"])
def test_chunk_kernel_long_chunks(name):
    """Chunks of 32 steps (T=40: the last one partial): the checkpoints written every 16 steps
    inside a chunk (for the backward) come from the chunk's own products."""
    rule = _rule(name)
    x = _inputs(rule, 1, 40, 1, 5, 3, seed=4)
    got = _run(_kernel("chunk", 32), rule, {n: t.float() for n, t in x.items()}, 32)
    _compare(got, _oracle(x, rule, 32), TOL32, f"{name} chunk 32")


@pytest.mark.parametrize(
    "name,mode,block_v",
    [("gated_delta", "recurrent", 8), ("gla_table1", "recurrent", 8), ("gla", "chunk", 16),
     ("gla_table1", "chunk", 16), ("gated_delta_table1", "chunk", 16),
     ("bcm_output", "recurrent", 8)],
)
def test_several_value_blocks(name, mode, block_v):
    """V=20 split over V blocks (the last one masked): partial sums across blocks of dq, dk,
    deta, dlambda and the pre-side gate gradient."""
    rule = _rule(name)
    x = _inputs(rule, 1, 17 if mode == "chunk" else 6, 1, 6, 20, seed=7)
    got = _run(_kernel(mode, 16 if mode == "chunk" else 4, block_v), rule,
               {n: t.float() for n, t in x.items()}, 0)
    _compare(got, _oracle(x, rule, 0), TOL32, f"{name} {mode} block_v={block_v}")


@pytest.mark.parametrize("mode", ["recurrent", "chunk"])
def test_zero_and_unit_decay(mode):
    """lambda_t = 0 (a full reset) and 1 inside the sequence (the chunk kernel takes log 0 as
    log 1e-30); B = H = 2."""
    rule = rules.get("gated_delta")
    x = _inputs(rule, 2, 20, 2, 5, 3, seed=3, zero_decay=True)
    got = _run(_kernel(mode, 16), rule, {n: t.float() for n, t in x.items()}, 0)
    _compare(got, _oracle(x, rule, 0), TOL32, f"gated_delta {mode} with lambda in {{0, 1}}")


@pytest.mark.parametrize(
    "dtype,tol", [(torch.float16, 2e-3), (torch.bfloat16, 1.6e-2)], ids=["fp16", "bf16"]
)
@pytest.mark.parametrize("name,mode", [("gated_delta", "recurrent"), ("gated_delta", "chunk"),
                                       ("gla", "chunk")])
def test_half_precision_inputs(dtype, tol, name, mode):
    """16-bit inputs, float32 accumulation: outputs and gradients equal to the oracle on the same
    rounded inputs up to the rounding of the 16-bit outputs (and of the 16-bit output
    gradients fed back)."""
    rule = _rule(name)
    x = {n: t.to(dtype) for n, t in _inputs(rule, 1, 20, 2, 5, 3, seed=11).items()}
    got = _run(_kernel(mode, 16), rule, x, 0)
    ref = _oracle({n: t.double() for n, t in x.items()}, rule, 0)
    _compare(got, ref, tol, f"{name} {mode} {dtype}")


def test_scan_backend_triton_equals_recurrent():
    """Through the public API: ``scan(..., backend="triton")`` with a feature map, an initial
    state and ``return_states=True`` equals ``backend="recurrent"``, gradients included."""
    gen = torch.Generator().manual_seed(5)
    B, T, H, K, V = 2, 20, 2, 5, 3
    q, k = (torch.randn(B, T, H, K, generator=gen) for _ in range(2))
    v = torch.randn(B, T, H, V, generator=gen)
    beta = torch.randn(B, T, H, generator=gen)
    W0 = torch.randn(B, H, V, K, generator=gen)
    out = {}
    for backend in ("triton", "recurrent"):
        leaves = [t.clone().requires_grad_(True) for t in (q, k, v, beta, W0)]
        y, W, st = scan(*leaves[:3], "gated_delta", eta=rules.psi_2sigmoid(leaves[3]) / 2,
                        decay=0.95, initial_state=leaves[4], return_states=True,
                        backend=backend, phi="silu_l2", chunk_size=16)
        (y.sum() + (W**2).sum() + st[:, 3].sum()).backward()
        out[backend] = {"y": y.detach(), "W": W.detach(), "st": st.detach(),
                        **{f"d{i}": t.grad for i, t in enumerate(leaves)}}
    _compare(out["triton"], out["recurrent"], TOL32, "scan(backend='triton')")


def test_auto_mode_and_plan():
    heb, oja = rules.get("hebbian"), rules.get("oja")
    assert launch.kernel_plan(heb, 5, 3, 100, 0, 64).mode == "chunk"
    assert launch.kernel_plan(heb, 5, 3, 10, 0, 64).mode == "recurrent"  # one chunk or less
    assert launch.kernel_plan(heb, 5, 3, 100, 3, 64).mode == "recurrent"  # stride inside chunks
    assert launch.kernel_plan(oja, 5, 3, 100, 0, 64).mode == "recurrent"
    assert launch.kernel_plan(oja, 5, 40, 100, 0, 64).bv == 64  # Oja sums over all rows
    assert launch.kernel_plan(rules.get("gla"), 5, 3, 100, 0, 64).bt == 16
    assert launch.kernel_plan(heb, 5, 3, 100, 0, 64).seg == 16  # checkpoints every 16 steps


def test_errors_before_any_work(monkeypatch):
    rule = rules.get("hebbian")
    x = _inputs(rule, 1, 4, 1, 3, 2, seed=0, dtype=torch.float32)
    r, g, W0 = prepare(x["q"], x["k"], x["v"], rule)
    with pytest.raises(ValueError, match="mode must be one of"):
        launch.scan_triton(x["q"], x["k"], x["v"], r, g, W0, 0, 16, mode="fast")
    oja = rules.get("oja")
    r2, g2, _ = prepare(x["q"], x["k"], x["v"], oja)
    with pytest.raises(ValueError, match="no chunk kernel"):
        launch.scan_triton(x["q"], x["k"], x["v"], r2, g2, W0, 0, 16, mode="chunk")
    with pytest.raises(ValueError, match="multiple of its chunk"):
        launch.scan_triton(x["q"], x["k"], x["v"], r, g, W0, 3, 16, mode="chunk")
    q64 = x["q"].double()
    with pytest.raises(TypeError, match="float32, float16 or bfloat16"):
        scan(q64, q64, x["v"].double(), "hebbian", backend="triton")
    monkeypatch.delenv("TRITON_INTERPRET")
    with pytest.raises(ValueError, match="needs CUDA tensors"):
        scan(x["q"], x["k"], x["v"], "hebbian", backend="triton")
    with pytest.raises(ValueError, match="needs CUDA tensors"):
        scan_triton_public(x["q"], x["k"], x["v"], r, g, W0)


# ------------------------------------------------------------------ fused spiking projection
def _spiking_case(rule, lif, B, n_pre, steps, dt, W0, rate=150.0, dtype=torch.float64):
    """Run the engine (torch path) and the fused kernel on the same Poisson input."""
    from synaptic_fwp.kernels.spiking import run_lif_stdp

    from synaptic_fwp.engine import Network
    from synaptic_fwp.inputs import PoissonInput

    net = Network(dt=dt, batch=B, seed=11, dtype=dtype)
    inp = net.add(PoissonInput(n_pre, rate=rate, name="inp"))
    net.add(lif)
    net.connect(inp, lif, W0, rule, name="S")
    ev = inp.events(inp.init_state(), 0, steps)  # the same counter-based spikes as the run
    pre = torch.zeros(B, steps, n_pre, dtype=torch.bool)
    pre[ev.b, ev.step, ev.i] = True
    ds = net.run(steps * dt, record=["lif.spikes"], progress=False)
    ref_spikes = torch.from_numpy(ds["lif_spikes"].values).bool()  # (batch, time, post)
    st = net.state_dict()["state"]
    return pre, ref_spikes, st, run_lif_stdp


@pytest.mark.parametrize("case", ["pair_fixed_drive_hard", "triplet_conductance_soft_nearest",
                                  "adex_triplet_conductance_hard", "adex_pair_fixed_drive_soft"])
def test_spiking_kernel_equals_engine_spike_for_spike(case):
    """A seeded Poisson -> LIF (or AdEx) projection with STDP, float64: the fused kernel and the
    engine's torch path give the same post spikes at every step, and the same final weights,
    membrane potentials, conductances, adaptation currents and traces (to 1e-12 relative)."""
    from synaptic_fwp.neurons import AdExPopulation, LIFPopulation
    from synaptic_fwp.plasticity import PairSTDP, TripletSTDP

    B, n_pre, n_post, dt, steps = 2, 12, 5, 1e-4, 150
    gen = torch.Generator().manual_seed(2)
    if case == "pair_fixed_drive_hard":
        w_max = 4e-9
        rule = PairSTDP(tau_plus=20e-3, tau_minus=20e-3, A_plus=0.05 * w_max,
                        A_minus=0.055 * w_max, bounds="hard", w_min=0.0, w_max=w_max)
        lif = LIFPopulation(n_post, ampa_drive=60e-3, t_ref=1e-3, V_init=-55e-3, name="lif")
        block = None
    else:
        w_max = 8e-9
        rule = TripletSTDP.from_table("visual_cortex", "nearest", bounds="soft", w_max=w_max)
        rule = TripletSTDP(**{**rule.param_dict(), "A2_plus": 0.2, "A3_plus": 0.3,
                              "A2_minus": 0.2, "A3_minus": 0.05})
        lif = LIFPopulation(n_post, V_init=-52e-3, t_ref=0.0, name="lif")
        block = 2  # three blocks of post neurons, the last one masked
    if case == "adex_triplet_conductance_hard":  # regular spiking cell (Brette & Gerstner 2005)
        w_max = 20e-9
        rule = TripletSTDP(**{**rule.param_dict(), "bounds": "hard", "w_max": w_max})
        lif = AdExPopulation(n_post, V_init=-55e-3, t_ref=5e-4, name="lif")
    elif case == "adex_pair_fixed_drive_soft":
        w_max = 10e-9
        rule = PairSTDP(A_plus=0.05, A_minus=0.06, bounds="soft", w_max=w_max)
        lif = AdExPopulation(n_post, ampa_drive=70e-3, V_init=-55e-3, name="lif")
    W0 = w_max * (0.3 + 0.4 * torch.rand(B, n_post, n_pre, generator=gen, dtype=torch.float64))
    pre, ref_spikes, st, run = _spiking_case(rule, lif, B, n_pre, steps, dt, W0)
    out = run(pre, W0, rule, lif, dt, block_post=block)
    assert int(ref_spikes.sum()) > 10, "the test needs post spikes to be meaningful"
    assert float((out["W"] - W0).abs().max()) > 0.02 * w_max, "the weights must have changed"
    assert torch.equal(out["spikes"], ref_spikes)
    ref_state = {"W": st["proj"]["S"]["W"], "V": st["pop"]["lif"]["V"],
                 "g_ampa": st["pop"]["lif"]["g_ampa"]}
    if case.startswith("adex"):
        ref_state["w"] = st["pop"]["lif"]["w"]
        assert float(ref_state["w"].max()) > 0, "the neurons must have adapted"
    ref_state.update({k: st["proj"]["S"][f"rule.{k}"] for k in rule.state_shapes})
    got = {"W": out["W"], **out["state"]}
    for n, r in ref_state.items():
        err = float((got[n] - r).abs().max() / r.abs().max().clamp_min(1e-300))
        assert err <= 1e-12, f"{case}: {n} differs from the engine by {err:.1e} (relative)"


def test_spiking_kernel_adex_float32():
    """The AdEx variant in float32 (its phi1 = (u - 1)/log u against the engine's expm1(z)/z):
    the same spikes as the engine's float32 torch path, V and w within 1e-5 relative."""
    from synaptic_fwp.neurons import AdExPopulation
    from synaptic_fwp.plasticity import PairSTDP

    B, n_pre, n_post, dt, steps, w_max = 2, 12, 5, 1e-4, 200, 20e-9
    rule = PairSTDP(A_plus=0.05 * w_max, A_minus=0.055 * w_max, bounds="hard", w_max=w_max)
    pop = AdExPopulation(n_post, V_init=-55e-3, name="lif")
    gen = torch.Generator().manual_seed(2)
    W0 = w_max * (0.3 + 0.4 * torch.rand(B, n_post, n_pre, generator=gen))
    pre, ref, st, run = _spiking_case(rule, pop, B, n_pre, steps, dt, W0, dtype=torch.float32)
    out = run(pre, W0, rule, pop, dt)
    assert int(ref.sum()) > 10
    assert torch.equal(out["spikes"], ref)
    for k in ("V", "w"):
        r = st["pop"]["lif"][k]
        err = float((out["state"][k] - r).abs().max() / r.abs().max())
        assert err <= 1e-5, (k, err)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.filterwarnings("ignore:divide by zero encountered in log:RuntimeWarning")  # log(0)
def test_spiking_kernel_adex_huge_conductances(dtype):
    """AdEx under conductances so large that dt g / C is in the hundreds: exp(z) underflows, and
    the kernel's phi1 must still equal the engine's expm1(z)/z (-1/z there): same spikes."""
    from synaptic_fwp.neurons import AdExPopulation
    from synaptic_fwp.plasticity import PairSTDP

    w_max = 1e-3
    rule = PairSTDP(A_plus=0.0, A_minus=0.0, bounds="hard", w_max=w_max)
    pop = AdExPopulation(2, name="lif")
    W0 = torch.full((1, 2, 4), w_max, dtype=dtype)
    pre, ref, _, run = _spiking_case(rule, pop, 1, 4, 100, 1e-4, W0, rate=500.0, dtype=dtype)
    out = run(pre, W0, rule, pop, 1e-4)
    assert int(ref.sum()) > 50
    assert torch.equal(out["spikes"], ref)


@pytest.mark.parametrize("case", ["lif_conductance", "lif_fixed_drive", "adex",
                                  "lif_istdp", "adex_istdp_nearest"])
def test_spiking_kernel_with_gaba_equals_engine(case):
    """A plastic AMPA projection and a GABA projection from a second Poisson input (Song, Miller
    & Abbott 2000's excitatory and inhibitory inputs), static or (``istdp``) plastic by Vogels et
    al. 2011's rule, float64: the kernel's ``gaba=`` path gives the engine's post spikes at every
    step and its final weights (both), V, conductances (AMPA and GABA), AdEx's w and traces
    (1e-12 relative); the inhibition matters (the same run without it spikes more)."""
    from synaptic_fwp.kernels.spiking import run_lif_stdp

    from synaptic_fwp.engine import Network
    from synaptic_fwp.inputs import PoissonInput
    from synaptic_fwp.neurons import AdExPopulation, LIFPopulation
    from synaptic_fwp.plasticity import InhibitorySTDP, PairSTDP

    B, n_pre, n_i, n_post, dt, steps = 2, 12, 6, 5, 1e-4, 150
    w_max = 20e-9 if case.startswith("adex") else 8e-9
    irule = None
    if case.endswith("istdp"):
        irule = InhibitorySTDP(eta=2e-10, rho0=30.0)
    elif case.endswith("istdp_nearest"):
        irule = InhibitorySTDP(eta=2e-10, rho0=30.0, pairing="nearest", bounds="hard",
                               w_max=3e-9)
    rule = PairSTDP(A_plus=0.05 * w_max, A_minus=0.055 * w_max, bounds="hard", w_max=w_max)
    gen = torch.Generator().manual_seed(2)
    W0 = w_max * (0.3 + 0.4 * torch.rand(B, n_post, n_pre, generator=gen, dtype=torch.float64))
    Wi = 2e-9 * (0.5 + torch.rand(n_post, n_i, generator=gen, dtype=torch.float64))

    def population():
        if case == "lif_fixed_drive":
            return LIFPopulation(n_post, ampa_drive=60e-3, t_ref=1e-3, V_init=-55e-3, name="lif")
        if case.startswith("adex"):
            return AdExPopulation(n_post, V_init=-55e-3, t_ref=5e-4, name="lif")
        return LIFPopulation(n_post, V_init=-52e-3, t_ref=1e-3, name="lif")

    net = Network(dt=dt, batch=B, seed=11, dtype=torch.float64)
    inp = net.add(PoissonInput(n_pre, rate=150.0, name="inp"))
    inh = net.add(PoissonInput(n_i, rate=200.0, name="inh"))
    pop = net.add(population())
    net.connect(inp, pop, W0, rule, name="S")
    net.connect(inh, pop, Wi, irule, name="I", target="gaba")
    dense = {}
    for n, src in (("inp", inp), ("inh", inh)):
        ev = src.events(src.init_state(), 0, steps)
        dense[n] = torch.zeros(B, steps, src.n, dtype=torch.bool)
        dense[n][ev.b, ev.step, ev.i] = True
    ds = net.run(steps * dt, record=["lif.spikes"], progress=False)
    ref_spikes = torch.from_numpy(ds["lif_spikes"].values).bool()
    st = net.state_dict()["state"]
    out = run_lif_stdp(dense["inp"], W0, rule, population(), dt, gaba=(dense["inh"], Wi, irule))
    assert int(ref_spikes.sum()) > 5, "the test needs post spikes to be meaningful"
    assert float(st["pop"]["lif"]["g_gaba"].abs().max()) > 0
    assert torch.equal(out["spikes"], ref_spikes)
    free = run_lif_stdp(dense["inp"], W0, rule, population(), dt)
    assert int(free["spikes"].sum()) > int(out["spikes"].sum()), "inhibition must matter"
    ref = {"W": st["proj"]["S"]["W"], **{k: st["pop"]["lif"][k] for k in ("V", "g_ampa",
                                                                           "g_gaba")}}
    if case.startswith("adex"):
        ref["w"] = st["pop"]["lif"]["w"]
    ref.update({k: st["proj"]["S"][f"rule.{k}"] for k in rule.state_shapes})
    got = {"W": out["W"], **out["state"]}
    if irule is not None:
        ref["W_gaba"] = st["proj"]["I"]["W"]
        ref.update({f"gaba_{k}": st["proj"]["I"][f"rule.{k}"] for k in ("x", "y")})
        got["W_gaba"] = out["W_gaba"]
        assert float((out["W_gaba"] - Wi).abs().max()) > 1e-11, "inhibitory STDP must act"
    else:
        assert torch.equal(out["W_gaba"], Wi.expand(B, n_post, n_i))
    for n, r in ref.items():
        err = float((got[n] - r).abs().max() / r.abs().max().clamp_min(1e-300))
        assert err <= 1e-12, f"{case}: {n} differs from the engine by {err:.1e} (relative)"


def test_spiking_kernel_errors():
    from synaptic_fwp.kernels.spiking import run_lif_stdp

    from synaptic_fwp.neurons import LIFPopulation
    from synaptic_fwp.plasticity import PairSTDP

    pre = torch.zeros(1, 3, 4, dtype=torch.bool)
    W = torch.full((1, 2, 4), 0.5, dtype=torch.float64)
    lif = LIFPopulation(2, name="lif")
    with pytest.raises(TypeError, match="PairSTDP or TripletSTDP"):
        run_lif_stdp(pre, W, rules.get("hebbian"), lif, 1e-4)
    with pytest.raises(ValueError, match="within the rule's bounds"):
        run_lif_stdp(pre, W * 4, PairSTDP(bounds="hard", w_max=1.0), lif, 1e-4)
    with pytest.raises(ValueError, match="LIFPopulation or AdExPopulation with n=2"):
        run_lif_stdp(pre, W, PairSTDP(), LIFPopulation(3, name="lif"), 1e-4)
    three = torch.tensor([1e-3, 2e-3, 3e-3], dtype=torch.float64)
    with pytest.raises(ValueError, match=r"batch shape \(3,\); allowed: scalars, \(1,\) or \(1,\)"):
        run_lif_stdp(pre, W, PairSTDP(A_plus=three), lif, 1e-4)
    with pytest.raises(TypeError, match="gaba must be a"):
        run_lif_stdp(pre, W, PairSTDP(), lif, 1e-4, gaba=pre)
    with pytest.raises(ValueError, match="gaba W has shape"):
        run_lif_stdp(pre, W, PairSTDP(), lif, 1e-4, gaba=(pre, W[:, :, :3]))
    with pytest.raises(ValueError, match="gaba spikes must be"):
        run_lif_stdp(pre, W, PairSTDP(), lif, 1e-4, gaba=(pre[:, :2], W))
    with pytest.raises(TypeError, match="gaba W must be a torch.float64"):
        run_lif_stdp(pre, W, PairSTDP(), lif, 1e-4, gaba=(pre, W.float()))


@pytest.mark.slow
def test_kernels_compile_for_an_h100_without_a_gpu():
    """One variant of each kernel compiles to an sm_90 cubin (Triton's own ptxas, no GPU
    needed): catches what the interpreter cannot (typing, layouts, shared memory). Runs in a
    subprocess because this process decorated the kernels for the interpreter."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    r = subprocess.run([sys.executable, "-m", "synaptic_fwp.kernels.aot", "--arch", "90"],
                       env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("ok    sm_90") == 6, r.stdout
