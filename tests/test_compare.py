"""Rule comparison: ranking by AIC, Akaike weights, parameter union, published-set evaluation,
pandas view, input errors; and no matplotlib below the plot layer."""

from __future__ import annotations

import math

import numpy as np
import pytest

from synaptic_fwp import datasets
from synaptic_fwp.compare import Comparison, FitSpec, compare
from synaptic_fwp.fit import Model


def _const(p, c):
    return np.repeat(p["c"][:, None], c["freq"].size, axis=1)


def _sign(p, c):
    return p["c"][:, None] + p["b"][:, None] * np.sign(c["dt"])[None]


def _freq(p, c):
    return (p["c"][:, None] + p["b"][:, None] * np.sign(c["dt"])[None]
            + p["a"][:, None] * c["freq"][None])


@pytest.fixture(scope="module")
def result():
    specs = [
        FitSpec("const", Model("const", _const, {"c": 0.0}), {"c": (-1, 1)}),
        FitSpec("sign", Model("sign", _sign, {"c": 0.0, "b": 0.0}), {"c": (-1, 1), "b": (-1, 1)},
                published={"c": 0.1, "b": 0.2}),
        FitSpec("freq", Model("freq", _freq, {"c": 0.0, "b": 0.0, "a": 0.0}, units={"a": "s"}),
                {"c": (-1, 1), "b": (-1, 1), "a": (-0.1, 0.1)}),
    ]
    d = datasets.load("sjostrom2001_frequency")
    sub = d.isel(point=[0, 1, 2, 5, 6, 7]).assign_attrs(name="low_freq")
    return compare(specs, [d, sub], seed=0, popsize=5, n_boot=5, grid_points=5)


def test_table_shape_and_ranking(result):
    t = result.table
    assert isinstance(result, Comparison)
    assert list(t["rule"].values) == ["const", "sign", "freq"]
    assert list(t["dataset"].values) == ["sjostrom2001_frequency", "low_freq"]
    assert list(t["param"].values) == ["c", "b", "a"]
    for dn in t["dataset"].values:
        s = t.sel(dataset=dn)
        aic = s["aic"].values
        np.testing.assert_allclose(aic, s["objective"].values + 2 * s["n_free"].values)
        order = np.argsort(aic)
        np.testing.assert_array_equal(s["rank"].values[order], [1, 2, 3])
        np.testing.assert_allclose(s["delta_aic"].values, aic - aic.min())
        w = np.exp(-s["delta_aic"].values / 2)
        np.testing.assert_allclose(s["aic_weight"].values, w / w.sum())
        assert s["aic_weight"].sum() == pytest.approx(1.0)
    # nested models: more parameters never fit worse
    obj = t["objective"].sel(dataset="sjostrom2001_frequency").values
    assert obj[0] >= obj[1] - 1e-9 >= obj[2] - 2e-9
    # the frequency term wins on the full data (LTP at 40-50 Hz for both lags)
    assert t["rank"].sel(rule="freq", dataset="sjostrom2001_frequency").item() == 1
    # parameters a rule does not have are NaN; units carried
    assert math.isnan(t["value"].sel(rule="const", param="a", dataset="low_freq").item())
    assert t["param_units"].sel(param="a").item() == "s"


def test_fits_and_published(result):
    t = result.table
    f = result.fits[("sign", "low_freq")]
    assert float(f["objective"]) == pytest.approx(
        t["objective"].sel(rule="sign", dataset="low_freq").item())
    assert f.sizes["point"] == 6
    pub = result.published[("sign", "sjostrom2001_frequency")]
    d = datasets.load("sjostrom2001_frequency")
    m = 0.1 + 0.2 * np.sign(d["dt"].values)
    chi2 = np.sum(((m - d["dw"].values) / d["dw_sem"].values) ** 2)
    assert float(pub["objective"]) == pytest.approx(chi2)
    assert t["published_objective"].sel(rule="sign", dataset="sjostrom2001_frequency").item() \
        == pytest.approx(chi2)
    assert math.isnan(t["published_objective"].sel(rule="const", dataset="low_freq").item())
    # the best fit is at least as good as the published set
    assert t["objective"].sel(rule="sign").values.max() <= chi2 + 1e-9
    for v in ("seconds", "population", "n_model_calls"):
        assert (t[v].values > 0).all()


def test_to_pandas(result):
    df = result.to_pandas()
    assert len(df) == 6
    assert list(df.columns[:3]) == ["rule", "dataset", "objective"]
    for _, g in df.groupby("dataset"):
        assert list(g["aic"]) == sorted(g["aic"])
        assert list(g["rank"]) == [1, 2, 3]


def test_bad_inputs():
    m = Model("const", _const, {"c": 0.0})
    spec = FitSpec("const", m, {"c": (-1, 1)})
    with pytest.raises(ValueError, match="rules is empty"):
        compare([], "sjostrom2001_frequency")
    with pytest.raises(TypeError, match="FitSpec"):
        compare([m], "sjostrom2001_frequency")
    with pytest.raises(ValueError, match="rule names must be distinct"):
        compare([spec, spec], "sjostrom2001_frequency")
    with pytest.raises(ValueError, match="not a measurement dataset"):
        compare([spec], "graupner_brunel2012_params")
    with pytest.raises(ValueError, match="name must be one of"):
        compare([spec], "no_such_data")
    with pytest.raises(TypeError, match="model of 'x' must be a synaptic_fwp.fit.Model"):
        FitSpec("x", _const, {"c": (0, 1)})
    with pytest.raises(TypeError, match="datasets entries must be names"):
        compare([spec], [3])


def test_fit_compare_datasets_import_no_matplotlib_brian2_dask():
    """Layering (DESIGN.md): nothing below plot imports matplotlib; nothing below the faces
    imports brian2 or dask (checked on the import statements of these modules)."""
    import ast
    import pathlib

    import synaptic_fwp

    root = pathlib.Path(synaptic_fwp.__file__).parent
    files = [root / "fit.py", root / "compare.py", *sorted((root / "datasets").glob("*.py"))]
    for f in files:
        for node in ast.walk(ast.parse(f.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for n in names:
                assert n.split(".")[0] not in ("matplotlib", "brian2", "dask"), (f, n)


def test_evaluate_only_rule_and_per_rule_fit_kwargs():
    d = datasets.load("sjostrom2001_frequency")
    specs = [
        FitSpec("fixed", Model("fixed", _sign, {"c": 0.0, "b": 0.0}), {},
                published={"c": 0.1, "b": 0.2}),
        FitSpec("sign", Model("sign", _sign, {"c": 0.0, "b": 0.0}), {"c": (-1, 1), "b": (-1, 1)},
                fit_kwargs={"popsize": 3, "n_boot": 0}),
    ]
    res = compare(specs, d, popsize=6, n_boot=3, grid_points=4)
    t = res.table
    m = 0.1 + 0.2 * np.sign(d["dt"].values)
    chi2 = np.sum(((m - d["dw"].values) / d["dw_sem"].values) ** 2)
    assert t["objective"].sel(rule="fixed").item() == pytest.approx(chi2)
    assert t["aic"].sel(rule="fixed").item() == pytest.approx(chi2)  # k = 0
    assert t["published_objective"].sel(rule="fixed").item() == pytest.approx(chi2)
    assert np.isnan(t["ci_low"].sel(rule="fixed")).all()
    assert res.fits[("sign", "sjostrom2001_frequency")].attrs["population"] == 6  # 3 * k
    assert "boot" not in res.fits[("sign", "sjostrom2001_frequency")].dims
