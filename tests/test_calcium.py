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
    et3 = ShouvalCalcium.from_table(eta_scale=3.0).eta(ca)[0]  # the learning-rate scale
    np.testing.assert_allclose(et3.numpy(), 3.0 * et.numpy(), rtol=1e-15)


def test_shouval_integration_converges():
    def run(step):
        r = ShouvalCalcium.from_table(max_step=step, slow_step=10 * step, scheme="substep")
        return pairing(r, dt=[-0.01, 0.01], freq=10.0, n_pairs=1, w0=0.25).w_final.values

    coarse, mid, fine = run(2e-3), run(1e-3), run(5e-4)
    np.testing.assert_allclose(coarse, fine, rtol=5e-3)  # first order in the step
    assert (np.abs(mid - fine) < np.abs(coarse - fine)).all()


def _shouval_scipy(r, delay, n, f, w0=0.25):
    """W after n pairings (pre at m/f, BPAP onset at m/f + delay + bpap_delay) and the
    rule's settle time, from scipy (DOP853, rtol 1e-11) on (Ca, W) piece by piece between
    events, with the exponential components written out independently of the package."""
    ev = sorted([(m / f, 0) for m in range(n)] + [(m / f + delay + r.bpap_delay, 1)
                                                   for m in range(n)])
    t0 = ev[0][0]
    ev = [(t - t0, k) for t, k in ev] + [(ev[-1][0] - t0 + r.settle_time, 2)]
    nf = ns = bf = bs = 0.0
    y, t = [0.0, w0], 0.0

    def rhs(s, y, nf, ns, bf, bs):
        g = r.nmda_If * nf * math.exp(-s / r.nmda_tau_f) + (1 - r.nmda_If) * ns * math.exp(
            -s / r.nmda_tau_s)
        V = r.V_rest + r.bpap_amp * (r.bpap_If * bf * math.exp(-s / r.bpap_tau_f)
                                     + (1 - r.bpap_If) * bs * math.exp(-s / r.bpap_tau_s))
        B = 1 / (1 + math.exp(-0.062 * V) / 3.57)
        ca = y[0]
        om = 0.25 + 1 / (1 + math.exp(-r.beta2 * (ca - r.alpha2))) - 0.25 / (
            1 + math.exp(-r.beta1 * (ca - r.alpha1)))
        eta = 1 / (r.P1 / (r.P2 + max(ca, 0.0) ** r.P3) + r.P4)
        return [r.P0 * r.G_nmda * g * B * (V - r.V_r) - ca / r.tau_ca,
                eta * (om - r.lam * y[1])]

    for te, k in ev:
        if te > t:
            y = list(solve_ivp(rhs, (0.0, te - t), y, method="DOP853", rtol=1e-11, atol=1e-14,
                               args=(nf, ns, bf, bs), first_step=1e-5).y[:, -1])
            d = te - t
            nf, ns = nf * math.exp(-d / r.nmda_tau_f), ns * math.exp(-d / r.nmda_tau_s)
            bf, bs = bf * math.exp(-d / r.bpap_tau_f), bs * math.exp(-d / r.bpap_tau_s)
            t = te
        if k == 0:
            nf, ns = nf + 1, ns + 1
        elif k == 1:
            bf, bs = bf + 1, bs + 1
    return y[1]


def test_shouval_adaptive_matches_scipy():
    """The default (adaptive) scheme against an independent scipy integration: 1e-6 relative
    in float64 (pairing at 10 and 0.5 Hz, both orders; the quiet stretches are jumped)."""
    r = ShouvalCalcium.from_table()
    ds = pairing(r, dt=[-0.01, 0.01], freq=[10.0, 0.5], n_pairs=2, w0=0.25)
    for i, f in enumerate([10.0, 0.5]):
        for j, d in enumerate([-0.01, 0.01]):
            want = _shouval_scipy(r, d, 2, f)
            got = float(ds.w_final.isel(freq=i, dt_pair=j))
            assert abs(got - want) < 1e-6 * abs(want)
            assert abs(got - 0.25) > 1e-3  # a real weight change
    # float32 (tolerances raised to what float32 can meet) stays close
    ds32 = pairing(r, dt=[-0.01, 0.01], freq=[10.0, 0.5], n_pairs=2, w0=0.25,
                   dtype=torch.float32)
    np.testing.assert_allclose(ds32.w_final.values, ds.w_final.values, rtol=5e-4)


def test_shouval_adaptive_agrees_with_substep():
    """The previous fixed-step scheme (first order in the step) agrees with the adaptive one to
    its own discretisation error, and the same holds per instance and in torch (no numpy)."""
    a = ShouvalCalcium.from_table(alpha1=torch.tensor([0.35, 0.3], dtype=F64))
    ds = pairing(a, dt=[-0.01, 0.01], freq=10.0, n_pairs=1, w0=0.25)
    sub = pairing(ShouvalCalcium.from_table(scheme="substep", max_step=1e-3, slow_step=1e-2),
                  dt=[-0.01, 0.01], freq=10.0, n_pairs=1, w0=0.25)
    np.testing.assert_allclose(ds.w_final.isel(param=0).values, sub.w_final.values, rtol=2e-3)
    one = pairing(ShouvalCalcium.from_table(alpha1=0.3), dt=[-0.01, 0.01], freq=10.0,
                  n_pairs=1, w0=0.25)
    np.testing.assert_allclose(ds.w_final.isel(param=1).values, one.w_final.values,
                               rtol=1e-7)
    # the torch path of the same kernel (used off the CPU) gives the numpy result
    W = torch.full((1, 1, 1), 0.25, dtype=F64)
    st = a.init_state(torch.full((2, 1, 1), 0.25, dtype=F64))
    W = W.expand(2, 1, 1)
    W, st = a.on_pre(W, st, torch.ones(2, 1, dtype=F64))
    W, st = a.on_post(W, st, torch.ones(2, 1, dtype=F64))
    Wg = W.clone().requires_grad_(False)
    W1, st1 = a.advance(Wg, st, 0.3)
    from synaptic_fwp.plasticity import calcium as cal

    p = {n: getattr(a, n) for n in a._PARAMS}
    p = {k: v.reshape(-1, 1, 1) if isinstance(v, torch.Tensor) else v for k, v in p.items()}
    p.update(mg=a.mg, mg_k=a.mg_k, mg_K=a.mg_K)
    comp = {k: st[k].unsqueeze(-2) for k in ("nf", "ns", "e1", "e2")}
    comp.update({k: st[k].unsqueeze(-1) for k in ("bf", "bs")})
    opt = dict(has_epsp=False, v_quiet=a.v_quiet, w_quiet=a.w_quiet, first_step=a.first_step,
               rtol=a.rtol, atol=a.atol, max_iter=a.max_iter)
    W2, ca2 = cal._shouval_adaptive(cal._TorchOps, p, comp, st["ca"], W.clone(),
                                    torch.full_like(W, 0.3), opt)
    np.testing.assert_allclose(W2.numpy(), W1.numpy(), rtol=1e-12)
    np.testing.assert_allclose(ca2.numpy(), st1["ca"].numpy(), rtol=1e-12)


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
        (ShouvalCalcium, dict(scheme="rk4"), ValueError, "scheme"),
        (ShouvalCalcium, dict(rtol=0.0), ValueError, "rtol"),
        (ShouvalCalcium, dict(max_iter=0), ValueError, "max_iter"),
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
