"""Pair and triplet STDP (synaptic_fwp.plasticity.stdp): closed forms, a brute-force oracle built
from the definition (traces as sums over past spikes), per-instance parameters, the rate (BCM)
form, bounds and input errors. float64 throughout."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from synaptic_fwp.plasticity import PairSTDP, SpikingRule, TripletSTDP, triplet_bcm_rate
from synaptic_fwp.plasticity.params import triplet_sets
from synaptic_fwp.plasticity.stdp import pairing_closed_form
from synaptic_fwp.protocols.events import merge_events, run_events
from synaptic_fwp.protocols.pairing import pairing

F64 = torch.float64
FREQS = [0.1, 1.0, 10.0, 20.0, 40.0, 50.0]
DELAYS = [-0.015, -0.01, -0.002, 0.0, 0.002, 0.01, 0.015]


def _rel(a, b):
    """Max relative error; entries below 1e-12 in magnitude (e.g. a 1e-109 change at 0.1 Hz,
    where factors below e^-100 count as 0) are compared absolutely against 1e-12."""
    a, b = np.asarray(a), np.asarray(b)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-12)))


# ----------------------------------------------------------------------------- brute force
def _trace(times, t, tau, nearest, inclusive=False):
    """Value at t-0 (t+0 if ``inclusive``) of a trace driven by spikes at ``times``
    (definition, no recursion)."""
    past = [s for s in times if s < t or (inclusive and s == t)]
    if not past:
        return 0.0
    if nearest:
        return math.exp(-(t - max(past)) / tau)
    return sum(math.exp(-(t - s) / tau) for s in past)


def _brute_triplet(pre, post, p, nearest):
    """Pfister & Gerstner Eqs. 3-4 evaluated from the spike lists: sum over post spikes of
    r1(t) [A2+ + A3+ o2(t-0)] minus sum over pre spikes of o1(t) [A2- + A3- r2(t-0)].
    Coincident spikes: the pre spike counts as earlier (Brian2's order)."""
    ltp = sum(
        _trace(pre, t, p["tau_plus"], nearest, inclusive=True)
        * (p["A2_plus"] + p["A3_plus"] * _trace(post, t, p["tau_y"], nearest))
        for t in post
    )
    ltd = sum(
        _trace(post, t, p["tau_minus"], nearest)
        * (p["A2_minus"] + p["A3_minus"] * _trace(pre, t, p["tau_x"], nearest))
        for t in pre
    )
    return ltp - ltd


@pytest.mark.parametrize("nearest", [False, True])
def test_triplet_matches_brute_force_on_random_trains(nearest):
    rng = np.random.default_rng(1)
    G = 6
    pres = [np.sort(rng.uniform(0, 0.5, rng.integers(3, 12))) for _ in range(G)]
    posts = [np.sort(rng.uniform(0, 0.5, rng.integers(3, 12))) for _ in range(G)]
    posts[0] = np.concatenate([posts[0], pres[0][:2]])  # coincident spikes
    posts[0].sort()
    p = dict(tau_plus=16.8e-3, tau_minus=33.7e-3, tau_x=101e-3, tau_y=125e-3,
             A2_plus=3e-3, A3_plus=6.2e-3, A2_minus=7e-3, A3_minus=2.3e-3)
    rule = TripletSTDP(**p, pairing="nearest" if nearest else "all_to_all")
    ev = merge_events(pres, posts)
    W, _ = run_events(rule, torch.zeros(G, 1, 1, dtype=F64), *ev)
    want = [_brute_triplet(list(pres[g]), list(posts[g]), p, nearest) for g in range(G)]
    assert _rel(W.flatten().numpy(), want) < 1e-10


# ----------------------------------------------------------------------------- closed forms
@pytest.mark.parametrize("pairing_kind", ["all_to_all", "nearest"])
@pytest.mark.parametrize("kind", ["pair", "triplet"])
def test_pairing_matches_closed_form(kind, pairing_kind):
    if kind == "pair":
        rule = PairSTDP(A_plus=5e-3, A_minus=6e-3, pairing=pairing_kind)
    else:
        rule = TripletSTDP(tau_x=101e-3, tau_y=125e-3, A2_plus=2e-3, A3_plus=6.2e-3,
                           A2_minus=7e-3, A3_minus=2.3e-3, pairing=pairing_kind)
    ds = pairing(rule, dt=DELAYS, freq=FREQS, n_pairs=60)
    cf = pairing_closed_form(rule, ds.dt_pair.values[None, :], ds.freq.values[:, None], 60)
    assert ds.dw.dims == ("freq", "dt_pair")
    assert _rel(ds.dw.values, cf) < 1e-9


@pytest.mark.parametrize("key", triplet_sets())
def test_published_sets_match_closed_form(key):
    rule = TripletSTDP.from_table(*key)
    ds = pairing(rule, dt=[-0.01, 0.01], freq=[0.1, 10, 20, 40, 50], n_pairs=60)
    cf = pairing_closed_form(rule, ds.dt_pair.values[None, :], ds.freq.values[:, None], 60)
    assert _rel(ds.dw.values, cf) < 1e-9


def test_closed_form_small_n_by_hand():
    # two pairs at 10 Hz, +10 ms, pair STDP all-to-all, written out spike by spike
    tp, tm, Ap, Am = 0.02, 0.03, 1.0, 0.5
    rule = PairSTDP(tau_plus=tp, tau_minus=tm, A_plus=Ap, A_minus=Am)
    T, d = 0.1, 0.01
    ltp = Ap * (math.exp(-d / tp) + math.exp(-d / tp) + math.exp(-(T + d) / tp))
    ltd = Am * math.exp(-(T - d) / tm)
    assert _rel(pairing_closed_form(rule, d, 1 / T, 2), ltp - ltd) < 1e-14


# ----------------------------------------------------------------------------- per instance
def test_per_instance_parameters_equal_single_runs():
    P = 5
    g = torch.Generator().manual_seed(0)
    A3p = torch.rand(P, generator=g, dtype=F64) * 1e-2
    tau_y = 0.05 + torch.rand(P, generator=g, dtype=F64) * 0.1
    batched = pairing(TripletSTDP(A3_plus=A3p, tau_y=tau_y), dt=[-0.01, 0.01], freq=[1, 20])
    assert batched.dw.dims == ("param", "freq", "dt_pair")
    np.testing.assert_allclose(batched.tau_y.values, tau_y.numpy())
    for p in range(P):
        one = pairing(TripletSTDP(A3_plus=float(A3p[p]), tau_y=float(tau_y[p])),
                      dt=[-0.01, 0.01], freq=[1, 20])
        np.testing.assert_array_equal(batched.dw.values[p], one.dw.values)


def test_time_stepped_equals_event_driven():
    """The engine's use (decay by a fixed float dt every step) gives the event-driven result."""
    rule = TripletSTDP(A2_plus=1e-3, pairing="all_to_all")
    dt, n = 1e-4, 3000
    pre_steps, post_steps = {100, 600, 1100, 1700}, {200, 650, 1050, 2500}
    W = torch.zeros(1, 1, dtype=F64)
    st = rule.init_state(W)
    one = torch.ones(1, dtype=F64)
    for k in range(n):
        st = rule.decay(st, dt)
        if k in pre_steps:
            W, st = rule.on_pre(W, st, one)
        if k in post_steps:
            W, st = rule.on_post(W, st, one)
    ev = merge_events([np.array(sorted(pre_steps)) * dt], [np.array(sorted(post_steps)) * dt])
    W2, _ = run_events(rule, torch.zeros(1, 1, 1, dtype=F64), *ev)
    assert _rel(W.item(), W2.item()) < 1e-10


def test_interface_shapes_and_protocol():
    rule = PairSTDP()
    assert isinstance(rule, SpikingRule) and isinstance(TripletSTDP(), SpikingRule)
    W = torch.full((3, 2, 4), 0.5, dtype=F64)
    st = TripletSTDP().init_state(W)
    assert st["r1"].shape == (3, 4) and st["o2"].shape == (3, 2)
    W2, st2 = TripletSTDP().on_post(W, st, torch.ones(3, 2, dtype=F64))
    assert torch.equal(W2, W)  # no pre trace yet: no change
    assert torch.equal(st2["o1"], torch.ones(3, 2, dtype=F64))
    assert torch.equal(st["o1"], 0 * st2["o1"])  # input state not modified
    st3 = TripletSTDP().decay(st2, torch.tensor([0.0, 0.01, 0.02], dtype=F64))
    np.testing.assert_allclose(st3["o1"][:, 0].numpy(),
                               np.exp(-np.array([0.0, 0.01, 0.02]) / 33.7e-3))


def test_bounds():
    W = torch.full((1, 1), 0.99, dtype=F64)
    one = torch.ones(1, dtype=F64)
    hard = PairSTDP(A_plus=0.1, bounds="hard", w_max=1.0)
    st = hard.init_state(W)
    _, st = hard.on_pre(W, st, one)
    W2, _ = hard.on_post(W, st, one)
    assert W2.item() == 1.0
    soft = PairSTDP(A_plus=0.1, bounds="soft", w_max=1.0)
    st = soft.init_state(W)
    _, st = soft.on_pre(W, st, one)
    W3, _ = soft.on_post(W, st, one)
    assert abs(W3.item() - (0.99 + 0.1 * 0.01)) < 1e-15
    s = PairSTDP.song2000(w_max=0.01)
    assert s.A_minus > s.A_plus and s.bounds == "hard"


# ----------------------------------------------------------------------------- rate form
def test_bcm_rate_form_matches_poisson_simulation():
    """Mean drift of all-to-all triplet STDP under independent Poisson trains equals Eq. 6."""
    rng = np.random.default_rng(3)
    rule = TripletSTDP(A2_plus=2e-3, A3_plus=6e-3, A2_minus=7e-3, A3_minus=1e-3,
                       tau_x=0.1, tau_y=0.1)
    G, Tdur, rx, ry = 400, 4.0, 20.0, 30.0
    pres = [np.sort(rng.uniform(0, Tdur, rng.poisson(rx * Tdur))) for _ in range(G)]
    posts = [np.sort(rng.uniform(0, Tdur, rng.poisson(ry * Tdur))) for _ in range(G)]
    W, _ = run_events(rule, torch.zeros(G, 1, 1, dtype=F64), *merge_events(pres, posts))
    rates = W.flatten().numpy() / Tdur
    # edge effect: traces start at 0; discard by comparing with the stationary drift using a
    # tolerance of 4 standard errors plus the O(tau/T) start-up bias
    want = triplet_bcm_rate(rule, rx, ry)
    se = rates.std(ddof=1) / np.sqrt(G)
    assert abs(rates.mean() - want) < 4 * se + abs(want) * 0.1 / Tdur * 2
    # BCM threshold of the minimal model: drift changes sign at theta
    m = TripletSTDP.from_table("visual_cortex", "all_to_all", "minimal")
    theta = m.A2_minus * m.tau_minus / (m.A3_plus * m.tau_plus * m.tau_y)
    assert triplet_bcm_rate(m, 10.0, 0.9 * theta) < 0 < triplet_bcm_rate(m, 10.0, 1.1 * theta)


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(tau_plus=-0.01), ValueError, "tau_plus"),
        (dict(tau_minus=0.0), ValueError, "tau_minus"),
        (dict(A_plus=-1e-3), ValueError, "A_plus"),
        (dict(A_minus=float("nan")), ValueError, "A_minus"),
        (dict(pairing="nearest_neighbour"), ValueError, "pairing"),
        (dict(bounds="clip"), ValueError, "bounds"),
        (dict(w_min=1.0, w_max=0.5), ValueError, "w_min"),
        (dict(A_plus="0.1"), TypeError, "A_plus"),
        (dict(tau_plus=torch.tensor([1, 2])), TypeError, "tau_plus"),
    ],
)
def test_pair_errors(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        PairSTDP(**kwargs)


def test_triplet_errors():
    with pytest.raises(ValueError, match="A3_minus"):
        TripletSTDP(tau_x=None, A3_minus=1e-3)
    with pytest.raises(ValueError, match="tau_y"):
        TripletSTDP(tau_y=torch.tensor([0.1, -0.1], dtype=F64))
    with pytest.raises(ValueError, match="dataset, pairing, model"):
        TripletSTDP.from_table("visual_cortex", "all_to_all", "maximal")
    with pytest.raises(ValueError, match="dt"):
        TripletSTDP().decay(TripletSTDP().init_state(torch.zeros(1, 1)), -1e-3)
    with pytest.raises(ValueError, match="all_to_all"):
        triplet_bcm_rate(TripletSTDP(pairing="nearest"), 1.0, 1.0)
    with pytest.raises(ValueError, match="delay"):
        pairing_closed_form(TripletSTDP(), 0.03, 50.0)


# ----------------------------------------------------------------------------- inhibitory STDP
def _brute_vogels(pre, post, tau, eta, alpha):
    """Vogels et al. 2011 from the spike lists: each pre spike adds eta (y(t-0) - alpha), each
    post spike eta x(t+0) (coincident spikes: pre first, Brian2's order)."""
    return (sum(eta * (_trace(post, t, tau, False) - alpha) for t in pre)
            + sum(eta * _trace(pre, t, tau, False, inclusive=True) for t in post))


def test_inhibitory_stdp_matches_its_definition():
    """Random trains through the event-driven protocol machinery equal the sum over spikes, and
    the window is symmetric: a pair at +-d changes W by eta (exp(-d/tau) - alpha) either way."""
    from synaptic_fwp.plasticity import InhibitorySTDP

    rule = InhibitorySTDP(tau=20e-3, eta=1e-3, rho0=5.0, bounds="none")
    assert rule.alpha == pytest.approx(2 * 5.0 * 20e-3)
    rng = np.random.default_rng(3)
    for _ in range(5):
        pre = np.sort(rng.choice(np.arange(1, 400), 12, replace=False)) * 1e-3
        post = np.sort(rng.choice(np.arange(1, 400), 9, replace=False)) * 1e-3
        W, _ = run_events(rule, torch.zeros(1, 1, 1, dtype=F64), *merge_events([pre], [post]))
        want = _brute_vogels(list(pre), list(post), 20e-3, 1e-3, rule.alpha)
        assert W.item() == pytest.approx(want, rel=1e-12, abs=1e-15)
    ds = pairing(rule, dt=[-0.01, 0.01, -0.03, 0.03], freq=[1.0], n_pairs=1, dtype=F64)
    d = np.abs(np.asarray([-0.01, 0.01, -0.03, 0.03]))
    np.testing.assert_allclose(ds.dw.values.reshape(-1), 1e-3 * (np.exp(-d / 20e-3) - rule.alpha),
                               rtol=1e-12)


def test_inhibitory_stdp_sets_the_postsynaptic_rate():
    """Vogels et al. 2011's result: a LIF neuron driven by 200 excitatory Poisson inputs (static)
    and 50 inhibitory ones whose weights follow the rule settles at the target rate rho0
    (mean drift eta rho_pre (2 tau rho_post - alpha) = 0 at rho_post = rho0), from ~30 Hz
    without inhibition; a higher target gives a higher rate and weaker inhibition."""
    from synaptic_fwp.engine import Network
    from synaptic_fwp.inputs import PoissonInput
    from synaptic_fwp.neurons import LIFPopulation
    from synaptic_fwp.plasticity import InhibitorySTDP

    rates, w_inh = {}, {}
    for rho0 in (5.0, 20.0):
        net = Network(dt=1e-4, batch=2, seed=1, dtype=F64)
        exc = net.add(PoissonInput(200, rate=10.0, name="exc"))
        inh = net.add(PoissonInput(50, rate=10.0, name="inh"))
        pop = net.add(LIFPopulation(1, t_ref=2e-3, tau_ampa=5e-3, tau_gaba=10e-3, name="out"))
        net.connect(exc, pop, 1.0e-9, name="E")
        net.connect(inh, pop, 0.0, InhibitorySTDP(eta=5e-10, rho0=rho0), name="I",
                    target="gaba")
        ds = net.run(8.0, record=["out.spikes", "I.W"], every=1.0, progress=False)
        counts = ds.out_spikes.values[:, :, 0]  # spikes per second, (batch, time)
        assert counts[:, 0].min() > 25  # before the inhibition has grown
        rates[rho0] = counts[:, 3:].mean()
        w_inh[rho0] = float(ds.I_W.values[:, -1].mean())
        assert rates[rho0] == pytest.approx(rho0, rel=0.3), (rho0, counts)
    assert rates[5.0] < rates[20.0] and w_inh[5.0] > w_inh[20.0] > 0


def test_inhibitory_stdp_errors():
    from synaptic_fwp.plasticity import InhibitorySTDP

    with pytest.raises(ValueError, match="tau"):
        InhibitorySTDP(tau=0.0)
    with pytest.raises(ValueError, match="rho0"):
        InhibitorySTDP(rho0=-1.0)
    with pytest.raises(ValueError, match="finite w_max"):
        InhibitorySTDP(bounds="soft")
    W = torch.zeros(1, 2, 3, dtype=F64)
    rule = InhibitorySTDP(eta=1.0)
    st = rule.init_state(W)
    W2, _ = rule.on_pre(W, st, torch.ones(1, 3, dtype=F64))  # y = 0: depression, held at 0
    assert torch.equal(W2, W)
    assert isinstance(rule, SpikingRule)
