"""Cross-validation against Brian2 (issue 8): the pairing protocol run by synaptic_fwp
(event-driven, exact) and by its Brian2 export (numpy code generation: no compiler) gives the
same final weights within 1e-6 relative for pair STDP, triplet STDP and Graupner-Brunel
(sigma = 0). Protocols are short so that Brian2's per-step numpy overhead stays small."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

pytest.importorskip("brian2")

from synaptic_fwp.brian2_export import (  # noqa: E402
    SUPPORTED_RULES,
    brian2_pairing,
    synapse_model,
    to_brian2,
)
from synaptic_fwp.plasticity import GraupnerBrunel, PairSTDP, TripletSTDP  # noqa: E402
from synaptic_fwp.protocols.pairing import pairing  # noqa: E402

RTOL = 1e-6
# STDP traces are event-driven in Brian2 (exact at any dt): a 1 ms grid holds every spike
STDP_PROTOCOL = dict(dt=[-0.01, 0.0, 0.005, 0.01], freq=[5.0, 20.0], n_pairs=5)


def _check(ours: np.ndarray, theirs: np.ndarray) -> None:
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(theirs, ours, rtol=RTOL, atol=0)
    assert not np.allclose(ours, ours.flat[0])  # the protocol does move the weights


@pytest.mark.parametrize(
    ("rule", "traces"),
    [
        (PairSTDP(), "event-driven"),  # additive, all-to-all
        (PairSTDP.song2000(w_max=1.02), "event-driven"),  # hard bounds that bind
        (PairSTDP(pairing="nearest", bounds="soft", w_max=1.05, A_plus=0.01), "event-driven"),
        (PairSTDP(), "explicit"),
    ],
    ids=["additive", "hard", "nearest-soft", "additive-explicit"],
)
def test_pair_stdp_matches_brian2(rule, traces):
    ours = pairing(rule, dtype=torch.float64, **STDP_PROTOCOL)
    theirs = brian2_pairing(rule, sim_dt=1e-3, traces=traces, **STDP_PROTOCOL)
    _check(ours["w_final"].values, theirs["w_final"].values)
    if rule.bounds == "hard":
        assert ours["w_final"].values.max() == pytest.approx(1.02)  # the bound is reached


@pytest.mark.parametrize("traces", ["event-driven", "explicit"])
def test_inhibitory_stdp_matches_brian2(traces):
    """Vogels et al. 2011's rule (a pre-spike depression and a symmetric window; hard bound at 0
    that binds, upper bound inf) exported to Brian2 gives the same final weights."""
    from synaptic_fwp.plasticity import InhibitorySTDP

    rule = InhibitorySTDP(eta=0.05, rho0=40.0)
    ours = pairing(rule, dtype=torch.float64, w0=0.05, **STDP_PROTOCOL)
    theirs = brian2_pairing(rule, sim_dt=1e-3, traces=traces, w0=0.05, **STDP_PROTOCOL)
    _check(ours["w_final"].values, theirs["w_final"].values)
    assert ours["w_final"].values.min() == 0.0  # the lower bound is reached


# Brian2 solves the four coupled (event-driven) triplet traces with sympy at build time
# (seconds); the other cases use the same exact decay written out (traces="explicit").
@pytest.mark.parametrize(
    ("rule", "traces"),
    [
        (TripletSTDP.from_table("visual_cortex", "all_to_all", "full"), "event-driven"),
        (TripletSTDP.from_table("hippocampal", "nearest_spike", "full"), "explicit"),
        (TripletSTDP.from_table("visual_cortex", "all_to_all", "minimal"), "explicit"),
    ],
    ids=["visual-all", "hippo-nearest", "minimal"],
)
def test_triplet_stdp_matches_brian2(rule, traces):
    ours = pairing(rule, dtype=torch.float64, **STDP_PROTOCOL)
    theirs = brian2_pairing(rule, sim_dt=1e-3, traces=traces, **STDP_PROTOCOL)
    _check(ours["w_final"].values, theirs["w_final"].values)


def test_per_instance_parameters_become_per_synapse_values():
    rule = TripletSTDP(
        A3_plus=torch.tensor([6.2e-3, 1e-2, 0.0], dtype=torch.float64),
        tau_y=torch.tensor([0.125, 0.05, 0.2], dtype=torch.float64),
    )
    ours = pairing(rule, dtype=torch.float64, **STDP_PROTOCOL)
    theirs = brian2_pairing(rule, sim_dt=1e-3, traces="explicit", **STDP_PROTOCOL)
    assert theirs["w_final"].dims == ("param", "freq", "dt_pair")
    _check(ours["w_final"].values, theirs["w_final"].values)


def test_graupner_brunel_sigma0_matches_brian2():
    # the published DP set (Brian 2's example of the paper), noise off; D = 13.7 ms needs a
    # 0.1 ms grid. Starts DOWN (rho 0) and UP (rho 1) as in the paper's readout.
    rule = GraupnerBrunel.from_table("DP", sigma=0.0)
    proto = dict(dt=[-0.02, 0.0, 0.01], freq=[10.0], n_pairs=3)
    ours = pairing(rule, dtype=torch.float64, **proto)["rho_final"].isel(trial=0)
    theirs = brian2_pairing(rule, sim_dt=1e-4, **proto)["rho_final"]
    ours = ours.transpose(*theirs.dims).values
    _check(ours, theirs.values)
    assert (ours[0] > 0.01).all() and (ours[1] < 0.99).all()  # both starts move


def test_spike_trains_export_directly():
    """to_brian2 on arbitrary trains (irregular, a coincident pre/post pair at 41 ms, per-synapse
    initial weights) equals synaptic_fwp's event loop on the same trains."""
    from synaptic_fwp.protocols.events import batch_rule, merge_events, run_events

    rule = TripletSTDP.from_table()
    pre = [np.array([0.0, 0.013, 0.04, 0.041]), np.array([0.002, 0.03])]
    post = [np.array([0.005, 0.02, 0.041]), np.array([0.0, 0.001, 0.05])]
    w0 = np.array([0.5, 2.0])
    ex = to_brian2(rule, pre, post, w0=w0, dt=1e-3, traces="explicit")
    theirs = ex.run()
    W, _ = run_events(
        batch_rule(rule, 1), torch.as_tensor(w0).reshape(1, 2, 1, 1), *merge_events(pre, post)
    )
    np.testing.assert_allclose(theirs, W.reshape(-1).numpy(), rtol=RTOL, atol=0)


