"""Batched fitting: against closed-form optima (weighted linear least squares), scipy's
least_squares (for the batched Levenberg-Marquardt), reproducibility, one model call per
population, goodness-of-fit formulas, bootstrap intervals, and the pairing-protocol adapter
(published triplet sets vs the closed-form pairing sums)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import xarray as xr
from scipy.optimize import least_squares

from synaptic_fwp import datasets
from synaptic_fwp import fit as F


@pytest.fixture(scope="module")
def sjostrom():
    return datasets.load("sjostrom2001_frequency")


def _linear_predict(p, c):
    return (p["a"][:, None] * np.log(c["freq"])[None] + p["b"][:, None] * np.sign(c["dt"])[None]
            + p["c"][:, None])


class Counting:
    """Wraps a predict function and records the batch size of every call."""

    def __init__(self, fn):
        self.fn, self.sizes = fn, []

    def __call__(self, p, c):
        self.sizes.append(next(iter(p.values())).shape[0])
        return self.fn(p, c)


def _wls(ds):
    X = np.stack([np.log(ds["freq"].values), np.sign(ds["dt"].values), np.ones(ds.sizes["point"])],
                 1)
    w = 1.0 / ds["dw_sem"].values
    beta, *_ = np.linalg.lstsq(X * w[:, None], ds["dw"].values * w, rcond=None)
    cov = np.linalg.inv((X * w[:, None]).T @ (X * w[:, None]))
    return X, beta, cov


def test_linear_model_reaches_weighted_least_squares_optimum(sjostrom):
    m = F.Model("linear", _linear_predict, {"a": 0.0, "b": 0.0, "c": 0.0})
    res = F.fit(m, sjostrom, bounds={"a": (-1, 1), "b": (-1, 1), "c": (-1, 1)}, seed=3,
                n_boot=0)
    X, beta, _ = _wls(sjostrom)
    np.testing.assert_allclose(res["value"].values, beta, rtol=1e-6, atol=1e-8)
    y, s = sjostrom["dw"].values, sjostrom["dw_sem"].values
    chi2 = float((((X @ beta) - y) / s) ** 2 @ np.ones(10))
    assert float(res["objective"]) == pytest.approx(chi2, rel=1e-9)
    k, n = 3, 10
    assert float(res["aic"]) == pytest.approx(chi2 + 2 * k)
    assert float(res["bic"]) == pytest.approx(chi2 + k * math.log(n))
    assert float(res["rmse"]) == pytest.approx(np.sqrt(np.mean((X @ beta - y) ** 2)))
    assert float(res["reduced_chi2"]) == pytest.approx(chi2 / (n - k))
    np.testing.assert_allclose(res["model"].values, X @ beta, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(res["residual"].values, (X @ beta - y) / s, rtol=1e-5, atol=1e-8)


def test_bootstrap_interval_matches_linear_theory(sjostrom):
    """For a linear model the parametric-bootstrap estimates are Gaussian with covariance
    (X^T S^-2 X)^-1: the 95% interval is beta +- 1.96 sd."""
    m = F.Model("linear", _linear_predict, {"a": 0.0, "b": 0.0, "c": 0.0})
    res = F.fit(m, sjostrom, bounds={"a": (-5, 5), "b": (-5, 5), "c": (-5, 5)}, seed=0,
                n_boot=400)
    _, beta, cov = _wls(sjostrom)
    sd = np.sqrt(np.diag(cov))
    boot = res["boot_value"].values
    np.testing.assert_allclose(boot.std(0), sd, rtol=0.15)
    np.testing.assert_allclose(boot.mean(0), beta, atol=0.3 * sd.max())
    half = (res["ci_high"] - res["ci_low"]).values / 2
    np.testing.assert_allclose(half, 1.96 * sd, rtol=0.2)
    assert res.sizes["boot"] == 400


def _exp_predict(p, c):
    # dw = A exp(-freq / f0) * sign(dt) + B : nonlinear in f0
    return (p["A"][:, None] * np.exp(-c["freq"][None] / p["f0"][:, None])
            * np.sign(c["dt"])[None] + p["B"][:, None])


def _synthetic(true, sem=0.01):
    freq = np.array([0.5, 1, 2, 5, 10, 20, 40] * 2, float)
    dt = np.repeat([0.01, -0.01], 7)
    y = _exp_predict({k: np.array([v]) for k, v in true.items()}, {"freq": freq, "dt": dt})[0]
    rng = np.random.default_rng(0)
    y = y + sem * rng.standard_normal(y.size) * 0.01
    return datasets.from_columns({"freq_Hz": freq, "dt_s": dt, "dw_mean": y,
                                  "dw_sem": np.full(y.size, sem)}, name="synthetic")


def test_recovers_known_nonlinear_parameters_with_fixed_and_log():
    true = {"A": 0.4, "f0": 8.0, "B": -0.05}
    data = _synthetic(true)
    counter = Counting(_exp_predict)
    m = F.Model("exp", counter, {"A": 1.0, "f0": 1.0, "B": 0.0}, units={"f0": "Hz"})
    res = F.fit(m, data, bounds={"A": (0, 1), "f0": (0.1, 100)}, fixed={"B": -0.05}, seed=1,
                popsize=8, n_boot=0)
    got = dict(zip(res["param"].values, res["value"].values, strict=True))
    assert got["A"] == pytest.approx(0.4, rel=1e-3)
    assert got["f0"] == pytest.approx(8.0, rel=1e-3)
    assert got["B"] == -0.05
    assert res.attrs["log_params"] == "f0"  # auto: positive range over >= 2 decades
    assert list(res["param_status"].values) == ["free", "free", "fixed"]
    assert res["param_units"].sel(param="f0").item() == "Hz"
    # batched: every DE generation is ONE call with the whole population (popsize * k)
    pop = res.attrs["population"]
    assert pop == 16
    de_calls = res.attrs["n_model_calls_de"]
    assert counter.sizes[:de_calls] == [pop] * de_calls
    assert res.attrs["max_sets_per_call"] == pop


def test_same_seed_same_result_and_seed_matters_for_search(sjostrom):
    m = F.Model("exp", _exp_predict, {"A": 1.0, "f0": 1.0, "B": 0.0})
    kw = dict(bounds={"A": (-1, 1), "f0": (0.1, 100), "B": (-1, 1)}, popsize=6, maxiter=15,
              n_boot=20, polish=False)
    a = F.fit(m, sjostrom, seed=7, **kw)
    b = F.fit(m, sjostrom, seed=7, **kw)
    c = F.fit(m, sjostrom, seed=8, **kw)
    for v in ("value", "boot_value", "ci_low", "model_grid", "objective"):
        np.testing.assert_array_equal(a[v].values, b[v].values)
    assert not np.array_equal(a["boot_value"].values, c["boot_value"].values)


def test_batched_least_squares_equals_scipy_least_squares():
    rng = np.random.default_rng(2)
    x = np.linspace(0, 1, 12)
    # B problems: fit y = u0 * exp(-x / (0.05 + u1)) with different data
    truth = rng.uniform(0.2, 0.8, size=(5, 2))
    Y = truth[:, :1] * np.exp(-x[None] / (0.05 + truth[:, 1:])) + 0.01 * rng.standard_normal(
        (5, 12))

    def res_one(u, y):
        return u[0] * np.exp(-x / (0.05 + u[1])) - y

    def res_batch(U, which):
        return U[:, :1] * np.exp(-x[None] / (0.05 + U[:, 1:])) - Y[which]

    U, cost = F.batched_least_squares(res_batch, np.full((5, 2), 0.5), max_iter=100)
    for b in range(5):
        ref = least_squares(res_one, [0.5, 0.5], args=(Y[b],), bounds=(0, 1), xtol=1e-14,
                            ftol=1e-14, gtol=1e-14)
        np.testing.assert_allclose(U[b], ref.x, rtol=1e-4, atol=1e-6)
        assert cost[b] == pytest.approx(2 * ref.cost, rel=1e-6)


def test_nonfinite_candidates_never_win_and_are_counted(sjostrom):
    def pred(p, c):
        out = _linear_predict(p, c)
        out[p["a"] > 0.5] = np.nan  # a corner of parameter space where the model blows up
        return out

    m = F.Model("linear", pred, {"a": 0.0, "b": 0.0, "c": 0.0})
    res = F.fit(m, sjostrom, bounds={"a": (-1, 1), "b": (-1, 1), "c": (-1, 1)}, seed=0,
                n_boot=0)
    _, beta, _ = _wls(sjostrom)
    np.testing.assert_allclose(res["value"].values, beta, rtol=1e-5, atol=1e-7)
    assert res.attrs["n_nonfinite_candidates"] > 0


def test_nonfinite_best_raises(sjostrom):
    def pred(p, c):
        return np.full((p["a"].shape[0], c["freq"].size), np.nan)

    m = F.Model("broken", pred, {"a": 0.0})
    with pytest.raises(FloatingPointError, match="non-finite predictions"):
        F.fit(m, sjostrom, bounds={"a": (0, 1)}, n_boot=0, maxiter=2, popsize=3)


def test_evaluate_and_fine_grid(sjostrom):
    m = F.Model("linear", _linear_predict, {"a": 0.1, "b": 0.2, "c": -0.1})
    ev = F.evaluate(m, sjostrom, n_free=3, grid_points=7)
    X, _, _ = _wls(sjostrom)
    pred = X @ np.array([0.1, 0.2, -0.1])
    chi2 = np.sum(((pred - sjostrom["dw"].values) / sjostrom["dw_sem"].values) ** 2)
    assert float(ev["objective"]) == pytest.approx(chi2)
    assert float(ev["aic"]) == pytest.approx(chi2 + 6)
    g = F.fine_grid(sjostrom, 7)
    assert g["freq"].size == 14 and set(g["dt"]) == {-0.01, 0.01}
    np.testing.assert_allclose(g["freq"][:7], np.geomspace(0.1, 50, 7))
    assert ev.sizes["grid"] == 14
    np.testing.assert_allclose(ev["grid_freq"].values, g["freq"])


def test_result_round_trips_netcdf(sjostrom, tmp_path):
    m = F.Model("linear", _linear_predict, {"a": 0.0, "b": 0.0, "c": 0.0})
    res = F.fit(m, sjostrom, bounds={"a": (-1, 1), "b": (-1, 1)}, n_boot=5, popsize=5)
    res.to_netcdf(tmp_path / "f.nc")
    back = xr.load_dataset(tmp_path / "f.nc")
    xr.testing.assert_identical(res, back)
    for v in res.data_vars.values():
        assert "units" in v.attrs and "long_name" in v.attrs


@pytest.mark.parametrize(
    "kwargs, err, match",
    [
        (dict(bounds={"z": (0, 1)}), ValueError, "'z' is not a parameter of model"),
        (dict(bounds={}), ValueError, "bounds must be a non-empty mapping"),
        (dict(bounds={"a": (1, 0)}), ValueError, r"bounds\['a'\] must be \(low, high\)"),
        (dict(bounds={"a": (0, 1)}, fixed={"a": 0.3}), ValueError, "both in bounds"),
        (dict(bounds={"a": (-1, 1)}, log=["a"]), ValueError, "need bounds with low > 0"),
        (dict(bounds={"a": (0.1, 1)}, log=["b"]), ValueError, "are not free parameters"),
        (dict(bounds={"a": (0, 1)}, fixed={"b": float("nan")}), ValueError, "finite float"),
        (dict(bounds={"a": (0, 1)}, seed=-1), ValueError, "seed must be an int >= 0"),
        (dict(bounds={"a": (0, 1)}, ci=95), ValueError, r"ci must be a float in \(0, 1\)"),
        (dict(bounds={"a": (0, 1)}, grid_points=1), ValueError, "grid_points must be"),
    ],
)
def test_bad_arguments_raise_before_work(sjostrom, kwargs, err, match):
    counter = Counting(_linear_predict)
    m = F.Model("linear", counter, {"a": 0.0, "b": 0.0, "c": 0.0})
    with pytest.raises(err, match=match):
        F.fit(m, sjostrom, **kwargs)
    assert counter.sizes == []  # no model call happened


def test_bad_model_and_data(sjostrom):
    with pytest.raises(TypeError, match="model must be a synaptic_fwp.fit.Model"):
        F.fit(_linear_predict, sjostrom, bounds={"a": (0, 1)})
    m = F.Model("linear", _linear_predict, {"a": 0.0, "b": 0.0, "c": 0.0})
    with pytest.raises(ValueError, match="has no 'conditions' attribute"):
        F.fit(m, datasets.load("graupner_brunel2012_params"), bounds={"a": (0, 1)})
    wrong = F.Model("wrong", lambda p, c: np.zeros((1, 3)), {"a": 0.0})
    with pytest.raises(ValueError, match=r"expected \(S, n\)"):
        F.evaluate(wrong, sjostrom)
    with pytest.raises(ValueError, match="defaults"):
        F.Model("x", _linear_predict, {"a": float("inf")})


# -------------------------------------------------------------- through the pairing protocol


@pytest.mark.parametrize("model", ["full", "minimal"])
def test_pairing_model_equals_closed_form_for_published_triplet(sjostrom, model):
    from synaptic_fwp.plasticity import TripletSTDP
    from synaptic_fwp.plasticity.stdp import pairing_closed_form

    rule = TripletSTDP.from_table("visual_cortex", "all_to_all", model)
    m = F.pairing_model(rule)
    ev = F.evaluate(m, sjostrom, grid_points=5)
    cf = pairing_closed_form(rule, sjostrom["dt"].values, sjostrom["freq"].values, 60)
    np.testing.assert_allclose(ev["model"].values, cf, rtol=1e-9, atol=1e-12)
    # batch of 3 candidate sets in one protocol call: row i equals its own single run
    vals = {"A3_plus": np.array([6.2e-3, 3e-3, 1e-2]), "A2_minus": np.array([7e-3, 5e-3, 9e-3])}
    out = m(vals, {"freq": sjostrom["freq"].values, "dt": sjostrom["dt"].values})
    for i in range(3):
        one = m({k: v[i:i + 1] for k, v in vals.items()},
                {"freq": sjostrom["freq"].values, "dt": sjostrom["dt"].values})
        np.testing.assert_allclose(out[i], one[0], rtol=1e-12, atol=1e-14)


def test_fit_minimal_triplet_beats_published_set_quickly(sjostrom):
    """Reduced-size version of the issue's check (the full fit is in analyses/compare_rules)."""
    from synaptic_fwp.plasticity import TripletSTDP

    rule = TripletSTDP.from_table("visual_cortex", "all_to_all", "minimal")
    m = F.pairing_model(rule)
    pub = F.evaluate(m, sjostrom, n_free=2)
    res = F.fit(m, sjostrom, bounds={"A3_plus": (0, 0.05), "A2_minus": (0, 0.05)}, seed=0,
                popsize=6, maxiter=20, n_boot=0, grid_points=5)
    assert float(res["objective"]) <= float(pub["objective"]) + 1e-9
    with pytest.raises(ValueError, match="not per-instance float fields of TripletSTDP"):
        F.pairing_model(rule, params=["tau_x"])
    with pytest.raises(TypeError, match="rule instance"):
        F.pairing_model(TripletSTDP)
    # started from the published set (x0), the fit can only improve on it
    res0 = F.fit(m, sjostrom, bounds={"A3_plus": (0, 0.05), "A2_minus": (0, 0.05)}, seed=0,
                 popsize=3, maxiter=1, n_boot=0, grid_points=5, polish=False,
                 x0={"A3_plus": 6.5e-3, "A2_minus": 7.1e-3})
    assert float(res0["objective"]) <= float(pub["objective"]) + 1e-12
    with pytest.raises(ValueError, match="x0 must give exactly the free parameters"):
        F.fit(m, sjostrom, bounds={"A3_plus": (0, 0.05)}, x0={"A2_minus": 0.1})
