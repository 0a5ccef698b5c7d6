"""The batched engine: instance independence, plasticity plumbing against closed forms and the
oracle scan, inputs, delays, records schema, non-finite detection."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from synaptic_fwp import rules
from synaptic_fwp._validation import NonFiniteError
from synaptic_fwp.engine import Network
from synaptic_fwp.inputs import (
    PlaceCellInput,
    PlateauInput,
    PoissonInput,
    RateInput,
    SpikeTimesInput,
)
from synaptic_fwp.neurons import LIFPopulation, RatePopulation
from synaptic_fwp.plasticity import InhibitorySTDP, PairSTDP
from synaptic_fwp.sequence.recurrent import scan_recurrent

LIF = dict(C=200e-12, g_L=10e-9, E_L=-70e-3, V_th=-50e-3, V_reset=-60e-3)


def _stdp_net(batch, seed, rate, V_th, tau_ampa, W0, rule, n_in=20):
    net = Network(dt=1e-4, batch=batch, seed=seed, dtype=torch.float64)
    inp = net.add(PoissonInput(n_in, rate=rate, name="inp"))
    lif = net.add(LIFPopulation(1, **{**LIF, "V_th": V_th}, t_ref=1e-3, tau_ampa=tau_ampa,
                                name="out"))
    net.connect(inp, lif, W0, rule, name="S")
    return net


def _params(B, n_in=20):
    g = torch.Generator().manual_seed(1)
    rate = 150.0 + 250.0 * torch.rand(B, generator=g, dtype=torch.float64)
    V_th = -52e-3 + 4e-3 * torch.rand(B, generator=g, dtype=torch.float64)
    tau_a = 2e-3 + 4e-3 * torch.rand(B, generator=g, dtype=torch.float64)
    W0 = 4e-9 * torch.rand(B, 1, n_in, generator=g, dtype=torch.float64)
    return rate, V_th, tau_a, W0


@pytest.mark.parametrize(("per_instance_rule", "method"),
                         [(False, "window"), (True, "step"), (True, "window")])
def test_instance_independence_exact(per_instance_rule, method):
    """A batch of parameter sets gives each instance exactly its result alone (float64); with
    per-instance rule amplitudes on both the step and the window path."""
    B = 64 if not per_instance_rule else 8
    rate, V_th, tau_a, W0 = _params(B)
    if per_instance_rule:
        A = 1e-10 * (1 + torch.arange(B, dtype=torch.float64))
        rule = PairSTDP(tau_plus=20e-3, tau_minus=20e-3, A_plus=A, A_minus=1.05 * A,
                        bounds="hard", w_min=0.0, w_max=5e-9)
    else:
        rule = PairSTDP.song2000(w_max=5e-9)
    rec = ["S.W", "out.V", "out.spikes", "S.x"]
    full = _stdp_net(B, 7, rate, V_th, tau_a, W0, rule).run(0.015, record=rec, every=0.005,
                                                            progress=False, method=method)
    assert int(full["out_spikes"].sum()) > B  # the neurons do spike
    for b in range(B):
        rb = rule
        if per_instance_rule:
            rb = PairSTDP(tau_plus=20e-3, tau_minus=20e-3, A_plus=A[b:b + 1],
                          A_minus=1.05 * A[b:b + 1], bounds="hard", w_min=0.0, w_max=5e-9)
        one = _stdp_net(1, 7 + b, rate[b:b + 1], V_th[b:b + 1], tau_a[b:b + 1], W0[b:b + 1],
                        rb).run(0.015, record=rec, every=0.005, progress=False, method=method)
        for v in ("S_W", "out_V", "out_spikes", "S_x"):
            a = full[v].values[b]
            c = one[v].values[0]
            assert np.array_equal(a, c), (b, v)


@pytest.mark.parametrize("method", ["step", "window"])
def test_chunking_does_not_change_results(method):
    rate, V_th, tau_a, W0 = _params(4)
    rule = PairSTDP.song2000(w_max=5e-9)
    kw = dict(record=["S.W", "out.V"], every=0.001, progress=False, method=method)
    a = _stdp_net(4, 3, rate, V_th, tau_a, W0, rule).run(0.02, **kw)
    b = _stdp_net(4, 3, rate, V_th, tau_a, W0, rule).run(0.02, chunk=30, **kw)
    np.testing.assert_array_equal(a["S_W"].values, b["S_W"].values)
    np.testing.assert_array_equal(a["out_V"].values, b["out_V"].values)


def test_event_window_path_equals_the_step_path():
    """The window path (whole windows of linear dynamics between post spikes) against the
    step-by-step path: equal up to rounding, same spikes, in float64."""
    rate, V_th, tau_a, W0 = _params(6)
    rule = PairSTDP.song2000(w_max=5e-9)
    rec = ["S.W", "out.V", "out.spikes", "S.x", "S.y", "out.g_ampa"]
    res = {m: _stdp_net(6, 3, rate, V_th, tau_a, W0, rule).run(
        0.06, record=rec, every=0.004, progress=False, method=m) for m in ("step", "window")}
    a, b = res["step"], res["window"]
    assert int(a["out_spikes"].sum()) > 50
    np.testing.assert_array_equal(a["out_spikes"].values, b["out_spikes"].values)
    for v in ("S_W", "out_V", "S_x", "S_y", "out_g_ampa"):
        scale = np.abs(a[v].values).max()
        np.testing.assert_allclose(b[v].values, a[v].values, rtol=0, atol=1e-12 * scale)


def test_event_window_path_changes_only_the_rows_of_neurons_that_spiked():
    """Several neurons per instance, initial weights above the rule's hard bound: a post spike
    clips its own neuron's row only (the step path's semantics); the window path once clipped
    the rows of the instance's silent neurons too and drifted from the step path."""
    B, P, n_in = 4, 3, 13
    g = torch.Generator().manual_seed(32)
    W0 = 8.6e-9 * torch.rand(B, P, n_in, generator=g, dtype=torch.float64)  # w_max 5e-9

    def run(method: str):
        net = Network(dt=1e-4, batch=B, seed=32, dtype=torch.float64)
        inp = net.add(PoissonInput(n_in, rate=220.0, name="inp"))
        out = net.add(LIFPopulation(P, **{**LIF, "V_th": -52e-3}, t_ref=1e-3, name="out"))
        net.connect(inp, out, W0, PairSTDP.song2000(w_max=5e-9), name="S")
        return net.run(0.04, record=["S.W", "out.V", "out.spikes"], every=1e-3, progress=False,
                       method=method)

    a, b = run("step"), run("window")
    assert int(a["out_spikes"].sum()) > 50
    assert float(a["S_W"].max()) > 5e-9  # some rows still above the bound: not yet clipped
    np.testing.assert_array_equal(b["out_spikes"].values, a["out_spikes"].values)
    for v in ("S_W", "out_V"):
        scale = np.abs(a[v].values).max()
        np.testing.assert_allclose(b[v].values, a[v].values, rtol=0, atol=1e-12 * scale)


