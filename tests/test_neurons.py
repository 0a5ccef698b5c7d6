"""Neuron populations against closed forms (f-I curve, membrane trace, rate relaxation)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

from synaptic_fwp.engine import Network
from synaptic_fwp.inputs import RateInput, SpikeTimesInput
from synaptic_fwp.neurons import LIFPopulation, RatePopulation, lif_rate, mg_block

P = dict(C=200e-12, g_L=10e-9, E_L=-70e-3, V_th=-50e-3, V_reset=-60e-3)


def test_lif_fi_curve_matches_closed_form_within_1_percent():
    currents = torch.tensor([0.25e-9, 0.3e-9, 0.4e-9, 0.6e-9])
    dt, T = 5e-5, 0.2
    net = Network(dt=dt, batch=4, dtype=torch.float64)
    net.add(LIFPopulation(1, **P, t_ref=2e-3, I_ext=currents, V_init=-60e-3, name="n"))
    ds = net.run(T, record=["n.spikes"], progress=False)
    spikes = ds["n_spikes"].values[:, :, 0]
    t = ds["time"].values
    for b, I in enumerate(currents.tolist()):
        ts = t[spikes[b] > 0]
        assert len(ts) >= 3
        rate = (len(ts) - 1) / (ts[-1] - ts[0])
        want = lif_rate(I, **P, t_ref=2e-3)
        assert abs(rate - want) / want < 0.01, (I, rate, want)


def test_lif_below_threshold_trace_is_the_analytic_solution():
    dt = 1e-4
    net = Network(dt=dt, batch=2, dtype=torch.float64)
    I = torch.tensor([0.1e-9, 0.15e-9])  # V_inf = -60 mV and -55 mV < V_th
    net.add(LIFPopulation(1, **P, I_ext=I, V_init=-70e-3, name="n"))
    ds = net.run(0.1, record=["n.V"], progress=False)
    t = ds["time"].values
    tau = P["C"] / P["g_L"]
    for b in range(2):
        V_inf = P["E_L"] + float(I[b]) / P["g_L"]
        want = V_inf + (-70e-3 - V_inf) * np.exp(-t / tau)
        np.testing.assert_allclose(ds["n_V"].values[b, :, 0], want, rtol=1e-12, atol=1e-15)


def test_lif_conductance_trace_matches_ode_solution():
    """One AMPA input spike: V(t) against scipy's solution of the continuous ODE (the engine
    holds g over a step, so agreement is O(dt))."""
    dt = 1e-5
    w = 5e-9
    net = Network(dt=dt, batch=1, dtype=torch.float64)
    inp = net.add(SpikeTimesInput(1, times=[1e-3], indices=[0], name="inp"))
    lif = net.add(LIFPopulation(1, **P, V_init=-70e-3, tau_ampa=5e-3, name="n"))
    net.connect(inp, lif, torch.full((1, 1), w), name="S")
    ds = net.run(0.03, record=["n.V"], progress=False)
    t = ds["time"].values
    t_s = 1e-3 + dt  # the spike of step n raises g from step n + 1 on

    def rhs(tt, y):
        g = w * math.exp(-(tt - t_s) / 5e-3) if tt >= t_s else 0.0
        return [(P["g_L"] * (P["E_L"] - y[0]) + g * (0.0 - y[0])) / P["C"]]

    sol = solve_ivp(rhs, (0, t[-1]), [-70e-3], t_eval=t, rtol=1e-10, atol=1e-13, max_step=dt)
    err = np.abs(ds["n_V"].values[0, :, 0] - sol.y[0]).max()
    assert err < 2e-5  # 0.02 mV on a 5 mV EPSP
    assert ds["n_V"].values.max() > -66e-3  # the EPSP is there


def test_refractory_period_holds_reset():
    dt = 1e-4
    net = Network(dt=dt, batch=1, dtype=torch.float64)
    net.add(LIFPopulation(1, **P, t_ref=5e-3, I_ext=1e-9, V_init=-49e-3, name="n"))
    ds = net.run(0.02, record=["n.V", "n.spikes"], progress=False)
    V = ds["n_V"].values[0, :, 0]
    s = ds["n_spikes"].values[0, :, 0]
    first = int(np.argmax(s > 0))
    assert first == 0
    np.testing.assert_array_equal(V[first: first + 51], P["V_reset"])
    assert V[first + 51] > P["V_reset"]


def test_mg_block_jahr_stevens():
    V = torch.tensor([-80e-3, -60e-3, 0.0], dtype=torch.float64)
    want = 1 / (1 + torch.exp(-0.062 * V * 1e3) * 1.2 / 3.57)
    torch.testing.assert_close(mg_block(V, 1.2), want, rtol=1e-14, atol=0)


@pytest.mark.parametrize("f", ["linear", "rectified", "sigmoid", "saturating"])
def test_rate_population_relaxes_exactly(f):
    dt, tau = 1e-3, 20e-3
    net = Network(dt=dt, batch=2, dtype=torch.float64)
    pop = net.add(RatePopulation(3, tau=tau, f=f, gain=2.0, theta=0.5, r_max=50.0,
                                 I_ext=torch.tensor([1.5, 3.0]), name="r"))
    ds = net.run(0.05, record=["r.r"], progress=False)
    t = ds["time"].values
    I = torch.tensor([1.5, 3.0], dtype=torch.float64).reshape(2, 1)
    target = pop.f_of(I.expand(2, 3)).numpy()
    want = target[:, None, :] * (1 - np.exp(-t / tau))[None, :, None]
    np.testing.assert_allclose(ds["r_r"].values, want, rtol=1e-12, atol=1e-12)


def test_rate_population_driven_by_rate_input():
    dt = 1e-3
    net = Network(dt=dt, batch=1, dtype=torch.float64)
    src = net.add(RateInput(2, rate=torch.tensor([4.0, 6.0]), name="src"))
    pop = net.add(RatePopulation(1, tau=10e-3, name="r"))
    net.connect(src, pop, torch.tensor([[0.5, 1.0]]), name="S")
    ds = net.run(0.2, record=["r.r"], progress=False)
    assert ds["r_r"].values[0, -1, 0] == pytest.approx(8.0, rel=1e-6)


def test_per_neuron_initial_potential_relaxes_neuron_by_neuron():
    """``V_init`` of shape (batch, n): each neuron starts at its own value and relaxes along its
    own exponential; (1, n) gives every instance the same start."""
    dt, n = 1e-4, 5
    g = torch.Generator().manual_seed(3)
    V0 = -70e-3 + 15e-3 * torch.rand(2, n, generator=g, dtype=torch.float64)
    tau = P["C"] / P["g_L"]
    for V_init, rows in ((V0, (0, 1)), (V0[1:], (0, 0))):
        net = Network(dt=dt, batch=2, dtype=torch.float64)
        net.add(LIFPopulation(n, **P, V_init=V_init, name="n"))
        ds = net.run(0.02, record=["n.V"], progress=False)
        t = ds["time"].values
        for b, r in enumerate(rows):
            want = P["E_L"] + (V_init[r].numpy()[None, :] - P["E_L"]) * np.exp(-t / tau)[:, None]
            np.testing.assert_allclose(ds["n_V"].values[b], want, rtol=1e-12, atol=1e-15)


def test_per_neuron_initial_potential_instance_is_its_own_run():
    """Instance b of a batch with per-neuron V_init equals a batch of one started from row b
    (random inputs and spikes included)."""
    n, B = 4, 3
    g = torch.Generator().manual_seed(4)
    V0 = -60e-3 + 10e-3 * torch.rand(B, n, generator=g, dtype=torch.float64)

    def run(batch, seed, V_init):
        net = Network(dt=1e-4, batch=batch, seed=seed, dtype=torch.float64)
        net.add(LIFPopulation(n, **P, I_ext=0.21e-9, V_init=V_init, name="n"))
        return net.run(0.05, record=["n.V", "n.spikes"], every=0.005, progress=False)

    whole = run(B, 0, V0)
    assert int(whole["n_spikes"].sum()) > 0
    for b in range(B):
        one = run(1, b, V0[b : b + 1])
        np.testing.assert_array_equal(whole["n_V"].values[b], one["n_V"].values[0])
        np.testing.assert_array_equal(whole["n_spikes"].values[b], one["n_spikes"].values[0])


def test_per_neuron_initial_rates():
    net = Network(dt=1e-3, batch=2, dtype=torch.float64)
    r0 = torch.tensor([[1.0, 2.0, 3.0]], dtype=torch.float64)
    net.add(RatePopulation(3, tau=10e-3, r_init=r0, name="r"))
    ds = net.run(0.01, record=["r.r"], progress=False)
    want = r0.numpy() * np.exp(-ds["time"].values / 10e-3)[:, None]
    for b in range(2):
        np.testing.assert_allclose(ds["r_r"].values[b], want, rtol=1e-12)


@pytest.mark.parametrize(
    ("value", "err", "match"),
    [
        (torch.zeros(2, 4), ValueError, r"V_init has shape \(2, 4\); allowed: .*\(batch, 3\)"),
        (torch.zeros(2, 3, 1), ValueError, r"V_init has shape \(2, 3, 1\)"),
        (torch.zeros(2, 3, dtype=torch.int64), TypeError, "V_init must be a floating tensor"),
        (torch.tensor([[0.0, float("nan"), 0.0]]), ValueError, "V_init contains NaN"),
    ],
)
def test_per_neuron_initial_potential_bad_shapes_are_named(value, err, match):
    with pytest.raises(err, match=match):
        LIFPopulation(3, V_init=value, name="n")


def test_per_neuron_initial_potential_checked_against_the_batch():
    net = Network(dt=1e-4, batch=2)
    with pytest.raises(ValueError, match=r"V_init has shape \(3, 3\) but the network has batch=2"):
        net.add(LIFPopulation(3, V_init=torch.full((3, 3), -0.06), name="n"))
