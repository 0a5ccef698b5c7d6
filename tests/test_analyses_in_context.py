"""In-context regression at reduced size: Box 2 is exact; a trained FWP approaches it."""

from __future__ import annotations

from synaptic_fwp.analyses import in_context_regression as study
from synaptic_fwp.analyses._study import write_outputs


def test_in_context_regression_quick(tmp_path):
    ds = study.run(quick=True)
    assert ds.attrs["box2_max_abs_error"] < 1e-10  # the construction is one GD step
    assert ds.attrs["fwp_vs_gd_relative_sq_distance"] < 0.05  # meta-training approaches it
    mse = ds.test_mse
    assert float(mse.sel(predictor="fwp_trained")) < 0.5 * float(mse.sel(predictor="zero"))
    paths = write_outputs(ds, study.figure(ds), tmp_path, study.NAME)
    assert all(p.stat().st_size > 0 for p in paths)
