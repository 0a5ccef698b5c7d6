"""``Network.run(backend="triton")``: the fused spiking kernel (``kernels/spiking.py``) inside the
engine equals the torch step path spike for spike on seeded Poisson runs (float64), with the same
records, Dataset, streaming and resume; networks it cannot run and devices it cannot use give
clear errors; ``backend="auto"`` keeps the torch paths on the CPU.

Runs under Triton's CPU interpreter. As in ``tests/test_kernels.py``, ``TRITON_INTERPRET=1`` is
set only while this module imports the kernels and, through a module fixture, while its own tests
run; it is restored in between so it does not leak into other test files. Sizes are tiny (the
interpreter is slow).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _triton_interp import import_interpreted, interpreter  # noqa: F401

from synaptic_fwp import engine
from synaptic_fwp.engine import Network
from synaptic_fwp.inputs import PoissonInput, RateInput
from synaptic_fwp.neurons import AdExPopulation, LIFPopulation, RatePopulation
from synaptic_fwp.plasticity import InhibitorySTDP, PairSTDP, TripletSTDP

_mods, _SKIP = import_interpreted(
    "synaptic_fwp.kernels.launch", "synaptic_fwp.kernels.spiking"
)
if _SKIP:
    pytest.skip(_SKIP, allow_module_level=True)


B, N_PRE, N_POST, DT = 2, 12, 5, 1e-4


def _net(case: str) -> Network:
    """A seeded Poisson -> LIF projection (float64), tuned so the neurons spike in 15 ms."""
    gen = torch.Generator().manual_seed(2)
    net = Network(dt=DT, batch=B, seed=11, dtype=torch.float64)
    inp = net.add(PoissonInput(N_PRE, rate=150.0, name="inp"))
    if case == "pair_fixed_drive_hard":
        w_max = 4e-9
        rule = PairSTDP(tau_plus=20e-3, tau_minus=20e-3, A_plus=0.05 * w_max,
                        A_minus=0.055 * w_max, bounds="hard", w_min=0.0, w_max=w_max)
        lif = LIFPopulation(N_POST, ampa_drive=60e-3, t_ref=1e-3, V_init=-55e-3, name="lif")
    elif case == "triplet_conductance_soft_nearest":
        w_max = 8e-9
        rule = TripletSTDP.from_table("visual_cortex", "nearest", bounds="soft", w_max=w_max)
        rule = TripletSTDP(**{**rule.param_dict(), "A2_plus": 0.2, "A3_plus": 0.3,
                              "A2_minus": 0.2, "A3_minus": 0.05})
        lif = LIFPopulation(N_POST, V_init=-52e-3, t_ref=0.0, name="lif")
    elif case == "adex_pair_conductance_hard":  # Brette & Gerstner's regular spiking cell
        w_max = 20e-9
        rule = PairSTDP(A_plus=0.05 * w_max, A_minus=0.055 * w_max, bounds="hard", w_min=0.0,
                        w_max=w_max)
        lif = AdExPopulation(N_POST, V_init=-55e-3, t_ref=5e-4, name="lif")
    elif case == "adex_pair_drive_gaba":  # plus static inhibition from a second input
        w_max = 10e-9
        rule = PairSTDP(A_plus=0.05, A_minus=0.06, bounds="soft", w_max=w_max)
        lif = AdExPopulation(N_POST, ampa_drive=70e-3, V_init=-55e-3, name="lif")
    elif case == "sweep_triplet_istdp":  # per-instance parameters of both rules (a sweep)
        w_max = 10e-9
        base = TripletSTDP.from_table("visual_cortex", "all_to_all", bounds="hard", w_max=w_max)
        amp = torch.tensor([0.02, 0.05], dtype=torch.float64) * w_max
        rule = TripletSTDP(**{**base.param_dict(), "A2_plus": amp, "A3_plus": 2 * amp,
                              "A2_minus": amp, "tau_plus": torch.tensor(
                                  [10e-3, 25e-3], dtype=torch.float64)})
        lif = LIFPopulation(N_POST, V_init=-52e-3, t_ref=1e-3, name="lif")
    elif case == "pair_conductance_istdp":  # plus plastic inhibition from a second input
        w_max = 10e-9
        rule = PairSTDP(A_plus=0.05 * w_max, A_minus=0.055 * w_max, bounds="hard", w_max=w_max)
        lif = LIFPopulation(N_POST, V_init=-52e-3, t_ref=1e-3, name="lif")
    else:  # static
        w_max, rule = 6e-9, None
        lif = LIFPopulation(N_POST, V_init=-52e-3, t_ref=2e-3, name="lif")
    net.add(lif)
    W0 = w_max * (0.3 + 0.4 * torch.rand(B, N_POST, N_PRE, generator=gen, dtype=torch.float64))
    net.connect(inp, lif, W0, rule, name="S")
    if case.endswith("gaba"):
        inh = net.add(PoissonInput(4, rate=300.0, name="inh"))
        net.connect(inh, lif, 1e-9 * torch.rand(N_POST, 4, generator=gen, dtype=torch.float64),
                    name="I", target="gaba")
    elif case.endswith("istdp"):  # Vogels et al. 2011's inhibitory STDP on the GABA synapses
        inh = net.add(PoissonInput(4, rate=300.0, name="inh"))
        rho0 = torch.tensor([5.0, 40.0], dtype=torch.float64) if case.startswith("sweep") \
            else 20.0
        net.connect(inh, lif, 1e-9 * torch.rand(N_POST, 4, generator=gen, dtype=torch.float64),
                    InhibitorySTDP(eta=1e-10, rho0=rho0), name="I", target="gaba")
    return net


def _assert_same(a, b, rel_v: float = 1e-12) -> None:
    """Same variables, coords and attrs; spikes, weights and traces equal; V, g_ampa (and AdEx's
    w) equal to ``rel_v`` relative (the kernel sums ``W s_pre`` as a tree, the engine in spike
    order)."""
    assert set(a.data_vars) == set(b.data_vars)
    assert np.array_equal(a.time.values, b.time.values)
    assert a.attrs == b.attrs
    for v in a.data_vars:
        assert a[v].dims == b[v].dims and a[v].attrs == b[v].attrs, v
        x, y = a[v].values, b[v].values
        if v in ("lif_V", "lif_g_ampa", "lif_w", "lif_g_gaba"):
            err = np.abs(x - y).max() / np.abs(y).max()
            assert err <= rel_v, (v, err)
        else:
            assert np.array_equal(x, y), v


@pytest.mark.parametrize("case", ["pair_fixed_drive_hard", "triplet_conductance_soft_nearest",
                                  "adex_pair_conductance_hard", "adex_pair_drive_gaba",
                                  "pair_conductance_istdp", "sweep_triplet_istdp", "static"])
def test_triton_equals_torch_spike_for_spike(case, monkeypatch):
    """Records every 1 ms (stored by the kernel; spike counts only for the static case, the
    kernel's no-record launch), chunks of 50 steps: spikes, input spikes, weights and traces
    equal the step path exactly, V and g_ampa to the last bits; the weights moved (or, static,
    stayed exactly W0). The pair case splits each chunk into launches of 7 steps (as for
    very large inputs), so records and spike counts straddle launches."""
    if case == "pair_fixed_drive_hard":
        monkeypatch.setattr(engine, "_TRITON_LAUNCH_BYTES", B * N_PRE * 7)
    rec = ["lif.spikes", "inp.spikes"]
    if case != "static":
        rec += ["lif.V", "lif.g_ampa", "S.W", "S.r1" if "triplet" in case else "S.x"]
    if case.startswith("adex"):
        rec += ["lif.w"]
    if case.endswith("gaba"):
        rec += ["lif.g_gaba", "I.W", "inh.spikes"]
    if case.endswith("istdp"):
        rec += ["lif.g_gaba", "I.W", "I.x", "I.y"]
    kw = dict(record=rec, every=1e-3, progress=False, chunk=50)
    tri_net, ref_net = _net(case), _net(case)
    tri = tri_net.run(0.01, backend="triton", **kw)
    ref = ref_net.run(0.01, backend="torch", method="step", **kw)
    assert int(ref["lif_spikes"].sum()) > 10, "the test needs post spikes to be meaningful"
    _assert_same(tri, ref)
    st_t, st_r = tri_net.state_dict()["state"], ref_net.state_dict()["state"]
    W0 = _net(case).projections["S"].init_state()["W"]
    assert torch.equal(st_t["proj"]["S"]["W"], st_r["proj"]["S"]["W"])
    dW = float((st_r["proj"]["S"]["W"] - W0).abs().max())
    assert (dW == 0) if case == "static" else (dW > 0), dW
    if case.endswith("istdp"):  # the inhibitory weights moved, identically on both paths
        Wi0 = _net(case).projections["I"].init_state()["W"]
        assert torch.equal(st_t["proj"]["I"]["W"], st_r["proj"]["I"]["W"])
        assert float((st_r["proj"]["I"]["W"] - Wi0).abs().max()) > 1e-12
    for k in ("V", "g_ampa", *(("w",) if case.startswith("adex") else ()),
              *(("g_gaba",) if case.endswith(("gaba", "istdp")) else ())):
        a, b = st_t["pop"]["lif"][k], st_r["pop"]["lif"][k]
        assert float((a - b).abs().max() / b.abs().max()) <= 1e-12, k


def test_one_launch_per_chunk(monkeypatch):
    """Each chunk is one launch (counted), state records included; the final states
    equal the step path's."""
    calls = []
    run = engine._TritonPath.__init__

    def counting_init(self, net):
        run(self, net)
        inner = self.run
        self.run = lambda pre, *a, **k: (calls.append(pre.shape[1]), inner(pre, *a, **k))[1]

    monkeypatch.setattr(engine._TritonPath, "__init__", counting_init)
    kw = dict(record=["lif.spikes", "lif.V", "S.o2"], every=5e-4, progress=False, chunk=25)
    case = "triplet_conductance_soft_nearest"
    tri_net = _net(case)
    tri = tri_net.run(0.006, backend="triton", **kw)
    ref_net = _net(case)
    ref = ref_net.run(0.006, backend="torch", method="step", **kw)
    assert calls == [25, 25, 10]
    assert int(ref["lif_spikes"].sum()) > 10
    _assert_same(tri, ref)
    st_t, st_r = tri_net.state_dict()["state"], ref_net.state_dict()["state"]
    for k in ("W", "rule.r1", "rule.r2", "rule.o1", "rule.o2"):
        assert torch.equal(st_t["proj"]["S"][k], st_r["proj"]["S"][k]), k
    assert torch.equal(st_t["pop"]["lif"]["ref"], st_r["pop"]["lif"]["ref"])


def test_stream_interrupt_and_resume(tmp_path):
    """Streamed to NetCDF, interrupted after the first chunk and resumed with the Triton backend:
    the same Dataset as an uninterrupted Triton run; a checkpoint of the Triton backend is not
    resumed by the torch backend (fingerprint)."""
    case = "pair_fixed_drive_hard"
    kw = dict(record=["lif.spikes", "S.W"], every=1e-3, progress=False, chunk=30)
    full = _net(case).run(0.006, backend="triton", out=str(tmp_path / "full.nc"), **kw).load()

    class Stop(Exception):
        pass

    def stop(step):
        raise Stop

    out = str(tmp_path / "cut.nc")
    with pytest.raises(Stop):
        _net(case).run(0.006, backend="triton", out=out, on_chunk=stop, **kw)
    with pytest.raises(ValueError, match="checkpoint was written by a run with other"):
        _net(case).run(0.006, backend="torch", out=out, resume=True, **kw)
    got = _net(case).run(0.006, backend="triton", out=out, resume=True, **kw).load()
    assert int(full["lif_spikes"].sum()) > 0
    for v in full.data_vars:
        assert np.array_equal(full[v].values, got[v].values), v
    assert np.array_equal(full.time.values, got.time.values)


def test_auto_uses_torch_on_the_cpu(monkeypatch):
    """``backend="auto"`` never builds the Triton path for CPU tensors."""
    def refuse(self, net):
        raise AssertionError("auto picked Triton on the CPU")

    monkeypatch.setattr(engine._TritonPath, "__init__", refuse)
    ds = _net("static").run(2e-3, record=["lif.spikes"], progress=False)
    assert ds["lif_spikes"].shape == (B, 20, N_POST)


def test_errors_before_any_work(monkeypatch):
    net = _net("static")
    with pytest.raises(ValueError, match=r"backend must be one of \['auto', 'torch', 'triton'\]"):
        net.run(1e-3, backend="cuda", progress=False)
    with pytest.raises(ValueError, match="method='step' selects among the torch paths"):
        net.run(1e-3, backend="triton", method="step", progress=False)
    # networks the kernel does not run: a second projection; a rate input
    two = _net("static")
    other = two.add(PoissonInput(3, rate=5.0, name="other"))
    two.connect(other, two.populations["lif"], 1e-9, name="D")
    with pytest.raises(ValueError, match=r"projections \['D', 'S'\] \(needs exactly one AMPA "
                       r"projection.*The Triton backend runs: spiking"):
        two.run(1e-3, backend="triton", progress=False)
    # a GABA projection with a rule the kernel does not run
    pg = _net("static")
    other = pg.add(PoissonInput(3, rate=5.0, name="other"))
    pg.connect(other, pg.populations["lif"], 1e-9, PairSTDP(), name="G", target="gaba")
    with pytest.raises(ValueError, match="GABA projection 'G' has rule PairSTDP"):
        pg.run(1e-3, backend="triton", progress=False)
    rate = _net("static")
    rate.add(RateInput(3, rate=5.0, name="drive"))
    with pytest.raises(ValueError, match="input 'drive' gives rates"):
        rate.run(1e-3, backend="triton", progress=False)
    # a population the kernel does not integrate
    rp = Network(dt=DT, batch=1, dtype=torch.float64)
    inp = rp.add(PoissonInput(3, rate=10.0, name="inp"))
    pop = rp.add(RatePopulation(2, name="rates"))
    rp.connect(inp, pop, 0.1, name="S")
    with pytest.raises(ValueError, match=r"is a RatePopulation \(needs a LIFPopulation or AdEx"):
        rp.run(1e-3, backend="triton", progress=False)
    # weights outside the rule's bounds
    ob = Network(dt=DT, batch=1, dtype=torch.float64)
    inp = ob.add(PoissonInput(3, rate=10.0, name="inp"))
    lif = ob.add(LIFPopulation(2, name="lif"))
    ob.connect(inp, lif, 9e-9, PairSTDP(w_max=5e-9, bounds="hard"), name="S")
    with pytest.raises(ValueError, match="outside the rule's bounds"):
        ob.run(1e-3, backend="triton", progress=False)
    # CPU tensors without the interpreter
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(ValueError, match="Triton needs CUDA tensors, or TRITON_INTERPRET=1"):
        net.run(1e-3, backend="triton", progress=False)
    assert net.t == 0.0, "nothing was simulated"


def test_kernel_records_equal_split_launches():
    """``run_lif_stdp(record_every=...)`` stores, inside one launch, exactly the states that
    launches split at the recording steps end with; two post blocks (the last one masked)."""
    from synaptic_fwp.kernels.spiking import run_lif_stdp

    n_post, n_pre, T, every, first = 3, 5, 12, 4, 2
    gen = torch.Generator().manual_seed(0)
    pre = torch.rand(B, T, n_pre, generator=gen) < 0.15
    rule = TripletSTDP.from_table("visual_cortex", "nearest", bounds="soft", w_max=8e-9)
    rule = TripletSTDP(**{**rule.param_dict(), "A2_plus": 0.2, "A3_plus": 0.3,
                          "A2_minus": 0.2, "A3_minus": 0.05})
    lif = LIFPopulation(n_post, V_init=-51e-3, t_ref=0.0, name="lif")
    W0 = 8e-9 * (0.3 + 0.4 * torch.rand(B, n_post, n_pre, generator=gen, dtype=torch.float64))
    full = run_lif_stdp(pre, W0, rule, lif, DT, block_post=2, record_every=every,
                        record_first=first, record_W=True)
    rec = full["records"]
    assert rec["W"].shape == (B, 3, n_post, n_pre) and rec["r1"].shape == (B, 3, n_pre)
    state, W, a = None, W0, 0
    for k, r in enumerate(range(first, T, every)):
        o = run_lif_stdp(pre[:, a:r + 1], W, rule, lif, DT, state=state, block_post=2)
        state, W, a = o["state"], o["W"], r + 1
        assert torch.equal(rec["W"][:, k], W), k
        for n in ("V", "g_ampa", "r1", "r2", "o1", "o2"):
            assert torch.equal(rec[n][:, k], state[n]), (n, k)
    assert float((W - W0).abs().max()) > 0, "the weights must have changed"
    with pytest.raises(ValueError, match="record_every must be an int >= 0"):
        run_lif_stdp(pre, W0, rule, lif, DT, record_every=-1)
