"""AdEx neurons (Brette & Gerstner 2005) against scipy's solution of the ODE, against Brian2's
own AdEx example, and at their fixed point; and the engine paths that must not take them."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp
from scipy.optimize import brentq

from synaptic_fwp.engine import Network
from synaptic_fwp.inputs import SpikeTimesInput
from synaptic_fwp.neurons import AdExPopulation

# Brette & Gerstner 2005, regular spiking; cut-off V_T + 5 Delta_T (Brian2's example)
RS = dict(C=281e-12, g_L=30e-9, E_L=-70.6e-3, V_T=-50.4e-3, Delta_T=2e-3, tau_w=144e-3,
          a=4e-9, b=80.5e-12, V_reset=-70.6e-3, V_th=-40.4e-3)


def ode_spikes(p: dict, I: float, T: float, V0: float | None = None) -> np.ndarray:
    """Spike times of the AdEx ODE with constant current ``I`` (scipy LSODA, rtol 1e-10, the
    crossings of the cut-off located by event detection), from rest or ``V0``, ``w = 0``."""
    C, gL, EL, VT, DT = p["C"], p["g_L"], p["E_L"], p["V_T"], p["Delta_T"]
    tw, a, b, Vr, Vc = p["tau_w"], p["a"], p["b"], p["V_reset"], p["V_th"]
    t_ref = p.get("t_ref", 0.0)

    def rhs(t, y):
        V, w = y
        return [(gL * (EL - V) + gL * DT * math.exp(min((V - VT) / DT, 50.0)) - w + I) / C,
                (a * (V - EL) - w) / tw]

    def cut(t, y):
        return y[0] - Vc

    cut.terminal, cut.direction = True, 1
    t0, y, out = 0.0, [EL if V0 is None else V0, 0.0], []
    while t0 < T:
        sol = solve_ivp(rhs, (t0, T), y, events=cut, rtol=1e-10, atol=[1e-12, 1e-18],
                        method="LSODA")
        if sol.status != 1:
            break
        ts, w = sol.t_events[0][0], sol.y_events[0][0][1]
        out.append(ts)
        if t_ref:  # V held at reset, w relaxes towards a (V_reset - E_L)
            w_inf = a * (Vr - EL)
            w = w_inf + (w + b - w_inf) * math.exp(-t_ref / tw) - b
        t0, y = ts + t_ref, [Vr, w + b]
    return np.array(out)


def engine_spikes(dt: float, T: float, batch: int = 1, **kw) -> list[np.ndarray]:
    net = Network(dt=dt, batch=batch, dtype=torch.float64)
    net.add(AdExPopulation(1, name="n", **kw))
    ds = net.run(T, record=["n.spikes"], progress=False)
    t, s = ds["time"].values, ds["n_spikes"].values[:, :, 0]
    return [t[s[b] > 0] for b in range(batch)]


def test_adex_spike_times_converge_to_the_ode_solution():
    """Regular spiking at 1 nA: the same 8 spikes in 0.2 s, each within 0.15 ms of scipy's at
    dt = 20 us (first order: the error shrinks with dt)."""
    ref = ode_spikes(RS, 1e-9, 0.2)
    assert len(ref) == 8
    err = {}
    for dt in (2e-5, 1e-5):
        (ts,) = engine_spikes(dt, 0.2, **RS, I_ext=1e-9)
        assert len(ts) == len(ref)
        err[dt] = np.abs(ts - ref).max()
    assert err[2e-5] < 1.5e-4, err
    assert err[1e-5] < 0.7 * err[2e-5], err
    isi = np.diff(ref)
    assert np.all(np.diff(isi) > 0)  # adaptation: every interval longer than the one before


def test_adex_fi_curve_matches_the_ode_batched_over_currents():
    """Steady firing rates at 4 currents (one instance each) within 0.5% of scipy's, with a
    refractory period, a = 0 (no subthreshold adaptation) and spike-triggered b."""
    p = dict(RS, a=0.0, b=20e-12, tau_w=30e-3, t_ref=2e-3)
    currents = [0.8e-9, 1.0e-9, 1.5e-9, 2.5e-9]
    got = engine_spikes(2e-5, 0.3, batch=4, **p, I_ext=torch.tensor(currents))
    for I, ts in zip(currents, got, strict=True):
        ref = ode_spikes(p, I, 0.3)
        assert len(ts) >= 5 and abs(len(ts) - len(ref)) <= 1, (I, len(ts), len(ref))
        rate, want = 1 / np.diff(ts[-3:]).mean(), 1 / np.diff(ref[-3:]).mean()
        assert abs(rate - want) / want < 5e-3, (I, rate, want)


def test_adex_rests_at_the_fixed_point_below_rheobase():
    """Below rheobase V settles where g_L (E_L - V) + g_L Delta_T exp((V - V_T)/Delta_T)
    - a (V - E_L) + I = 0 and w at a (V - E_L); the step keeps that point exactly."""
    I = 0.2e-9
    net = Network(dt=1e-3, batch=1, dtype=torch.float64)
    net.add(AdExPopulation(1, **RS, I_ext=I, name="n"))
    ds = net.run(3.0, record=["n.V", "n.w", "n.spikes"], progress=False, every=0.1)
    gL, EL, VT, DT, a = (RS[k] for k in ("g_L", "E_L", "V_T", "Delta_T", "a"))

    def current(V):
        return gL * (EL - V) + gL * DT * math.exp((V - VT) / DT) - a * (V - EL) + I

    V_star = brentq(current, EL, VT, xtol=1e-15)
    assert ds["n_spikes"].values.sum() == 0
    assert ds["n_V"].values[0, -1, 0] == pytest.approx(V_star, abs=1e-9)
    assert ds["n_w"].values[0, -1, 0] == pytest.approx(a * (V_star - EL), rel=1e-6)
    assert ds["n_w"].attrs["units"] == "A"


def test_adex_matches_brian2_example():
    """Brian2's ``examples/frompapers/Brette_Gerstner_2005.py`` equations (forward Euler, its own
    integration) at dt = 10 us against ours: the same spikes, within 0.2 ms."""
    b2 = pytest.importorskip("brian2")
    b2.prefs.codegen.target = "numpy"
    b2.start_scope()
    b2.defaultclock.dt = 0.01 * b2.ms
    ns = dict(C=281 * b2.pF, gL=30 * b2.nS, EL=-70.6 * b2.mV, VT=-50.4 * b2.mV,
              DeltaT=2 * b2.mV, tauw=144 * b2.ms, a=4 * b2.nS, b=0.0805 * b2.nA,
              Vr=-70.6 * b2.mV, Vcut=-40.4 * b2.mV, I=1 * b2.nA)
    eqs = """
    dvm/dt = (gL*(EL - vm) + gL*DeltaT*exp((vm - VT)/DeltaT) + I - w)/C : volt
    dw/dt = (a*(vm - EL) - w)/tauw : amp
    """
    g = b2.NeuronGroup(1, eqs, threshold="vm > Vcut", reset="vm = Vr; w += b", method="euler",
                       namespace=ns)
    g.vm = ns["EL"]
    mon = b2.SpikeMonitor(g)
    b2.Network(g, mon).run(150 * b2.ms, namespace=ns)
    theirs = np.asarray(mon.t / b2.second)
    (ours,) = engine_spikes(1e-5, 0.15, **RS, I_ext=1e-9)
    assert len(theirs) == len(ours) >= 6
    assert np.abs(ours - theirs).max() < 2e-4


def test_adex_receives_synapses_and_keeps_to_the_step_path():
    """An AMPA input drives it like a LIF; the event-window path (which solves the LIF's linear
    dynamics in closed form) refuses it."""
    dt = 5e-5
    net = Network(dt=dt, batch=1, dtype=torch.float64)
    inp = net.add(SpikeTimesInput(1, times=[2e-3 * i for i in range(1, 40)],
                                  indices=[0] * 39, name="inp"))
    n = net.add(AdExPopulation(1, name="n"))
    net.connect(inp, n, torch.full((1, 1), 20e-9), name="S")
    ds = net.run(0.1, record=["n.V", "n.w", "n.spikes"], progress=False)
    assert ds["n_spikes"].values.sum() >= 2  # 500 Hz of 20 nS input makes it fire
    assert ds["n_w"].values.max() > 0  # and adapt
    with pytest.raises(ValueError, match="method='window' is not available"):
        net.run(0.01, record=["n.V"], progress=False, method="window")


@pytest.mark.parametrize(("kw", "match"), [
    (dict(Delta_T=0.0), "Delta_T"),
    (dict(tau_w=-1e-3), "tau_w"),
    (dict(V_T=-40e-3), "V_T .* must be below V_th"),
    (dict(a=float("nan")), "a"),
])
def test_adex_bad_parameters_are_named(kw, match):
    with pytest.raises(ValueError, match=match):
        AdExPopulation(1, **kw)


def test_adex_dt_must_resolve_tau_w():
    net = Network(dt=1e-3, batch=1)
    with pytest.raises(ValueError, match="tau_w"):
        net.add(AdExPopulation(1, tau_w=1e-3, tau_ampa=5e-3, tau_gaba=10e-3))
        net.run(0.01, record=["adex.V"], progress=False)


ADEX_FILE = """\
[experiment]
name = "adex"