def test_noisy_graupner_brunel_exports_with_brians_noise():
    rule = GraupnerBrunel.from_table("DP")  # sigma = 2.8284
    spec = synapse_model(rule)
    assert "xi" in spec.model and spec.method == "euler"
    with pytest.raises(ValueError, match="sigma > 0"):
        synapse_model(rule, scheme="phases")
    theirs = brian2_pairing(rule, dt=[0.01], freq=[20.0], n_pairs=2, sim_dt=1e-4)
    rho = theirs["rho_final"].values
    assert np.isfinite(rho).all() and rho.shape == (2, 1, 1)


def test_unsupported_and_bad_input_raise_before_any_work():
    from synaptic_fwp.plasticity import ShouvalCalcium

    with pytest.raises(TypeError, match="supported rules: " + ", ".join(SUPPORTED_RULES)):
        synapse_model(torch.nn.Linear(1, 1))
    with pytest.raises(ValueError, match="scheme applies to GraupnerBrunel"):
        synapse_model(ShouvalCalcium(), scheme="phases")
    with pytest.raises(TypeError, match="supported"):
        synapse_model("hebbian")
    with pytest.raises(ValueError, match="scheme applies to GraupnerBrunel"):
        synapse_model(PairSTDP(), scheme="phases")
    with pytest.raises(ValueError, match="time grid"):
        to_brian2(PairSTDP(), [np.array([0.0105])], [np.array([0.02])], dt=1e-3)
    with pytest.raises(ValueError, match="one train per synapse"):
        to_brian2(PairSTDP(), [np.array([0.0])], [], dt=1e-3)
    with pytest.raises(ValueError, match="codegen"):
        to_brian2(PairSTDP(), [np.array([0.0])], [np.array([0.01])], codegen="cpp")
    with pytest.raises(ValueError, match="traces"):
        synapse_model(PairSTDP(), traces="clock-driven")
    with pytest.raises(ValueError, match="w0"):
        to_brian2(PairSTDP(), [np.array([0.0])], [np.array([0.01])], w0=[1.0, 2.0, 3.0])