@pytest.mark.parametrize("method", ["step", "window"])
def test_weights_outside_the_bounds_change_at_their_own_events_only(method):
    """Initial weights above a hard bound are clipped when their own synapse sees an event, on
    every path: per-instance rule parameters (the step path's general form) give each
    instance what the same parameters as scalars give it alone (the compact form); the general
    form once clipped the whole batch at any spike."""
    B, n_in = 3, 40
    g = torch.Generator().manual_seed(13)
    W0 = 6.2e-9 * torch.rand(B, 1, n_in, generator=g, dtype=torch.float64)  # w_max 5e-9
    A = 1e-10 * (1 + torch.rand(B, generator=g, dtype=torch.float64))

    def run(b: int | None):
        a, w = (A, W0) if b is None else (float(A[b]), W0[b:b + 1])
        rule = PairSTDP(tau_plus=20e-3, tau_minus=20e-3, A_plus=a, A_minus=1.1 * a,
                        bounds="hard", w_min=0.0, w_max=5e-9)
        net = Network(dt=1e-4, batch=B if b is None else 1, seed=13 if b is None else 13 + b,
                      dtype=torch.float64)
        inp = net.add(PoissonInput(n_in, rate=200.0, name="inp"))
        out = net.add(LIFPopulation(1, **{**LIF, "V_th": -52e-3}, name="out"))
        net.connect(inp, out, w, rule, name="S")
        return net.run(0.04, record=["S.W", "out.spikes"], every=0.002, progress=False,
                       method=method)

    full = run(None)
    assert float(full["S_W"].isel(time=0).max()) > 5e-9  # not clipped all at once
    for b in range(B):
        one = run(b)
        np.testing.assert_array_equal(full["out_spikes"].values[b], one["out_spikes"].values[0])
        np.testing.assert_allclose(full["S_W"].values[b], one["S_W"].values[0], rtol=0,
                                   atol=1e-21)


