"""Rule zoo at reduced size: Table 1's local losses and Eq. 31 transitions hold for every rule."""

from __future__ import annotations

import numpy as np
from synaptic_fwp.analyses import rule_zoo as study
from synaptic_fwp.analyses._study import write_outputs

from synaptic_fwp import rules


def test_rule_zoo_quick(tmp_path):
    ds = study.run(quick=True)
    assert set(rules.names()) <= set(ds.rule.values)
    assert float(ds.local_loss_error.max()) < 1e-10  # one gradient step on the local loss
    assert float(ds.transition_error.max()) < 1e-10  # B W A + C equals the update
    assert float(ds.eig_min.sel(rule="delta, eta in (0,2)")) < 0  # negative eigenvalues
    assert float(ds.eig_min.sel(rule="delta")) >= 0
    np.testing.assert_allclose(ds.eig_real.sel(rule="hebbian"), 1.0)
    for r in ("retnet", "mamba2", "gla", "gla_table1", "mlstm", "gated_rfa"):
        assert float(ds.eig_min.sel(rule=r)) > 0 and float(ds.eig_max.sel(rule=r)) <= 1
    assert "| delta |" in study.table(ds)
    paths = write_outputs(ds, study.figure(ds), tmp_path, study.NAME)
    assert all(p.stat().st_size > 0 for p in paths)
