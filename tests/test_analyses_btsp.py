"""The BTSP place-field study at reduced size: the claim and its outputs."""

from __future__ import annotations

import pytest
from synaptic_fwp.analyses import btsp_place_fields as study
from synaptic_fwp.analyses._study import write_outputs


def test_btsp_place_fields_quick(tmp_path):
    ds = study.run(quick=True)
    mil = ds.sel(rule="milstein")
    assert float(mil.peak_shift.sel(lap=1)) < 0  # the field peaks before the plateau
    assert float(mil.kernel_asymmetry) > 1  # the kernel reaches further back than forward
    assert float(mil.translocation_depression.min()) < -1e-3  # old field depressed (> 1 mV)
    assert float(ds.sel(rule="primer").translocation_depression.min()) >= 0  # adds only
    # the target ramp is measured like the model's: its 15 % width is not the table's 160 cm
    assert ds.attrs["target_ramp_width_SI"] == 1.6
    assert 1.0 < ds.attrs["target_ramp_width_15pct_m"] < 1.06
    assert float(ds.target_ramp.max()) == ds.attrs["target_peak_val_1_SI"]
    # with the fits' ramp calibration, one lap makes the 8 mV field; three laps settle at the
    # rule's fixed point, about 7.2 mV (the published parameters' own result; see the docstring)
    assert ds.attrs["ramp_scale_V_per_Hz"] == pytest.approx(3.318e-6, rel=2e-3)
    assert 7.8e-3 < float(mil.peak_val.sel(lap=1)) < 8.4e-3
    assert 6.9e-3 < float(mil.peak_val.sel(lap=3)) < 7.5e-3
    assert float(mil.ramp_peak_raw.sel(lap=3)) < float(mil.peak_val.sel(lap=3))  # baseline < 0
    assert ds.attrs["target_ramp_area_width_m"] == pytest.approx(0.663, abs=0.005)
    # the fit's own second induction: the old field is depressed by about the target's 5 mV
    fit = ds.fit_translocation_delta_ramp.sel(rule="milstein")
    assert abs(float(fit.min()) - float(ds.fit_translocation_target.min())) < 0.5e-3
    assert 5e-3 < float(fit.max()) < float(ds.fit_translocation_target.max())
    paths = write_outputs(ds, study.figure(ds), tmp_path, study.NAME)
    assert all(p.stat().st_size > 0 for p in paths)