@pytest.mark.parametrize("drive", [None, 60e-3])
def test_event_window_path_with_gaba_equals_the_step_path(drive):
    """Feed-forward inhibition (a second Poisson input onto GABA synapses, static; plus a GABA
    projection from the excitatory input with Vogels et al.'s inhibitory STDP) with plastic AMPA
    input, conductance-based
    or fixed-drive AMPA: the window path (which solves both conductances and V in closed form
    between post spikes) gives the step path's spikes, and its weights, V and conductances up to
    rounding, in float64; the inhibition lowers the spike count."""
    def net(inhibit: bool) -> Network:
        rate, V_th, tau_a, W0 = _params(6)
        n = Network(dt=1e-4, batch=6, seed=3, dtype=torch.float64)
        inp = n.add(PoissonInput(20, rate=rate, name="inp"))
        out = n.add(LIFPopulation(1, **{**LIF, "V_th": V_th}, t_ref=1e-3, tau_ampa=tau_a,
                                  ampa_drive=drive, name="out"))
        w = 4e-9 if drive is None else 4e-9 * 70e-3 / drive
        n.connect(inp, out, W0 * w / 4e-9, PairSTDP.song2000(w_max=5e-9 * w / 4e-9), name="S")
        if inhibit:
            inh = n.add(PoissonInput(8, rate=300.0, name="inh"))
            g = torch.Generator().manual_seed(5)
            n.connect(inh, out, 2e-9 * torch.rand(6, 1, 8, generator=g, dtype=torch.float64),
                      name="I", target="gaba")
            n.connect(inp, out, 0.5e-9, InhibitorySTDP(eta=5e-11, rho0=10.0), name="SI",
                      target="gaba")
        return n

    rec = ["S.W", "SI.W", "out.V", "out.spikes", "out.g_ampa", "out.g_gaba"]
    kw = dict(record=rec, every=0.004, progress=False)
    a = net(True).run(0.06, method="step", **kw)
    b = net(True).run(0.06, method="window", **kw)
    assert int(a["out_spikes"].sum()) > 20
    assert float(a["out_g_gaba"].max()) > 0
    free = net(False).run(0.06, record=["out.spikes"], every=0.004, progress=False)
    assert int(free["out_spikes"].sum()) > int(a["out_spikes"].sum())
    np.testing.assert_array_equal(a["out_spikes"].values, b["out_spikes"].values)
    for v in ("S_W", "SI_W", "out_V", "out_g_ampa", "out_g_gaba"):
        scale = np.abs(a[v].values).max()
        np.testing.assert_allclose(b[v].values, a[v].values, rtol=0, atol=1e-12 * scale)


@pytest.mark.parametrize("method", ["step", "window"])
def test_pair_stdp_in_the_engine_matches_the_closed_form(method):
    """Pre spike at t_pre; a driver input makes the post neuron fire one step after t_drive.
    The final weight is W0 + A+ exp(-(t_post - t_pre)/tau+) or
    W0 - A- exp(-(t_pre - t_post)/tau-)."""
    dt = 1e-4
    delays = [-12e-3, -3e-3, 2e-3, 9e-3]  # t_post - t_pre
    B = len(delays)
    t_pre = 20e-3
    net = Network(dt=dt, batch=B, dtype=torch.float64)
    pre = net.add(SpikeTimesInput(1, times=[t_pre] * B, indices=[0] * B,
                                  instances=list(range(B)), name="pre"))
    t_post = [t_pre + d for d in delays]
    drv = net.add(SpikeTimesInput(1, times=[t - dt for t in t_post], indices=[0] * B,
                                  instances=list(range(B)), name="drv"))
    post = net.add(LIFPopulation(1, **LIF, t_ref=40e-3, tau_ampa=2e-4, name="post"))
    net.connect(drv, post, torch.full((1, 1), 1e-6), name="D")
    rule = PairSTDP(tau_plus=16.8e-3, tau_minus=33.7e-3, A_plus=0.01, A_minus=0.007)
    net.connect(pre, post, torch.full((1, 1), 0.5e-12), rule, name="S")
    ds = net.run(0.05, record=["S.W", "post.spikes"], every=0.05, progress=False, method=method)
    assert (ds["post_spikes"].values[:, 0, 0] == 1).all()
    W = ds["S_W"].values[:, 0, 0, 0]
    for b, d in enumerate(delays):
        want = 0.5e-12 + (0.01 * math.exp(-d / 16.8e-3) if d > 0
                          else -0.007 * math.exp(d / 33.7e-3))
        assert W[b] == pytest.approx(want, rel=1e-12)


def test_delta_rule_in_the_engine_equals_the_oracle_scan():
    """Rate rule driven by rates: W_t = W + eta dt (v - W k) (x) k, against scan_recurrent."""
    dt, T, n_pre, n_post, B = 1e-3, 40, 5, 3, 2
    g = torch.Generator().manual_seed(0)
    k = torch.rand(T, B, n_pre, generator=g, dtype=torch.float64)
    v = torch.rand(T, B, n_post, generator=g, dtype=torch.float64)
    W0 = 0.1 * torch.randn(B, n_post, n_pre, generator=g, dtype=torch.float64)
    eta = torch.tensor([3.0, 7.0], dtype=torch.float64)
    net = Network(dt=dt, batch=B, dtype=torch.float64)
    src = net.add(RateInput(n_pre, rate=k, rate_dt=dt, name="src"))
    val = net.add(RateInput(n_post, rate=v, rate_dt=dt, name="val"))
    pop = net.add(RatePopulation(n_post, tau=10e-3, name="pop"))
    net.connect(src, pop, W0, "delta", eta=eta, value=val, name="S")
    ds = net.run(T * dt, record=["S.W"], every=T * dt, progress=False)
    kk = k.permute(1, 0, 2).unsqueeze(2)
    vv = v.permute(1, 0, 2).unsqueeze(2)
    gates = {"eta": (eta * dt).reshape(B, 1, 1).expand(B, T, 1), "decay": None, "gate": None}
    _, W_T, _ = scan_recurrent(kk, kk, vv, rules.get("delta"), gates, W0.unsqueeze(1))
    np.testing.assert_allclose(ds["S_W"].values[:, -1], W_T[:, 0].numpy(), rtol=1e-12,
                               atol=1e-14)
    assert ds.coords["S_eta"].attrs["units"] == "1/s"


