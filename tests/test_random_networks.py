"""Random small networks through the engine's paths and against Brian2: the event-window path
equals the step path, and the step path equals the Brian2 export, for networks drawn at random
(sizes, rules, bounds, per-instance parameters, masks, delays, inhibition, fixed or
conductance drive, initial weights inside or above the rule's bound). The seeds kept here are a
few of larger campaigns: 120 feed-forward seeds of ``_feed_forward`` and 130 networks against
Brian2 agreed after the fixes of 4ef6d3a and d6988e8 (a post or pre spike clipped weights of
other neurons or instances to the rule's bounds); without them seeds 1009, 17, 29, 41 (window)
and 500 (Brian2) fail."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from synaptic_fwp.engine import Network
from synaptic_fwp.inputs import PoissonInput, SpikeTimesInput
from synaptic_fwp.neurons import LIFPopulation
from synaptic_fwp.plasticity import InhibitorySTDP, PairSTDP, TripletSTDP

W_MAX = 5e-9


def _rule(rng: np.random.Generator, B: int, g: torch.Generator):
    """Pair STDP (Song et al.), pair STDP with drawn time constants, bounds and (maybe)
    per-instance amplitudes, or the visual-cortex triplet rule (amplitudes in siemens)."""
    kind = int(rng.integers(0, 3))
    if kind == 0:
        return PairSTDP.song2000(w_max=W_MAX)
    if kind == 1:
        A = 1e-10 * (1 + torch.rand(B, generator=g, dtype=torch.float64)) \
            if rng.integers(0, 2) else 1e-10
        return PairSTDP(tau_plus=float(rng.uniform(5e-3, 40e-3)),
                        tau_minus=float(rng.uniform(5e-3, 40e-3)), A_plus=A, A_minus=1.1 * A,
                        bounds=["hard", "soft"][int(rng.integers(0, 2))], w_min=0.0, w_max=W_MAX)
    tri = TripletSTDP.from_table(pairing=["all_to_all", "nearest"][int(rng.integers(0, 2))],
                                 bounds="hard", w_min=0.0, w_max=W_MAX)
    return dataclasses.replace(
        tri, **{k: getattr(tri, k) * 4e-8 for k in ("A2_plus", "A3_plus", "A2_minus", "A3_minus")})


def _feed_forward(seed: int, method: str):
    """A random feed-forward network (Poisson inputs onto 1-4 LIF neurons, 1-4 instances) run
    on ``method``'s path; its records."""
    rng = np.random.default_rng(seed)
    g = torch.Generator().manual_seed(seed)
    B, n_in, P = int(rng.integers(1, 5)), int(rng.integers(3, 50)), int(rng.integers(1, 5))
    drive = [None, 60e-3][int(rng.integers(0, 2))]
    rule = _rule(rng, B, g)
    mask = torch.rand(B, P, n_in, generator=g) < float(rng.uniform(0.2, 0.9)) \
        if rng.integers(0, 2) else None
    over = float(rng.choice([1.0, 1.8]))  # 1.8: some initial weights above the bound
    w = 4e-9 * (30 / n_in) ** 0.5 * (1 if drive is None else 70e-3 / drive) * over
    W0 = w * torch.rand(B, P, n_in, generator=g, dtype=torch.float64)
    V_th = -52e-3 + 3e-3 * torch.rand(B, generator=g, dtype=torch.float64)
    net = Network(dt=1e-4, batch=B, seed=seed, dtype=torch.float64)
    inp = net.add(PoissonInput(n_in, rate=float(rng.uniform(50, 300)), name="inp"))
    out = net.add(LIFPopulation(P, C=200e-12, g_L=10e-9, E_L=-70e-3, V_th=V_th, V_reset=-60e-3,
                                t_ref=float(rng.choice([0.0, 1e-3])), ampa_drive=drive,
                                name="out"))
    net.connect(inp, out, W0, rule, mask=mask, name="S")
    rec = ["S.W", "out.spikes", "out.V"]
    if rng.integers(0, 2):
        inh = net.add(PoissonInput(5, rate=200.0, name="inh"))
        net.connect(inh, out, 1e-9, InhibitorySTDP(eta=5e-11, rho0=10.0), target="gaba",
                    name="I")
        rec.append("I.W")
    return net.run(0.04, record=rec, every=0.002, progress=False, method=method)