def _input_spikes(rng, n_in: int, k: int, T: float, dt: float) -> tuple[list, list]:
    """Spike times and input indices: up to ``k`` random times on the step grid per input."""
    times, idx = [], []
    for i in range(n_in):
        steps = np.unique(np.round(rng.uniform(0, T - 0.01, k) / dt))
        times += list(steps * dt)
        idx += [i] * steps.size
    return times, idx


@pytest.mark.parametrize(
    "case",
    ["conductance-pair", "fixed-drive-triplet",
     "adex-conductance-pair", "adex-fixed-drive-triplet",
     "nmda-gaba-conductance-pair", "adex-nmda-gaba-fixed-drive-triplet"],
)
def test_engine_network_spike_for_spike(case):
    """An engine network (8 spike-time inputs -> 2 LIF or AdEx neurons, plastic AMPA projection
    with a 1 ms delay; in the nmda-gaba cases also static NMDA weights U0 on it, with the Mg2+
    block, and 4 more inputs onto GABA synapses, plastic by Vogels et al.'s inhibitory STDP in
    the conductance case; the neurons start from their own potentials) and its Brian2 export
    fire the same spikes in the same steps and end with the same weights (float64 engine, step
    path)."""
    import dataclasses

    from synaptic_fwp.brian2_export import network_to_brian2
    from synaptic_fwp.engine import Network
    from synaptic_fwp.inputs import SpikeTimesInput
    from synaptic_fwp.neurons import AdExPopulation, LIFPopulation
    from synaptic_fwp.plasticity import InhibitorySTDP

    dt, T, n_in, n_out = 2.5e-4, 0.25, 8, 2
    rng = np.random.default_rng(0)
    times, idx = _input_spikes(rng, n_in, 12, T, dt)
    lif = dict(C=200e-12, g_L=10e-9, E_L=-70e-3, V_th=-50e-3, V_reset=-60e-3, t_ref=2e-3)
    Pop = LIFPopulation
    nmda_gaba = "nmda-gaba-" in case
    case = case.replace("nmda-gaba-", "")
    if case.startswith("adex"):  # Brette & Gerstner's regular spiking cell, near rheobase
        Pop, lif = AdExPopulation, dict(I_ext=0.5e-9, t_ref=1e-3)
        case = case[5:]
    if case == "conductance-pair":
        rule, traces, W_lo, W_hi = PairSTDP.song2000(w_max=8e-9), "event-driven", 2e-9, 6e-9
    else:  # fixed driving force (Brian2's STDP example form), weights in units of g_L
        lif["ampa_drive"] = 60e-3
        tri = TripletSTDP.from_table(bounds="hard", w_min=0.0, w_max=8e-9)
        rule = dataclasses.replace(
            tri,
            **{k: getattr(tri, k) * 1e-9 for k in ("A2_plus", "A3_plus", "A2_minus", "A3_minus")},
        )
        traces, W_lo, W_hi = "explicit", 1e-9, 3e-9
    net = Network(dt=dt, batch=1, dtype=torch.float64)
    inp = net.add(SpikeTimesInput(n_in, times=times, indices=idx, name="inp"))
    V0 = torch.tensor([[-66e-3, -54e-3]], dtype=torch.float64)  # one start per neuron
    out = net.add(Pop(n_out, **lif, V_init=V0, name="out"))
    W0 = torch.as_tensor(rng.uniform(W_lo, W_hi, (n_out, n_in)))
    U0 = torch.as_tensor(rng.uniform(0.5e-9, 1.5e-9, (n_out, n_in))) if nmda_gaba else None
    net.connect(inp, out, W0, rule, name="S", delay=1e-3, U0=U0)
    if nmda_gaba:  # 4 inhibitory inputs at 40 Hz, static GABA synapses
        t_inh = np.arange(0.0125, T - 0.01, 0.025)
        inh = net.add(SpikeTimesInput(
            4, times=np.concatenate([t_inh + 2.5e-3 * j for j in range(4)]),
            indices=np.repeat(np.arange(4), t_inh.size), name="inh"))
        # plastic in the conductance case: Vogels et al. 2011's inhibitory STDP (siemens)
        irule = (InhibitorySTDP(eta=2e-10, rho0=10.0, w_max=6e-9)
                 if case == "conductance-pair" else None)
        net.connect(inh, out, torch.full((n_out, 4), 3e-9, dtype=torch.float64), irule,
                    target="gaba", name="I")
        assert out.uses["nmda"] and out.uses["gaba"]
    ex = network_to_brian2(net, traces=traces)  # built before the engine run changes nothing
    rec = ["S.W", "out.spikes"] + (["I.W"] if nmda_gaba else [])
    ds = net.run(T, record=rec, progress=False, method="step")
    ex.run(T)
    # the engine stamps the record of step n at (n + 1) dt; Brian2 reports t_n = n dt
    spk = ds["out_spikes"].values[0]  # (time, post)
    ours = [np.flatnonzero(spk[:, k]) for k in range(n_out)]
    theirs = [np.rint(t / dt).astype(int) for t in ex.spike_times("out")]
    assert sum(s.size for s in ours) >= 10
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_array_equal(a, b)
    W_e = ds["S_W"].values[0, -1]
    np.testing.assert_allclose(ex.weights("S"), W_e, rtol=RTOL, atol=0)
    assert np.abs(W_e - W0.numpy()).max() > 1e-11  # the weights did move (by > 0.3%)
    if nmda_gaba:
        W_i = ds["I_W"].values[0, -1]
        np.testing.assert_allclose(ex.weights("I"), W_i, rtol=RTOL, atol=0)
        if case == "conductance-pair":
            assert np.abs(W_i - 3e-9).max() > 1e-11  # inhibitory STDP moved them