def test_calcium_nmda_hebbian_with_decay_runs_and_records():
    """AMPA W plastic by mamba2 (decay tau), NMDA U giving v = B(V) U k, filtered spikes."""
    net = Network(dt=1e-4, batch=2, seed=1, dtype=torch.float64)
    inp = net.add(PoissonInput(8, rate=torch.tensor([20.0, 40.0]), name="inp"))
    lif = net.add(LIFPopulation(2, **LIF, name="out"))
    S = net.connect(inp, lif, 1e-9, "mamba2", U0=torch.full((2, 8), 0.5e-9), eta=10.0,
                    tau_decay=0.5, tau_pre=20e-3, calcium="mg_block", bounds="hard",
                    w_min=0.0, w_max=5e-9, name="S")
    ds = net.run(0.02, record=["S.W", "S.v", "S.x_pre", "out.g_nmda"], every=0.01,
                 progress=False)
    assert lif.uses["nmda"] and S.kind == "rate"
    assert float(ds["out_g_nmda"].max()) > 0
    assert float(ds["S_x_pre"].max()) > 0
    assert (ds["S_W"].values <= 5e-9).all() and (ds["S_W"].values >= 0).all()
    for name, var in ds.variables.items():
        assert "units" in var.attrs and "long_name" in var.attrs, name


def test_synaptic_delay_shifts_the_conductance():
    dt = 1e-4
    out = []
    for delay in (0.0, 2e-3):
        net = Network(dt=dt, batch=1, dtype=torch.float64)
        inp = net.add(SpikeTimesInput(1, times=[1e-3], indices=[0], name="inp"))
        lif = net.add(LIFPopulation(1, **LIF, name="out"))
        net.connect(inp, lif, torch.full((1, 1), 1e-9), delay=delay, name="S")
        ds = net.run(0.006, record=["out.g_ampa"], progress=False)
        out.append(ds["out_g_ampa"].values[0, :, 0])
    first = [int(np.argmax(g > 0)) for g in out]
    assert first[1] - first[0] == 20


def test_poisson_rates_thinning_and_batch_size_independence():
    dt, T = 1e-3, 2.0
    rates = torch.tensor([5.0, 50.0])
    net = Network(dt=dt, batch=2, seed=3, dtype=torch.float64)
    net.add(PoissonInput(200, rate=rates, name="p"))
    net.add(PoissonInput(200, rate=lambda t: 40.0 * (t > 1.0).to(torch.float64)[:, None, None],
                         max_rate=40.0, name="q"))
    ds = net.run(T, record=["p.spikes", "q.spikes"], every=0.5, progress=False)
    counts = ds["p_spikes"].values.sum((1, 2))
    p = -np.expm1(-rates.numpy() * dt)
    expect = 200 * T / dt * p
    assert np.all(np.abs(counts - expect) < 4 * np.sqrt(expect))
    q = ds["q_spikes"].values.sum(2)  # (batch, 4 records of 0.5 s)
    assert q[:, :2].sum() == 0
    eq = 200 * 1.0 / dt * -np.expm1(-40 * dt)
    assert np.all(np.abs(q[:, 2:].sum(1) - eq) < 4 * np.sqrt(eq))
    # instance 1 alone (seed 3 + 1) gets the same spikes
    one = Network(dt=dt, batch=1, seed=4, dtype=torch.float64)
    one.add(PoissonInput(200, rate=rates[1:], name="p"))
    d1 = one.run(T, record=["p.spikes"], every=0.5, progress=False)
    np.testing.assert_array_equal(d1["p_spikes"].values[0], ds["p_spikes"].values[1])


def test_place_cells_and_plateau_at_a_position():
    dt = 1e-3
    track = PlaceCellInput(10, track_length=2.0, speed=0.5, width=0.1, peak_rate=30.0,
                           circular=True, spiking=False, name="ca3")
    plateau = PlateauInput(1, positions=[1.0], track=track, duration=0.3, laps=[1], name="ec3")
    net = Network(dt=dt, batch=1, dtype=torch.float64)
    net.add(track, plateau)
    ds = net.run(8.0, record=["ca3.rate", "ec3.rate"], every=dt, progress=False)
    r = ds["ca3_rate"].values[0]
    t = ds["time"].values
    peak_t = t[np.argmax(r[:4000, 5])]  # cell 5 has its centre at 1.1 m; lap 0
    assert peak_t == pytest.approx((1.1 - 0.0) / 0.5, abs=2 * dt)
    on = t[ds["ec3_rate"].values[0, :, 0] > 0]
    assert on[0] == pytest.approx(4.0 + 1.0 / 0.5 + dt, abs=1.5 * dt)  # lap 1 reaches 1.0 m
    assert on[-1] - on[0] == pytest.approx(0.3 - dt, abs=1.5 * dt)


