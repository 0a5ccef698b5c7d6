"""Pairing and frequency protocols (synaptic_fwp.protocols): Dataset schema and NetCDF round trip,
float32 vs float64, frequency stimulation = pairing, event merging, input errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr

from synaptic_fwp.plasticity import PairSTDP, TripletSTDP
from synaptic_fwp.plasticity.stdp import pairing_closed_form
from synaptic_fwp.protocols import frequency_stimulation, pairing
from synaptic_fwp.protocols.events import merge_events


def test_dataset_schema_and_netcdf_roundtrip(tmp_path):
    rule = TripletSTDP(A3_plus=torch.tensor([6e-3, 7e-3], dtype=torch.float64))
    ds = pairing(rule, dt=[-0.01, 0.01], freq=[1.0, 20.0], n_pairs=10)
    assert ds.dw.dims == ("param", "freq", "dt_pair")
    for name in [*ds.data_vars, "freq", "dt_pair"]:
        assert "units" in ds[name].attrs and "long_name" in ds[name].attrs, name
    assert ds.freq.attrs["units"] == "Hz" and ds.dt_pair.attrs["units"] == "s"
    assert ds.attrs["rule"] == "triplet_stdp" and ds.attrs["n_pairs"] == 10
    np.testing.assert_array_equal(ds.A3_plus.values, [6e-3, 7e-3])
    path = tmp_path / "pairing.nc"
    ds.to_netcdf(path)
    back = xr.load_dataset(path)
    xr.testing.assert_identical(back, ds)


def test_float32_close_to_float64():
    rule = TripletSTDP.from_table("visual_cortex", "all_to_all", "full")
    a = pairing(rule, dt=[-0.01, 0.01], freq=[0.1, 10, 50], dtype=torch.float64).dw.values
    b = pairing(rule, dt=[-0.01, 0.01], freq=[0.1, 10, 50], dtype=torch.float32).dw.values
    assert b.dtype == np.float32
    np.testing.assert_allclose(b, a, atol=1e-5)


def test_frequency_follow_equals_pairing():
    rule = TripletSTDP.from_table("visual_cortex", "all_to_all", "minimal")
    f = frequency_stimulation(rule, freq=[1.0, 10.0, 40.0, 50.0], n_pulses=60, post="follow",
                              post_dt=-0.01)
    p = pairing(rule, dt=-0.01, freq=[1.0, 10.0, 40.0, 50.0], n_pairs=60)
    np.testing.assert_allclose(f.dw.values, p.dw.squeeze("dt_pair").values, rtol=1e-12)
    # LTD at low, LTP at high frequency: a BCM-type crossover between 10 and 40 Hz
    assert 10.0 < float(f.theta_freq) < 40.0
    cf = pairing_closed_form(rule, -0.01, np.array([1.0, 10.0, 40.0, 50.0]), 60)
    np.testing.assert_allclose(f.dw.values, cf, rtol=1e-9)


def test_bounded_rule_runs_from_w0():
    rule = PairSTDP(A_plus=0.05, A_minus=0.0, bounds="hard", w_max=1.2)
    ds = pairing(rule, dt=0.005, freq=20.0, n_pairs=30, w0=1.0)
    assert float(ds.w_final.max()) == pytest.approx(1.2)  # saturates at the bound
    assert float(ds.dw.max()) == pytest.approx(0.2)


def test_merge_events_order_and_padding():
    pres = [np.array([0.0, 0.01]), np.array([0.0]), np.array([0.02, 0.05])]
    posts = [np.array([0.01]), np.array([0.005]), np.array([0.01, 0.03])]
    dt, is_pre, is_post = merge_events(pres, posts)
    assert dt.shape[0] == 3 and not (is_pre * is_post).any()
    t = np.cumsum(dt, axis=1)
    for g in range(3):  # every spike at its time, coincident pre before post
        np.testing.assert_allclose(t[g][is_pre[g] == 1], pres[g])
        np.testing.assert_allclose(t[g][is_post[g] == 1], posts[g])
    kinds = [(2 * is_pre[g] + is_post[g])[(is_pre[g] + is_post[g]) > 0] for g in range(3)]
    np.testing.assert_array_equal(kinds[0], [2, 2, 1])
    # aligned slots: each column holds one kind of spike only (pure columns)
    assert not ((is_pre.any(axis=0)) & (is_post.any(axis=0))).any()
    # pairing grids alternate, so alignment adds at most one slot
    d, p_, q_ = merge_events([np.arange(5.0), np.arange(5.0)], [np.arange(5.0) + 0.01,
                                                                 np.arange(5.0) - 0.01 + 1])
    assert d.shape[1] <= 11


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(freq=0.0), ValueError, "freq"),
        (dict(freq=[]), ValueError, "freq"),
        (dict(freq=[-1.0, 10.0]), ValueError, "freq"),
        (dict(dt=float("nan")), ValueError, "dt"),
        (dict(n_pairs=0), ValueError, "n_pairs"),
        (dict(n_pairs=1.5), ValueError, "n_pairs"),
        (dict(dtype=torch.int32), ValueError, "dtype"),
        (dict(w0=-1.0), ValueError, "w0"),
        (dict(w0=True), ValueError, "w0"),
        (dict(n_trials=2), ValueError, "n_trials"),
        (dict(n_trials=0), ValueError, "n_trials"),
    ],
)
def test_pairing_errors(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        pairing(PairSTDP(), **kwargs)


def test_pairing_rule_errors():
    with pytest.raises(TypeError, match="rule"):
        pairing("triplet")
    bad = TripletSTDP(A3_plus=torch.rand(3, dtype=torch.float64),
                      tau_y=0.1 + torch.rand(4, dtype=torch.float64))
    with pytest.raises(ValueError, match="one shape"):
        pairing(bad)
    two_d = TripletSTDP(A3_plus=torch.rand(2, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="1-D"):
        pairing(two_d)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(post="burst"), "post"),
        (dict(post="follow", post_dt=0.5, freq=[10.0]), "post_dt"),
        (dict(n_pulses=0), "n_pulses"),
        (dict(post_dt=float("inf")), "post_dt"),
    ],
)
def test_frequency_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        frequency_stimulation(PairSTDP(), **kwargs)


def test_sjostrom_analysis_quick(tmp_path, capsys):
    """The analysis command (--quick) writes its table and figure; every published visual-cortex
    set fits the Sjostrom 2001 data with chi2 < 10 over the 10 points (E < 1)."""
    from synaptic_fwp.analyses.sjostrom_frequency import main

    ds = main(["--quick", "--out", str(tmp_path)])
    for ext in ("nc", "csv", "pdf", "png"):
        assert (tmp_path / f"sjostrom_frequency.{ext}").stat().st_size > 0
    assert ds.chi2.dims == ("set",) and len(ds.set) == 4
    assert (ds.chi2 < 10).all()
    np.testing.assert_allclose(ds.dw_model, ds.dw_closed_form, rtol=1e-9, atol=1e-12)
    assert "chi2" in capsys.readouterr().out
