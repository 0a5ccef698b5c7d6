"""BCM selectivity study at reduced size."""

from __future__ import annotations

from synaptic_fwp.analyses import bcm_selectivity as study
from synaptic_fwp.analyses._study import write_outputs


def test_bcm_selectivity_quick(tmp_path):
    ds = study.run(quick=True)
    start = float(ds.selectivity.isel(time=0).mean())
    end = float(ds.final_selectivity.mean())
    assert start < 0.2 and end > 0.55  # neurons become selective (max 0.75 for 4 patterns)
    assert abs(float(ds.threshold_tracking_error.mean())) < 0.1  # theta tracks E[y^2]
    sel = ds.final_selectivity.values > 0.6
    winner = float(ds.winner_response.values[sel].mean())
    assert abs(winner - ds.attrs["fixed_point_theory"]) < 0.2 * ds.attrs["fixed_point_theory"]
    paths = write_outputs(ds, study.figure(ds), tmp_path, study.NAME)
    assert all(p.stat().st_size > 0 for p in paths)