def test_sweep_coordinates_and_attrs():
    net = Network(dt=1e-4, batch=3, seed=5, dtype=torch.float64)
    inp = net.add(PoissonInput(4, rate=torch.tensor([10.0, 20.0, 30.0]), name="inp"))
    lif = net.add(LIFPopulation(1, **LIF, tau_ampa=torch.tensor([2e-3, 4e-3, 6e-3]),
                                name="out"))
    net.connect(inp, lif, 1e-9, PairSTDP.song2000(w_max=2e-9), name="S")
    ds = net.run(0.002, record=["S.W", "out.V"], every=0.001, progress=False)
    assert list(ds.coords["inp_rate"].values) == [10.0, 20.0, 30.0]
    assert ds.coords["out_tau_ampa"].attrs["units"] == "s"
    assert list(ds.coords["seed"].values) == [5, 6, 7]
    assert ds.attrs["dt"] == 1e-4 and ds.attrs["S_rule"] == "pair_stdp"
    assert "version" in ds.attrs
    np.testing.assert_allclose(ds["time"].values, [0.001, 0.002])
    assert ds["S_W"].dims == ("batch", "time", "post", "pre")


def test_non_finite_state_stops_with_step_variable_and_instance():
    net = Network(dt=1e-3, batch=4, dtype=torch.float64)
    src = net.add(RateInput(1, rate=1.0, name="src"))
    gain = torch.tensor([1.0, 1.0, 1.0, 1e200], dtype=torch.float64)
    pop = net.add(RatePopulation(1, tau=2e-3, gain=gain, name="r"))
    net.connect(src, pop, torch.ones(1, 1), name="S1")
    net.connect(pop, pop, torch.full((1, 1), 1e200, dtype=torch.float64), name="rec")
    with pytest.raises(NonFiniteError, match=r"step \d+.*r\.\w+, instance 3"):
        net.run(0.05, progress=False)


def test_event_window_path_with_per_instance_rule_parameters():
    """A sweep of rule amplitudes (one per instance) takes the window path, which gathers each
    event's instance's parameters: the same spikes as the step path and the same weights and
    traces up to rounding (float64); the same for a sweep of the time constants, each instance
    equal to its own run."""
    B = 6
    rate, V_th, tau_a, W0 = _params(B)
    A = torch.linspace(0.5e-10, 3e-10, B, dtype=torch.float64)
    rule = PairSTDP(tau_plus=20e-3, tau_minus=20e-3, A_plus=A, A_minus=1.05 * A,
                    bounds="hard", w_min=0.0, w_max=5e-9)
    rec = ["S.W", "out.spikes", "S.x", "S.y", "out.V"]
    res = {m: _stdp_net(B, 3, rate, V_th, tau_a, W0, rule).run(
        0.06, record=rec, every=0.004, progress=False, method=m) for m in ("step", "window")}
    a, b = res["step"], res["window"]
    assert int(a["out_spikes"].sum()) > 50
    np.testing.assert_array_equal(a["out_spikes"].values, b["out_spikes"].values)
    for v in ("S_W", "S_x", "S_y", "out_V"):
        scale = np.abs(a[v].values).max()
        np.testing.assert_allclose(b[v].values, a[v].values, rtol=0, atol=1e-12 * scale)
    dW = np.abs(a["S_W"].values[:, -1] - W0.numpy()).max(axis=(1, 2))
    assert dW[-1] > dW[0] > 0  # larger amplitudes, larger changes
    # time constants swept too (the decay tables are per instance)
    taus = torch.linspace(10e-3, 40e-3, B, dtype=torch.float64)
    swept = PairSTDP(tau_plus=taus, tau_minus=taus.flip(0), A_plus=A, A_minus=1.05 * A,
                     bounds="hard", w_min=0.0, w_max=5e-9)
    res = {m: _stdp_net(B, 3, rate, V_th, tau_a, W0, swept).run(
        0.06, record=rec, every=0.004, progress=False, method=m) for m in ("step", "window")}
    a, b = res["step"], res["window"]
    np.testing.assert_array_equal(a["out_spikes"].values, b["out_spikes"].values)
    for v in ("S_W", "S_x", "S_y", "out_V"):
        scale = np.abs(a[v].values).max()
        np.testing.assert_allclose(b[v].values, a[v].values, rtol=0, atol=1e-12 * scale)
    one = _stdp_net(1, 3, rate[:1], V_th[:1], tau_a[:1], W0[:1], dataclasses.replace(
        swept, tau_plus=taus[:1], tau_minus=taus.flip(0)[:1], A_plus=A[:1], A_minus=1.05 * A[:1])
    ).run(0.06, record=rec, every=0.004, progress=False, method="window")
    np.testing.assert_array_equal(one["S_W"].values[0], b["S_W"].values[0])  # instance 0 alone


