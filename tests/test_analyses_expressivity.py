"""Expressivity study at reduced size (parity, T = 16, 150 steps, one seed)."""

from __future__ import annotations

from synaptic_fwp.analyses import expressivity as study
from synaptic_fwp.analyses._study import write_outputs


def test_parity_delta_negative_eigenvalues_solve_diagonal_rules_do_not(tmp_path):
    ds = study.run(quick=True)
    acc = ds.acc_last.sel(task="parity")
    assert float(acc.sel(model="delta (0,2)")) >= 0.95
    for m in (*study.DIAGONAL, "delta (0,1)"):
        assert float(acc.sel(model=m)) <= 0.60, m
    paths = write_outputs(ds, study.figure(ds), tmp_path, study.NAME)
    assert all(p.stat().st_size > 0 for p in paths)
