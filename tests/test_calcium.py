"""Calcium rules (synaptic_fwp.plasticity.calcium): Graupner-Brunel against an independent scipy
integration, its published qualitative STDP curve and readout, noise convergence and per-instance
seeding; Shouval-Bear-Cooper Omega/eta/Mg block, integration convergence and the BCM-type
frequency response; input errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

from synaptic_fwp.plasticity import GraupnerBrunel, ShouvalCalcium, mg_block
from synaptic_fwp.plasticity.calcium import GB_SETS, hash_keys, hash_normal
from synaptic_fwp.plasticity.params import graupner_brunel_params, graupner_brunel_sets
from synaptic_fwp.protocols import frequency_stimulation
from synaptic_fwp.protocols.pairing import pairing

F64 = torch.float64


# ----------------------------------------------------------------------------- Graupner-Brunel
def _gb_scipy(p, delay, rho0, n, f):
    """rho after n pairings, integrated with scipy (DOP853, rtol 1e-12) piece by piece between
    events and threshold crossings (the Heaviside terms are constant on each piece)."""
    ev = sorted([(m / f + p["D"], 0) for m in range(n)] + [(m / f + delay, 1) for m in range(n)])
    t0 = ev[0][0]
    ev = [(t - t0, k) for t, k in ev] + [(ev[-1][0] - t0 + 10 * p["tau_ca"], 2)]
    c, rho, t = 0.0, rho0, 0.0
    for te, k in ev:
        if te > t:
            cuts = [t + p["tau_ca"] * math.log(c / th) for th in (p["theta_p"], p["theta_d"])
                    if c > th]
            pts = sorted([t] + [x for x in cuts if x < te]) + [te]
            for a, b in zip(pts[:-1], pts[1:], strict=True):
                cm = c * math.exp(-((a + b) / 2 - t) / p["tau_ca"])
                hp, hd = float(cm > p["theta_p"]), float(cm > p["theta_d"])

                def rhs(_s, y, hp=hp, hd=hd):
                    r = y[0]
                    return [(-r * (1 - r) * (p["rho_star"] - r) + p["gamma_p"] * (1 - r) * hp
                             - p["gamma_d"] * r * hd) / p["tau"]]

                rho = solve_ivp(rhs, (a, b), [rho], method="DOP853", rtol=1e-12,
                                atol=1e-14).y[0, -1]
            c *= math.exp(-(te - t) / p["tau_ca"])
            t = te
        c += p["C_pre"] if k == 0 else p["C_post"] if k == 1 else 0.0
    return rho


@pytest.mark.parametrize("name", ["DP", "DPD"])
def test_gb_deterministic_matches_scipy(name):
    p = graupner_brunel_params(name)
    rule = GraupnerBrunel.from_table(name, sigma=0.0)
    ds = pairing(rule, dt=[-0.02, 0.01], freq=2.0, n_pairs=12)
    for j, d in enumerate([-0.02, 0.01]):
        for i, r0 in enumerate([0.0, 1.0]):
            want = _gb_scipy(p, d, r0, 12, 2.0)
            got = float(ds.rho_final.isel(trial=0, initial=i, freq=0, dt_pair=j))
            assert abs(got - want) < 1e-8


def test_gb_dp_published_stdp_curve():
    """DP set, sigma = 0, 60 pairs at 1 Hz (GB 2012 Fig. 2 protocol): depression for
    post-before-pre, potentiation for small positive delays."""
    ds = pairing(GraupnerBrunel.from_table("DP", sigma=0.0), dt=[-0.02, -0.01, 0.01, 0.02],
                 freq=1.0, n_pairs=60)
    dw = ds.dw.squeeze("freq").values
    assert (dw[:2] < 0).all() and (dw[2:] > 0).all()
    # deterministic transitions: U, D in {0, 1}; the readout maps them to the published values
    assert set(np.unique(ds.U.values)) <= {0.0, 1.0}
    r = GraupnerBrunel.from_table("DP")
    np.testing.assert_allclose(dw[2:], r.b / (r.beta + (1 - r.beta) * r.b) - 1)
    np.testing.assert_allclose(dw[:2], 1 / (r.beta + (1 - r.beta) * r.b) - 1)


def test_gb_readout_identities():
    r = GraupnerBrunel.from_table("hippocampal_slices")
    assert float(r.synaptic_change(torch.tensor(0.0), torch.tensor(0.0))) == pytest.approx(1.0)
    up = r.synaptic_change(torch.tensor(1.0), torch.tensor(0.0))
    assert float(up) == pytest.approx(r.b / (r.beta + (1 - r.beta) * r.b))
    assert graupner_brunel_sets() == list(GB_SETS)
    for s in GB_SETS:  # all nine published sets build
        assert GraupnerBrunel.from_table(s).tau > 0


def test_gb_noise_transition_probabilities_converge():
    """Block means of the DOWN->UP indicator over n trials: their spread shrinks as 1/sqrt(n)
    and matches the binomial standard error sqrt(U(1-U)/n)."""
    n_total = 512
    ds = pairing(GraupnerBrunel.from_table("DP"), dt=0.01, freq=1.0, n_pairs=60,
                 n_trials=n_total, seed=3)
    up = (ds.rho_final.isel(initial=0).squeeze().values > 0.5).astype(float)  # (trial,)
    U = up.mean()
    assert 0.1 < U < 0.9  # a genuinely stochastic outcome
    assert ds.U.item() == pytest.approx(U)
    assert ds.U_sem.item() == pytest.approx(up.std(ddof=1) / math.sqrt(n_total))
    spread = {}
    for n in (8, 32, 128):
        blocks = up[: (n_total // n) * n].reshape(-1, n).mean(1)
        spread[n] = blocks.std(ddof=1)
        assert 0.5 < spread[n] / math.sqrt(U * (1 - U) / n) < 1.6
    assert spread[8] > spread[32] > spread[128]


def test_gb_noise_is_seeded_per_instance():
    r = GraupnerBrunel.from_table("DP")
    a = pairing(r, dt=0.01, freq=5.0, n_pairs=5, n_trials=3, seed=7).rho_final.values
    b = pairing(r, dt=0.01, freq=5.0, n_pairs=5, n_trials=6, seed=7).rho_final.values
    assert a.shape[0] == 3  # (trial, initial, freq, dt_pair)
    np.testing.assert_array_equal(a, b[:3])
    c = pairing(r, dt=0.01, freq=5.0, n_pairs=5, n_trials=3, seed=8).rho_final.values
    assert not np.array_equal(a, c)


def test_hash_normal_statistics():
    z = hash_normal(hash_keys(5, torch.arange(40_000)), F64)
    assert abs(float(z.mean())) < 0.02 and abs(float(z.std()) - 1) < 0.02
    assert abs(float((z**4).mean()) - 3) < 0.15


def test_gb_interface_and_per_instance_params():
    r = GraupnerBrunel(gamma_p=torch.tensor([321.808, 0.0], dtype=F64), sigma=0.0)
    ds = pairing(r, dt=0.01, freq=1.0, n_pairs=60)
    assert ds.dw.dims == ("param", "freq", "dt_pair")
    dw = ds.dw.squeeze().values
    assert dw[1] < 0 < dw[0]  # no potentiation term: only depression
    W = torch.zeros(2, 3, 4, dtype=F64)
    st = GraupnerBrunel().init_state(W, keys=1)
    assert st["c_pre"].shape == (2, 4) and st["c_post"].shape == (2, 3)
    _, st = GraupnerBrunel().on_post(W, st, torch.ones(2, 3, dtype=F64))
    st2 = GraupnerBrunel().decay(st, 0.02)
    np.testing.assert_allclose(st2["c_post"].numpy(), 2.0 * math.exp(-1.0))


# ----------------------------------------------------------------------------- Shouval
def test_mg_block_and_omega_eta():
    assert mg_block(0.0) == pytest.approx(1 / (1 + 1 / 3.57))
    v = torch.tensor([-65.0, -20.0, 0.0], dtype=F64)
    b = mg_block(v)
    assert (b[1:] > b[:-1]).all() and float(b[0]) == pytest.approx(
        1 / (1 + math.exp(0.062 * 65) / 3.57))
    r = ShouvalCalcium.from_table()
    ca = torch.tensor([[0.0, 0.45, 1.0]], dtype=F64)
    om = r.omega(ca)[0]
    assert float(om[0]) == pytest.approx(0.25, abs=1e-3)  # rest
    assert float(om[1]) < 0.2 and float(om[2]) > 0.9      # LTD window, LTP above alpha2
    et = r.eta(ca)[0]
    assert float(et[0]) == pytest.approx(1 / (0.1 / 1e-5 + 1.0))
    assert float(et[2]) == pytest.approx(1 / (0.1 / (1e-5 + 1.0) + 1.0))


def test_shouval_integration_converges():
    def run(step):
        r = ShouvalCalcium.from_table(max_step=step, slow_step=10 * step)
        return pairing(r, dt=[-0.01, 0.01], freq=10.0, n_pairs=1, w0=0.25).w_final.values

    coarse, mid, fine = run(2e-3), run(1e-3), run(5e-4)
    np.testing.assert_allclose(coarse, fine, rtol=5e-3)  # first order in the step
    assert (np.abs(mid - fine) < np.abs(coarse - fine)).all()


def test_shouval_bcm_frequency_response():
    """Presynaptic stimulation only: LTD at low, LTP at high frequency (Shouval 2002 Fig. 3)."""
    r = ShouvalCalcium.from_table(max_step=2e-3, slow_step=2e-2)
    ds = frequency_stimulation(r, freq=[5.0, 20.0], n_pulses=20, w0=0.25)
    assert float(ds.dw.sel(freq=5.0)) < 0 < float(ds.dw.sel(freq=20.0))
    assert 5.0 < float(ds.theta_freq) < 20.0


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "cls, kwargs, exc, match",
    [
        (GraupnerBrunel, dict(tau_ca=-0.02), ValueError, "tau_ca"),
        (GraupnerBrunel, dict(D=torch.tensor([0.01])), ValueError, "D must be a float"),
        (GraupnerBrunel, dict(sigma=-1.0), ValueError, "sigma"),
        (GraupnerBrunel, dict(substeps=0), ValueError, "substeps"),
        (GraupnerBrunel, dict(theta_p="1.3"), TypeError, "theta_p"),
        (ShouvalCalcium, dict(tau_ca=0.0), ValueError, "tau_ca"),
        (ShouvalCalcium, dict(max_step=-1e-3), ValueError, "max_step"),
        (ShouvalCalcium, dict(quiet_steps=0), ValueError, "quiet_steps"),
    ],
)
def test_calcium_errors(cls, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        cls(**kwargs)


def test_gb_table_errors():
    with pytest.raises(ValueError, match="name"):
        GraupnerBrunel.from_table("DPP")
    with pytest.raises(ValueError, match="dt"):
        GraupnerBrunel().advance(torch.zeros(1, 1), GraupnerBrunel().init_state(torch.zeros(1, 1)),
                                 -1.0)