def test_event_window_path_with_per_neuron_initial_potentials():
    """Per-neuron V_init (batch, n) on the window path equals the step path."""
    B, n_post, n_in = 3, 4, 20
    g = torch.Generator().manual_seed(5)
    V0 = -60e-3 + 8e-3 * torch.rand(B, n_post, generator=g, dtype=torch.float64)
    W0 = 4e-9 * torch.rand(B, n_post, n_in, generator=g, dtype=torch.float64)

    def net():
        nw = Network(dt=1e-4, batch=B, seed=2, dtype=torch.float64)
        inp = nw.add(PoissonInput(n_in, rate=250.0, name="inp"))
        lif = nw.add(LIFPopulation(n_post, **LIF, t_ref=1e-3, V_init=V0, name="out"))
        nw.connect(inp, lif, W0, PairSTDP.song2000(w_max=5e-9), name="S")
        return nw

    kw = dict(record=["S.W", "out.V", "out.spikes"], every=0.002, progress=False)
    a, b = net().run(0.03, method="step", **kw), net().run(0.03, method="window", **kw)
    assert int(a["out_spikes"].sum()) > 10
    np.testing.assert_array_equal(a["out_spikes"].values, b["out_spikes"].values)
    np.testing.assert_allclose(a["out_V"].values[:, 0], V0.numpy(), atol=3e-3)  # starts apart
    for v in ("S_W", "out_V"):
        scale = np.abs(a[v].values).max()
        np.testing.assert_allclose(b[v].values, a[v].values, rtol=0, atol=1e-12 * scale)


def test_static_weights_pre_major_shared_by_snapshots_copied_by_state_dict():
    """Static projections from spikes keep W presynaptic-major (same shape and values); the
    engine's per-chunk snapshots share them, while state_dict() stays a full copy."""
    net = Network(dt=1e-4, batch=2, seed=0, dtype=torch.float64)
    inp = net.add(PoissonInput(5, rate=200.0, name="inp"))
    lif = net.add(LIFPopulation(3, **LIF, name="out"))
    W_ff = 3e-9 * torch.rand(2, 3, 5, dtype=torch.float64)
    net.connect(inp, lif, W_ff, name="FF")
    net.connect(lif, lif, torch.full((3, 3), 1e-9, dtype=torch.float64), name="REC")
    net.connect(inp, lif, 1e-9, PairSTDP.song2000(w_max=5e-9), name="S")
    ds = net.run(0.02, record=["FF.W"], every=0.01, progress=False)
    np.testing.assert_array_equal(ds["FF_W"].values[:, -1], W_ff.numpy())
    st = net._state["proj"]
    assert st["FF"]["W"].stride() == (15, 1, 3) and st["REC"]["W"].stride() == (9, 1, 3)
    assert st["S"]["W"].is_contiguous()
    snap = net._snapshot()["state"]["proj"]
    assert snap["FF"]["W"] is st["FF"]["W"] and snap["REC"]["W"] is st["REC"]["W"]
    assert snap["S"]["W"] is not st["S"]["W"]
    net.state_dict()["state"]["proj"]["FF"]["W"].zero_()
    np.testing.assert_array_equal(st["FF"]["W"].numpy(), W_ff.numpy())


def test_connection_mask_keeps_absent_synapses_at_zero():
    """A plastic projection with a mask: absent synapses stay exactly 0 while the present ones
    learn (pair STDP, on the path method='auto' takes); the event-window path equals the step
    path with the mask; an all-True mask changes nothing; a rate rule keeps them at 0 too; bad
    masks are named."""
    B, n_post, n_in = 2, 3, 20
    rate, V_th, tau_a, W0 = _params(B, n_in)
    W0 = W0.expand(B, n_post, n_in).clone()
    g = torch.Generator().manual_seed(7)
    mask = torch.rand(B, n_post, n_in, generator=g) < 0.5

    def run(m, method="auto"):
        net = Network(dt=1e-4, batch=B, seed=3, dtype=torch.float64)
        inp = net.add(PoissonInput(n_in, rate=rate, name="inp"))
        lif = net.add(LIFPopulation(n_post, **LIF, t_ref=1e-3, name="out"))
        net.connect(inp, lif, W0, PairSTDP.song2000(w_max=5e-9), mask=m, name="S")
        return net.run(0.05, record=["S.W", "out.spikes"], every=0.01, progress=False,
                       method=method)

    ds = run(mask)
    W = ds["S_W"].values
    assert int(ds["out_spikes"].sum()) > 10
    m = mask.numpy()
    for b in range(B):  # (time, post, pre): absent synapses 0 at every record
        assert np.all(W[b][:, ~m[b]] == 0)
    assert np.abs(W[:, -1] - W[:, 0])[m].max() > 1e-11  # the present ones learn
    full = run(torch.ones(n_post, n_in, dtype=torch.bool), method="step")
    none = run(None, method="step")
    np.testing.assert_array_equal(full["S_W"].values, none["S_W"].values)
    # the event-window path keeps the mask too, and equals the step path up to rounding
    step, window = run(mask, method="step"), run(mask, method="window")
    np.testing.assert_array_equal(window["out_spikes"].values, step["out_spikes"].values)
    Ws = step["S_W"].values
    np.testing.assert_allclose(window["S_W"].values, Ws, rtol=0, atol=1e-12 * np.abs(Ws).max())
    for b in range(B):
        assert np.all(window["S_W"].values[b][:, ~m[b]] == 0)
    # a rate rule
    net = Network(dt=1e-3, batch=1, dtype=torch.float64)
    src = net.add(RateInput(4, rate=5.0, name="src"))
    pop = net.add(RatePopulation(2, tau=10e-3, I_ext=1.0, name="pop"))
    m2 = torch.tensor([[True, False, True, False], [False, True, True, True]])
    net.connect(src, pop, 0.1, "hebbian", eta=1.0, mask=m2, name="H")
    Wr = net.run(0.05, record=["H.W"], every=0.05, progress=False)["H_W"].values[0, -1]
    assert np.all(Wr[~m2.numpy()] == 0) and np.all(Wr[m2.numpy()] > 0.1)
    with pytest.raises(TypeError, match="mask must be a bool tensor"):
        net.connect(src, pop, 0.1, mask=m2.float(), name="H2")
    with pytest.raises(ValueError, match=r"mask must have shape \(n_post, n_pre\) = \(2, 4\)"):
        net.connect(src, pop, 0.1, mask=m2[:, :3], name="H3")
    net2 = Network(dt=1e-3, batch=2, dtype=torch.float64)
    src2 = net2.add(RateInput(4, rate=5.0, name="src"))
    pop2 = net2.add(RatePopulation(2, tau=10e-3, name="pop"))
    with pytest.raises(ValueError, match=r"mask has shape \(3, 2, 4\) but the network has b"):
        net2.connect(src2, pop2, 0.1, mask=torch.ones(3, 2, 4, dtype=torch.bool), name="H")


