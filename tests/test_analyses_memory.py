"""Memory-capacity study at reduced size."""

from __future__ import annotations

import numpy as np
from synaptic_fwp.analyses import memory_capacity as study
from synaptic_fwp.analyses._study import write_outputs


def test_memory_capacity_quick(tmp_path):
    ds = study.run(quick=True)
    half = ds.recall_error.sel(load_ratio=0.5)
    assert float(half.sel(rule="delta")) < float(half.sel(rule="hebbian"))  # delta beats hebbian
    theory = float(ds.hebbian_theory.sel(load_ratio=0.5))
    assert abs(float(half.sel(rule="hebbian")) - theory) < 0.3 * theory
    box = ds.box3_error
    assert float(box.sel(box3_rule="hebbian")[1]) > 2 * float(box.sel(box3_rule="hebbian")[0])
    assert float(box.sel(box3_rule="delta")[1]) < 1e-10
    np.testing.assert_allclose(ds.box3_onehot_gain.values, [2.0, 1.0])
    g = ds.forgetting_gain.sel(forget_rule="retnet_0.9").values
    np.testing.assert_allclose(g[:10], 0.9 ** np.arange(10), atol=0.25)
    gd = ds.forgetting_gain.sel(forget_rule="delta").values
    np.testing.assert_allclose(gd, ds.forgetting_theory_delta.values, atol=0.25)
    paths = write_outputs(ds, study.figure(ds), tmp_path, study.NAME)
    assert all(p.stat().st_size > 0 for p in paths)