def _same_spike_steps(ds, ex, pops, dt: float, at_least: int) -> None:
    """Every neuron of each population in ``pops`` spikes in the same steps in the engine's
    records (``<pop>_spikes``, instance 0, every step) and in the Brian2 export ``ex``; each
    population fires at least ``at_least`` spikes (so the comparison means something)."""
    for pop in pops:
        spk = ds[f"{pop}_spikes"].values[0]
        ours = [np.flatnonzero(spk[:, k]) for k in range(spk.shape[1])]
        theirs = [np.rint(t / dt).astype(int) for t in ex.spike_times(pop)]
        assert sum(x.size for x in ours) >= at_least, pop
        for a, b in zip(ours, theirs, strict=True):
            np.testing.assert_array_equal(a, b)


def test_recurrent_ei_network_spike_for_spike():
    """A recurrent E/I network (12 excitatory and 4 inhibitory LIF neurons, AMPA and GABA
    projections among them at 50% connectivity, E -> E plastic by pair STDP on its synapses only
    (a connection mask; Brian2 connects just those), the others static,
    per-neuron starting potentials, 8 spike-time inputs onto E only) and its Brian2 export fire
    the same spikes in the same steps and end with the same recurrent weights (float64 engine,
    step path; the static weights are stored presynaptic-major by the engine). The inhibitory
    neurons receive nothing but the excitatory neurons' spikes, so their spikes check recurrent
    transmission."""
    from synaptic_fwp.brian2_export import network_to_brian2
    from synaptic_fwp.engine import Network
    from synaptic_fwp.inputs import SpikeTimesInput
    from synaptic_fwp.neurons import LIFPopulation

    dt, T, n_in, nE, nI = 2.5e-4, 0.25, 8, 12, 4
    rng = np.random.default_rng(1)
    times, idx = _input_spikes(rng, n_in, 15, T, dt)
    lif = dict(C=200e-12, g_L=10e-9, E_L=-70e-3, V_th=-50e-3, V_reset=-60e-3, t_ref=2e-3)
    net = Network(dt=dt, batch=1, dtype=torch.float64)
    inp = net.add(SpikeTimesInput(n_in, times=times, indices=idx, name="inp"))

    def v0(n):
        return torch.as_tensor(rng.uniform(-65e-3, -52e-3, (1, n)))

    E = net.add(LIFPopulation(nE, **lif, V_init=v0(nE), name="E"))
    I = net.add(LIFPopulation(nI, **lif, V_init=v0(nI), name="I"))

    def w(n_post, n_pre, scale):
        return torch.as_tensor(scale * rng.uniform(0.5, 1.5, (n_post, n_pre))
                               * (rng.uniform(size=(n_post, n_pre)) < 0.5))

    net.connect(inp, E, w(nE, n_in, 8e-9), name="FF")
    wEE = w(nE, nE, 2e-9)  # plastic, only where the mask has a synapse
    net.connect(E, E, wEE, PairSTDP.song2000(w_max=4e-9), mask=wEE != 0, name="EE")
    net.connect(E, I, w(nI, nE, 6e-9), name="EI")
    net.connect(I, E, w(nE, nI, 6e-9), target="gaba", name="IE")
    net.connect(I, I, w(nI, nI, 3e-9), target="gaba", name="II")
    ex = network_to_brian2(net)
    ds = net.run(T, record=["E.spikes", "I.spikes", "EE.W"], progress=False, method="step")
    assert not net._state["proj"]["EI"]["W"].is_contiguous()  # static: stored pre-major
    ex.run(T)
    W_e = ds["EE_W"].values[0, -1]
    np.testing.assert_allclose(ex.weights("EE"), W_e, rtol=RTOL, atol=1e-21)
    assert np.all(W_e[wEE.numpy() == 0] == 0) and ex.pairs["EE"][0].size == int((wEE != 0).sum())
    assert np.abs(W_e - ds["EE_W"].values[0, 0]).max() > 1e-11  # the recurrent STDP acted
    _same_spike_steps(ds, ex, ("E", "I"), dt, at_least=10)