def test_connection_mask_with_a_continuous_calcium_rule():
    """Graupner & Brunel's rule (continuous dynamics, advanced every step): absent synapses
    stay 0 while the present ones move."""
    from synaptic_fwp.plasticity import GraupnerBrunel

    net = Network(dt=1e-4, batch=2, seed=0, dtype=torch.float64)
    inp = net.add(PoissonInput(6, rate=50.0, name="inp"))
    lif = net.add(LIFPopulation(2, **{**LIF, "E_L": -60e-3}, I_ext=0.25e-9, name="out"))
    m = torch.rand(2, 2, 6, generator=torch.Generator().manual_seed(1)) < 0.5
    net.connect(inp, lif, 0.5, GraupnerBrunel.from_table(), mask=m, name="S")
    ds = net.run(0.2, record=["S.W", "out.spikes"], every=0.1, progress=False)
    W = ds["S_W"].values[:, -1]
    assert int(ds["out_spikes"].sum()) > 10
    assert np.all(W[~m.numpy()] == 0) and np.abs(W[m.numpy()] - 0.5).min() > 1e-6


def test_masked_synapse_lists_equal_the_dense_event_path_for_triplet_stdp():
    """A mask's synapse lists (on_pre and on_post on the existing synapses only) give exactly
    the dense event path's result when every synapse exists (triplet STDP: two pre and two post
    traces), and the absent ones stay 0 otherwise."""
    from synaptic_fwp.plasticity import TripletSTDP

    B, n_post, n_in = 2, 4, 20
    rate, V_th, tau_a, W0 = _params(B, n_in)
    W0 = W0.expand(B, n_post, n_in).clone()
    tri = TripletSTDP.from_table(bounds="hard", w_min=0.0, w_max=5e-9)
    rule = dataclasses.replace(tri, **{k: getattr(tri, k) * 1e-9 for k in (
        "A2_plus", "A3_plus", "A2_minus", "A3_minus")})

    def run(m):
        net = Network(dt=1e-4, batch=B, seed=3, dtype=torch.float64)
        inp = net.add(PoissonInput(n_in, rate=rate, name="inp"))
        lif = net.add(LIFPopulation(n_post, **LIF, t_ref=1e-3, name="out"))
        net.connect(inp, lif, W0, rule, mask=m, name="S")
        return net.run(0.05, record=["S.W", "out.spikes", "S.r1", "S.r2", "S.o2"], every=0.01,
                       progress=False, method="step")

    full, none = run(torch.ones(n_post, n_in, dtype=torch.bool)), run(None)
    assert int(full["out_spikes"].sum()) > 10
    for v in ("S_W", "out_spikes", "S_r1", "S_o2"):
        np.testing.assert_array_equal(full[v].values, none[v].values)
    m = torch.rand(B, n_post, n_in, generator=torch.Generator().manual_seed(2)) < 0.4
    W = run(m)["S_W"].values[:, -1]
    assert np.all(W[~m.numpy()] == 0) and np.abs(W[m.numpy()] - W0.numpy()[m.numpy()]).max() > 0
    # the presynaptic traces follow the input spikes alone: with or without a mask, and whether
    # every input has a synapse (jumps taken at its first synapse) or one has none (the rule
    # called on the spikes alone), they equal the unmasked run's exactly
    each = m.clone()
    each[:, 0] = True  # every input has a synapse
    lone = each.clone()
    lone[:, :, 0] = False  # input 0 has none
    for mm in (each, lone):
        ds = run(mm)
        for v in ("S_r1", "S_r2"):
            np.testing.assert_array_equal(ds[v].values, none[v].values)
    # a mask shared by the instances (its lists built once, repeated) equals it given per instance
    shared, per = run(m[0]), run(m[0].expand(B, n_post, n_in).clone())
    for v in ("S_W", "out_spikes", "S_r1", "S_o2"):
        np.testing.assert_array_equal(shared[v].values, per[v].values)