@pytest.mark.parametrize("seed", [1002, 1009, 1013, 1038, 3, 17, 29, 41])
def test_random_feed_forward_networks_window_equals_step(seed):
    a, b = _feed_forward(seed, "step"), _feed_forward(seed, "window")
    np.testing.assert_array_equal(b["out_spikes"].values, a["out_spikes"].values)
    for v in [x for x in a.data_vars if x != "out_spikes"]:
        scale = np.abs(a[v].values).max()
        np.testing.assert_allclose(b[v].values, a[v].values, rtol=0, atol=1e-12 * scale,
                                   err_msg=v)


@pytest.mark.parametrize("seed", [500, 511, 523, 1004])
def test_random_networks_match_brian2(seed):
    """Spike-time inputs onto 1-4 LIF neurons (maybe recurrent, masked, delayed, inhibited,
    fixed-drive), one instance, step path against the Brian2 export (numpy code generation):
    the same spike steps and the same plastic weights."""
    pytest.importorskip("brian2")
    from synaptic_fwp.brian2_export import network_to_brian2

    rng = np.random.default_rng(seed)
    dt, T = 2.5e-4, 0.2
    n_in, nE = int(rng.integers(3, 12)), int(rng.integers(2, 5))
    drive = [None, 60e-3][int(rng.integers(0, 2))]
    over = float(rng.choice([1.0, 1.6]))
    times, idx = [], []
    for i in range(n_in):
        steps = np.unique(np.round(rng.uniform(0, T - 0.01, int(rng.integers(3, 20))) / dt))
        times += list(steps * dt)
        idx += [i] * steps.size
    lif = dict(C=200e-12, g_L=10e-9, E_L=-70e-3, V_th=-50e-3, V_reset=-60e-3,
               t_ref=float(rng.choice([0.0, 2e-3])), ampa_drive=drive)
    net = Network(dt=dt, batch=1, dtype=torch.float64)
    inp = net.add(SpikeTimesInput(n_in, times=times, indices=idx, name="inp"))
    E = net.add(LIFPopulation(nE, **lif, V_init=torch.as_tensor(
        rng.uniform(-66e-3, -52e-3, (1, nE))), name="E"))
    m = torch.as_tensor(rng.uniform(size=(nE, n_in)) < 0.6)
    W0 = torch.as_tensor(rng.uniform(2e-9, 6e-9 * over, (nE, n_in))) * m
    rule = dataclasses.replace(_rule(rng, 1, torch.Generator().manual_seed(seed)), w_max=8e-9)
    net.connect(inp, E, W0, rule, name="S", delay=float(rng.choice([0.0, 1e-3])), mask=m)
    wr = torch.as_tensor(rng.uniform(1e-9, 3e-9 * over, (nE, nE))
                         * (rng.uniform(size=(nE, nE)) < 0.5))
    net.connect(E, E, wr, PairSTDP.song2000(w_max=4e-9), mask=wr != 0, name="R")
    ex = network_to_brian2(net)
    ds = net.run(T, record=["E.spikes", "S.W", "R.W"], progress=False, method="step")
    ex.run(T)
    spk = ds["E_spikes"].values[0]
    ours = [np.flatnonzero(spk[:, k]) for k in range(nE)]
    theirs = [np.rint(t / dt).astype(int) for t in ex.spike_times("E")]
    assert sum(x.size for x in ours) >= 5
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_array_equal(a, b)
    for n in ("S", "R"):
        W = ds[f"{n}_W"].values[0, -1]
        np.testing.assert_allclose(ex.weights(n), W, rtol=1e-6, atol=1e-21, err_msg=n)