def test_unsupported_network_objects_raise():
    from synaptic_fwp.brian2_export import network_to_brian2
    from synaptic_fwp.engine import Network
    from synaptic_fwp.inputs import PoissonInput
    from synaptic_fwp.neurons import LIFPopulation

    net = Network(dt=1e-4, batch=2, dtype=torch.float64)
    inp = net.add(PoissonInput(3, rate=10.0, name="inp"))
    out = net.add(LIFPopulation(1, name="out"))
    net.connect(inp, out, 1e-9, name="S")
    with pytest.raises(TypeError, match="SpikeTimesInput"):
        to_brian2(net)
    with pytest.raises(ValueError, match="instance"):
        network_to_brian2(net, instance=2)
    # a rate rule on a projection, and a rate population: named, with what is supported
    from synaptic_fwp.inputs import SpikeTimesInput
    from synaptic_fwp.neurons import RatePopulation

    rr = Network(dt=1e-4, batch=1, dtype=torch.float64)
    src = rr.add(SpikeTimesInput(2, times=[0.001], indices=[0], name="src"))
    lif = rr.add(LIFPopulation(1, name="lif"))
    rr.connect(src, lif, 1e-9, "hebbian", eta=1.0, tau_pre=0.02, tau_post=0.02, name="H")
    with pytest.raises(TypeError, match="cannot export projection 'H'.*supported: inputs"):
        network_to_brian2(rr)
    rp = Network(dt=1e-4, batch=1, dtype=torch.float64)
    rp.add(RatePopulation(1, name="rates"))
    with pytest.raises(TypeError, match="cannot export population 'rates' \\(RatePopulation\\)"):
        network_to_brian2(rp)


# ---------------------------------------------------------------------------------------------
# Rate rules of the catalogue (Primer Eq. 31 family and BCM) as per-step Brian2 updates
# ---------------------------------------------------------------------------------------------


def _rate_inputs(rule, T=10, K=3, V=2, seed=0, B=1, H=1):
    g = torch.Generator().manual_seed(seed)

    def r(*s):
        return torch.rand(*s, generator=g, dtype=torch.float64)

    k, q = r(B, T, H, K), r(B, T, H, K) - 0.5
    v = 2 * r(B, T, H, V) - 1
    kw = {}
    if "eta" in rule.needs:
        kw["eta"] = 0.5 * r(B, T, H)
    if "decay" in rule.needs:
        kw["decay"] = 0.5 + 0.5 * r(B, T, H)
    if "gate" in rule.needs:
        kw["gate"] = 0.5 + 0.5 * r(B, T, H, V if rule.decay == "post" else K)
    W0 = r(V, K) - 0.5 if B == H == 1 else r(B, H, V, K) - 0.5
    return q, k, v, kw, W0