[network]
dt = "0.02 ms"
duration = "200 ms"

[populations.cell]
type = "adex"
n = 1
I_ext = "1 nA"
a = "4 nS"
Delta_T = "2 mV"
tau_w = "144 ms"
V_T = "-50.4 mV"

[sweep]
"populations.cell.b" = ["0 pA", "80.5 pA"]

[record]
variables = ["cell.spikes", "cell.w"]
"""


def test_adex_in_an_experiment_file():
    """``type = "adex"`` in an experiment file: its parameters in units (a in S, b in A,
    Delta_T in V), swept over b; with b = 80.5 pA the same spikes as the Python API, without
    spike-triggered adaptation more of them; a unit of the wrong kind is refused by name."""
    from synaptic_fwp import experiment as E

    ex = E.loads(ADEX_FILE, "adex.toml")
    cell = ex.config["populations"]["cell"]
    assert cell["type"] == "adex"
    assert cell["a"] == pytest.approx(4e-9) and cell["Delta_T"] == pytest.approx(2e-3)
    ds = ex.run(progress=False, write=False)
    assert ds["cell_b"].attrs["units"] == "A"
    np.testing.assert_allclose(ds["cell_b"].values, [0.0, 80.5e-12])
    t = ds["time"].values
    spikes = [t[ds["cell_spikes"].values[j, :, 0] > 0] for j in range(2)]
    (ref,) = engine_spikes(2e-5, 0.2, **RS, I_ext=1e-9)
    np.testing.assert_allclose(spikes[1], ref, atol=1e-12)
    assert len(spikes[0]) > len(spikes[1]) == 8
    assert float(ds["cell_w"][1].max()) > float(ds["cell_w"][0].max()) > 0.0
    with pytest.raises(E.ExperimentError, match=r"\[populations\.cell\.a\].*is a time"):
        E.loads(ADEX_FILE.replace('a = "4 nS"', 'a = "4 ms"'), "adex.toml")
    with pytest.raises(E.ExperimentError, match=r"\[sweep\.populations\.cell\.b\].*is a time"):
        E.loads(ADEX_FILE.replace('"0 pA"', '"0 ms"'), "adex.toml")


def test_naud2008_firing_patterns_match_the_ode_and_have_their_shapes():
    """The eight firing patterns of Naud et al. 2008 (Table 1), one batch instance each, in one
    run of 0.5 s at dt = 20 us: every pattern fires as many spikes as scipy's solution of the
    ODE, its first spikes within 0.15 ms of scipy's (the first 4 for the irregular pattern,
    whose later spikes drift apart as any two integrators' do); and each spike train has the
    shape its name says (which also guards the table against typos)."""
    from synaptic_fwp.neurons import NAUD2008

    names = list(NAUD2008)
    T, dt = 0.5, 2e-5
    pop = AdExPopulation.naud2008(names, name="n")
    net = Network(dt=dt, batch=len(names), dtype=torch.float64)
    net.add(pop)
    ds = net.run(T, record=["n.spikes"], progress=False)
    t, s = ds["time"].values, ds["n_spikes"].values[:, :, 0]
    trains = {}
    for j, name in enumerate(names):
        single = AdExPopulation.naud2008(name)
        p = {k: float(getattr(single, k)) for k in RS}
        ref = ode_spikes(p, float(single.I_ext), T)
        ours = t[s[j] > 0]
        assert len(ours) == len(ref), (name, len(ours), len(ref))
        k = 4 if name == "irregular" else 10
        assert np.abs(ours[:k] - ref[:k]).max() < 1.5e-4, name
        trains[name] = ref
    isi = {n: np.diff(x) * 1e3 for n, x in trains.items()}  # ms
    assert abs(isi["tonic"][-1] / isi["tonic"][-5] - 1) < 0.01  # steady, barely adapting
    assert np.all(np.diff(isi["adapting"]) > 0) and isi["adapting"][-1] > 5 * isi["adapting"][0]
    ib = isi["initial_burst"]  # a burst of 3 spikes, then regular spiking
    assert ib[:2].max() < 10 and ib[2:].min() > 50
    rb = isi["regular_bursting"]  # a triplet, then doublets: after it, long and short alternate
    assert rb[2::2].min() > 100 and np.delete(rb, np.s_[2::2]).max() < 10
    da = isi["delayed_accelerating"]  # a long first latency, then ever shorter intervals
    assert trains["delayed_accelerating"][0] * 1e3 > da[0] and np.all(np.diff(da) < 0)
    drb = isi["delayed_regular_bursting"]  # bursts of four spikes
    assert drb[3::4].min() > 50 and np.delete(drb, np.s_[3::4]).max() < 10
    assert trains["transient"][-1] < 0.05  # responds to the onset only
    irr = isi["irregular"]
    assert irr.std() / irr.mean() > 0.4
    with pytest.raises(ValueError, match="pattern must be one of"):
        AdExPopulation.naud2008("bursty")
    assert AdExPopulation.naud2008("tonic", I_ext=0.0).I_ext == 0.0  # overrides


def test_naud2008_pattern_in_an_experiment_file():
    """``pattern = "..."`` in an AdEx population of an experiment file builds that firing pattern
    of Naud et al. 2008 (the other keys override it): the same spikes as
    ``AdExPopulation.naud2008``; an unknown pattern is refused with the allowed names."""
    from synaptic_fwp import experiment as E

    text = ADEX_FILE.replace("""I_ext = "1 nA"
a = "4 nS"
Delta_T = "2 mV"
tau_w = "144 ms"
V_T = "-50.4 mV"
""", """pattern = "regular_bursting"
""").replace("""[sweep]
"populations.cell.b" = ["0 pA", "80.5 pA"]
""", """[sweep]
"populations.cell.I_ext" = [0.0, 2.1e-10]
""")
    ds = E.loads(text, "adex.toml").run(progress=False, write=False)
    spikes = ds["cell_spikes"].values[:, :, 0]
    assert spikes[0].sum() == 0  # no current: at rest
    net = Network(dt=2e-5, batch=1, dtype=torch.float64)
    net.add(AdExPopulation.naud2008("regular_bursting", name="n"))
    ref = net.run(0.2, record=["n.spikes"], progress=False)["n_spikes"].values[0, :, 0]
    np.testing.assert_array_equal(spikes[1], ref)
    assert ref.sum() >= 4
    with pytest.raises(E.ExperimentError, match=r"unknown pattern 'bursty'; allowed: tonic"):
        E.loads(text.replace('"regular_bursting"', '"bursty"'), "adex.toml")