def _busy_net(n_post: int, batch: int = 2) -> Network:
    """200 Poisson inputs onto ``n_post`` LIF neurons with pair STDP, float64: with 12 neurons
    postsynaptic spikes come every ~2 steps (short windows), with 1 every ~30 (long ones)."""
    net = Network(dt=1e-4, batch=batch, seed=4, dtype=torch.float64)
    inp = net.add(PoissonInput(200, rate=40.0, name="inp"))
    out = net.add(LIFPopulation(n_post, **LIF, t_ref=1e-3, name="out"))
    W0 = 1.5e-9 * torch.rand(batch, n_post, 200, generator=torch.Generator().manual_seed(0),
                             dtype=torch.float64)
    net.connect(inp, out, W0, PairSTDP.song2000(w_max=3e-9), name="S")
    return net


def test_auto_leaves_the_window_path_when_windows_are_short(tmp_path):
    """method='auto' starts on the event-window path; when postsynaptic spikes cut its windows
    into segments shorter than WINDOW_MIN_STEPS steps it goes on with the step path (where it
    is faster), from the step its first window ended, with the same records as the step path
    (float64: same spikes, values to rounding); the choice is kept for later runs and across an
    interrupted, resumed run; a network with long windows keeps the window path."""
    from synaptic_fwp import engine

    rec = ["out.spikes", "out.V", "S.W"]
    kw = dict(record=rec, every=2e-3, progress=False, chunk=100)
    ref = _busy_net(12).run(0.03, method="step", **kw)
    net = _busy_net(12)
    calls = {"window": 0, "step": 0}
    real_w, real_s = engine._WindowPath.run_chunk, Network._run_chunk

    def count_w(self, *a, **k):
        calls["window"] += 1
        return real_w(self, *a, **k)

    def count_s(self, *a, **k):
        calls["step"] += 1
        return real_s(self, *a, **k)

    try:
        engine._WindowPath.run_chunk, Network._run_chunk = count_w, count_s
        ds = net.run(0.03, **kw)
    finally:
        engine._WindowPath.run_chunk, Network._run_chunk = real_w, real_s
    assert net._windows_short and calls["window"] == 1 and calls["step"] == 3
    # an instance's neurons spike every ~2.4 steps (any of them ends a segment): busy indeed
    assert 300 * 2 / int(ref["out_spikes"].sum()) < engine.WINDOW_MIN_STEPS / 2
    np.testing.assert_array_equal(ds["out_spikes"].values, ref["out_spikes"].values)
    for v in ("out_V", "S_W"):
        scale = np.abs(ref[v].values).max()
        np.testing.assert_allclose(ds[v].values, ref[v].values, rtol=0, atol=1e-12 * scale)
    # interrupted after its second chunk and resumed: the same Dataset as uninterrupted
    out = str(tmp_path / "busy.nc")

    def stop(step):
        if step >= 200:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _busy_net(12).run(0.03, out=out, on_chunk=stop, **kw)
    again = _busy_net(12).run(0.03, out=out, resume=True, **kw)
    whole = _busy_net(12).run(0.03, out=str(tmp_path / "whole.nc"), **kw)
    for v in ("out_spikes", "out_V", "S_W"):
        np.testing.assert_array_equal(again[v].values, whole[v].values)
    # windows shorter than the recording interval (every 500 steps, K = 125): the step path
    # finishes the interval the probe stopped in, its spike counts carried on
    kw50 = dict(record=rec, every=0.05, progress=False)
    ref50 = _busy_net(12).run(0.15, method="step", **kw50)
    net50 = _busy_net(12)
    ds50 = net50.run(0.15, **kw50)
    assert net50._windows_short
    np.testing.assert_array_equal(ds50["out_spikes"].values, ref50["out_spikes"].values)
    np.testing.assert_array_equal(ds50["time"].values, ref50["time"].values)
    for v in ("out_V", "S_W"):
        scale = np.abs(ref50[v].values).max()
        np.testing.assert_allclose(ds50[v].values, ref50[v].values, rtol=0, atol=1e-12 * scale)
    # one neuron, a spike every few tens of steps: the window path all along
    calm = _busy_net(1)
    calm.run(0.03, **kw)
    assert not calm._windows_short


def test_synaptic_fwp_threads_applies_to_a_run_and_is_restored(monkeypatch):
    """SYNAPTIC_FWP_THREADS sets the intra-op threads for the run only (as for scan); a bad
    value is refused before any step."""
    seen = []
    monkeypatch.setenv("SYNAPTIC_FWP_THREADS", "1")
    old = torch.get_num_threads()
    net = _busy_net(1, batch=1)
    net.run(0.002, progress=False, chunk=10,
            on_chunk=lambda s: seen.append(torch.get_num_threads()))
    assert seen and set(seen) == {1} and torch.get_num_threads() == old
    monkeypatch.setenv("SYNAPTIC_FWP_THREADS", "many")
    net2 = _busy_net(1, batch=1)
    with pytest.raises(ValueError, match="SYNAPTIC_FWP_THREADS must be a positive int"):
        net2.run(0.002, progress=False)
    assert net2._step == 0