@pytest.mark.parametrize("name", __import__("synaptic_fwp.rules", fromlist=["names"]).names())
def test_rate_rule_matches_brian2(name):
    """Each catalogue rule, driven by the same per-step traces (k = presynaptic rates, v =
    postsynaptic value, gates), gives the same read-outs y_t = W_t q_t and weights W_t at every
    step in synaptic_fwp.scan (recurrent oracle) and in its Brian2 export."""
    from synaptic_fwp import rules
    from synaptic_fwp.brian2_export import rate_to_brian2
    from synaptic_fwp.sequence import scan

    rule = rules.get(name)
    if name == "bcm":
        rule = rules.BCMRule(drive="output", theta_decay=0.8, theta0=0.1)
    q, k, v, kw, W0 = _rate_inputs(rule)
    y, W, st = scan(
        q, k, v, rule, initial_state=W0[None, None], backend="recurrent", return_states=True, **kw
    )
    out = rate_to_brian2(rule, k[0, :, 0], v[0, :, 0], q[0, :, 0], W0=W0, **kw).run()
    np.testing.assert_allclose(out["y"], y[0, :, 0].numpy(), rtol=RTOL, atol=1e-12)
    np.testing.assert_allclose(out["states"], st[0, :, 0].numpy(), rtol=RTOL, atol=1e-12)
    np.testing.assert_allclose(out["W"], W[0, 0].numpy(), rtol=RTOL, atol=0)
    assert np.abs(out["W"] - W0.numpy()).max() > 1e-3  # the rule did write


def test_bcm_value_drive_and_feature_map_match_brian2():
    from synaptic_fwp import rules
    from synaptic_fwp.brian2_export import rate_to_brian2
    from synaptic_fwp.sequence import scan

    rule = rules.BCMRule(theta_decay=0.7)
    q, k, v, kw, W0 = _rate_inputs(rule, seed=1)
    y, W = scan(q, k, v, rule, initial_state=W0[None, None], backend="recurrent", phi="elu1", **kw)
    out = rate_to_brian2(rule, k, v, q, W0=W0, phi="elu1", **kw).run()  # scan's (1, T, 1, N)
    np.testing.assert_allclose(out["y"], y.numpy(), rtol=RTOL, atol=1e-12)  # ... and its layout
    np.testing.assert_allclose(out["W"], W.numpy(), rtol=RTOL, atol=0)


@pytest.mark.parametrize("name", ["delta", "gla", "oja", "gated_delta", "bcm"])
def test_batched_rate_export_matches_scan(name):
    """B x H sequences with their own inputs, gates and initial states, as B H disconnected
    blocks of one Brian2 network, against scan on the batch (scan's layout in and out)."""
    from synaptic_fwp import rules
    from synaptic_fwp.brian2_export import rate_to_brian2
    from synaptic_fwp.sequence import scan

    rule = rules.get(name)
    if name == "bcm":
        rule = rules.BCMRule(drive="output", theta_decay=0.8, theta0=0.1)
    q, k, v, kw, W0 = _rate_inputs(rule, seed=2, B=2, H=3)
    y, W, st = scan(q, k, v, rule, initial_state=W0, backend="recurrent", return_states=True,
                    **kw)
    out = rate_to_brian2(rule, k, v, q, W0=W0, **kw).run()
    assert out["y"].shape == (2, 10, 3, 2) and out["states"].shape == (2, 10, 3, 2, 3)
    np.testing.assert_allclose(out["y"], y.numpy(), rtol=RTOL, atol=1e-12)
    np.testing.assert_allclose(out["states"], st.numpy(), rtol=RTOL, atol=1e-12)
    np.testing.assert_allclose(out["W"], W.numpy(), rtol=RTOL, atol=0)
    # the sequences differ, so a mix-up of blocks or gates could not pass
    assert np.abs(out["W"][0, 0] - out["W"][1, 2]).max() > 1e-2


