"""The BTSP place-field study at reduced size: the claim and its outputs."""

from __future__ import annotations

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
    paths = write_outputs(ds, study.figure(ds), tmp_path, study.NAME)
    assert all(p.stat().st_size > 0 for p in paths)