def test_rate_export_bad_input_raises():
    from synaptic_fwp.brian2_export import rate_to_brian2

    k, v = torch.rand(5, 3, dtype=torch.float64), torch.rand(5, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="needs decay"):
        rate_to_brian2("mamba2", k, v)
    with pytest.raises(ValueError, match="takes no eta"):
        rate_to_brian2("hebbian", k, v, eta=0.1)
    with pytest.raises(ValueError, match="W0 must have shape"):
        rate_to_brian2("hebbian", k, v, W0=np.zeros((3, 2)))
    with pytest.raises(ValueError, match="same number of steps"):
        rate_to_brian2("hebbian", k, v[:4])
    with pytest.raises(ValueError, match=r"shape \(T, N\)"):
        rate_to_brian2("hebbian", k[None], v)
    with pytest.raises(ValueError, match=r"same batch size and heads"):
        rate_to_brian2("hebbian", k.reshape(1, 5, 1, 3), v.reshape(1, 5, 1, 2).expand(2, 5, 1, 2))
    with pytest.raises(ValueError, match="codegen"):
        rate_to_brian2("hebbian", k, v, codegen="cpp")
    with pytest.raises(TypeError, match="torch.Tensor or numpy"):
        rate_to_brian2("hebbian", [[1.0]], v)


# ---------------------------------------------------------------------------------------------
# BTSP: one lap, CA3 eligibility traces and the EC3 instructive signal as Brian2 variables
# ---------------------------------------------------------------------------------------------


def _lap(n=5, T=100, dt=0.05, D=0.3):
    t = torch.arange(T, dtype=torch.float64) * dt
    centers = torch.linspace(0.5, 4.5, n, dtype=torch.float64)
    rates = 20 * torch.exp(-0.5 * ((t[None] - centers[:, None]) / 0.6) ** 2)  # CA3 fields, Hz
    plateau = ((t > 0) & (t <= D + 1e-9)).to(torch.float64)  # EC3 plateau [0, D]
    W0 = torch.linspace(0.5, 3.0, n, dtype=torch.float64)
    return t, rates, plateau, W0, dt, D


@pytest.mark.parametrize(
    ("rule", "periodic"),
    [
        ("milstein", False),
        ("primer_capped", True),
    ],
)
def test_btsp_lap_matches_brian2(rule, periodic):
    """One lap: Brian2's continuous ET/IS and lap integrals give lap_update's weights (Milstein
    2021 population fit, from rest; the Primer FWP form with a binding w_max, periodic ET)."""
    from synaptic_fwp.brian2_export import btsp_to_brian2
    from synaptic_fwp.plasticity.btsp import (
        MilsteinBTSP,
        PrimerBTSP,
        eligibility_trace,
        instructive_signal,
    )

    rule = MilsteinBTSP.from_table() if rule == "milstein" else PrimerBTSP(eta=5.0, w_max=1.5)
    t, rates, plateau, W0, dt, D = _lap()
    et = eligibility_trace(rates[None], dt, rule.tau_et, periodic=periodic)
    is_ = instructive_signal(t, D, rule.tau_is)[None]
    ours = rule.lap_update(W0[None], et, is_, dt)[0].numpy()
    out = btsp_to_brian2(rule, rates, plateau, W0, dt=dt, periodic=periodic).run()
    np.testing.assert_allclose(out["et"], et[0].numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(out["is_"], is_[0].numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(out["W"], ours, rtol=RTOL, atol=0)
    assert np.abs(ours - W0.numpy()).max() > 0.1  # the lap changes the weights
    if isinstance(rule, PrimerBTSP):
        assert ours.max() == pytest.approx(1.5)  # the cap binds


def test_btsp_export_bad_input_raises():
    from synaptic_fwp.brian2_export import btsp_to_brian2
    from synaptic_fwp.plasticity.btsp import MilsteinBTSP, PrimerBTSP

    t, rates, plateau, W0, dt, _ = _lap(n=2, T=10)
    with pytest.raises(TypeError, match="MilsteinBTSP or PrimerBTSP"):
        btsp_to_brian2(PairSTDP(), rates, plateau, W0, dt=dt)
    with pytest.raises(ValueError, match="plateau must have shape"):
        btsp_to_brian2(PrimerBTSP(), rates, plateau[:5], W0, dt=dt)
    with pytest.raises(ValueError, match="W0 must be"):
        btsp_to_brian2(PrimerBTSP(), rates, plateau, np.ones(3), dt=dt)
    with pytest.raises(ValueError, match="dt must be"):
        btsp_to_brian2(PrimerBTSP(), rates, plateau, W0, dt=-1.0)
    with pytest.raises(ValueError, match="single value"):
        btsp_to_brian2(MilsteinBTSP.stack([MilsteinBTSP()] * 2), rates, plateau, W0, dt=dt)


def test_shouval_calcium_matches_brian2():
    """Shouval et al. 2002 on two pairing protocols (pre->post and post->pre, 4 Hz, 2 pairs,
    0.25 s tail), on a binary time grid u = 2^-11 s so that every interval is an exact multiple
    of the step: synaptic_fwp's substep scheme with max_step = slow_step = u and the Brian2
    export (one exponential-integrator step per u) agree to rounding; the default adaptive
    scheme agrees to the integrator's accuracy (first order in h)."""
    from synaptic_fwp.plasticity import ShouvalCalcium
    from synaptic_fwp.protocols.events import merge_events, run_events

    u = 2.0**-11
    rule = ShouvalCalcium(
        scheme="substep", max_step=u, slow_step=u, fast_window=300 * u, bpap_delay=4 * u
    )
    d, T = 20 * u, 0.25
    pre = [np.array([0.0, T]), np.array([d, T + d])]
    post = [np.array([d, T + d]), np.array([0.0, T])]
    tail = 512 * u
    w0 = 0.25
    theirs = to_brian2(rule, pre, post, w0=w0, dt=u, tail=tail).run()

    def ours(r, g):
        W, _ = run_events(
            r,
            torch.full((1, 1, 1), w0, dtype=torch.float64),
            *merge_events(pre[g : g + 1], post[g : g + 1], 0.0, r.post_delay),
            tail=tail,
        )
        return float(W.reshape(()))

    sub = np.array([ours(rule, g) for g in range(2)])
    np.testing.assert_allclose(theirs, sub, rtol=RTOL, atol=0)
    assert sub[0] > w0 + 0.02 and abs(sub[1] - w0) > 1e-4  # both protocols move W
    adaptive = dataclasses.replace(rule, scheme="adaptive")
    ad = np.array([ours(adaptive, g) for g in range(2)])
    np.testing.assert_allclose(theirs, ad, rtol=1e-3, atol=0)


def test_projection_without_synapses_exports():
    """A projection with no synapse at all (static weights all 0; a plastic one whose mask is
    all False) exports as an inactive Brian2 ``Synapses`` (Brian2 refuses to run one without
    synapses), with zero weights, and the rest of the network still fires as the engine's."""
    from synaptic_fwp.brian2_export import network_to_brian2
    from synaptic_fwp.engine import Network
    from synaptic_fwp.inputs import SpikeTimesInput
    from synaptic_fwp.neurons import LIFPopulation

    dt, T = 1e-4, 0.1
    rng = np.random.default_rng(3)
    times, idx = _input_spikes(rng, 4, 15, T, dt)
    net = Network(dt=dt, batch=1, dtype=torch.float64)
    inp = net.add(SpikeTimesInput(4, times=times, indices=idx, name="inp"))
    E = net.add(LIFPopulation(3, V_th=-50e-3, name="E"))
    I = net.add(LIFPopulation(2, V_th=-50e-3, name="I"))
    net.connect(inp, E, torch.full((3, 4), 8e-9, dtype=torch.float64), name="FF")
    net.connect(E, I, torch.full((2, 3), 8e-9, dtype=torch.float64), name="EI")
    net.connect(I, I, torch.zeros(2, 2, dtype=torch.float64), target="gaba", name="II")
    net.connect(E, E, 1e-9, PairSTDP.song2000(w_max=2e-9),
                mask=torch.zeros(3, 3, dtype=torch.bool), name="EE")
    ex = network_to_brian2(net)
    ds = net.run(T, record=["E.spikes", "I.spikes"], progress=False, method="step")
    ex.run(T)
    for name, shape in (("II", (2, 2)), ("EE", (3, 3))):
        assert ex.pairs[name][0].size == 0 and np.array_equal(ex.weights(name), np.zeros(shape))
    _same_spike_steps(ds, ex, ("E", "I"), dt, at_least=3)
