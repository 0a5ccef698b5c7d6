"""The E/I balance study at reduced size: inhibitory STDP sets the rate and co-tunes inhibition
with excitation (Vogels et al. 2011)."""

from __future__ import annotations

import numpy as np
from synaptic_fwp.analyses import ei_balance as study
from synaptic_fwp.analyses._study import write_outputs


def test_ei_balance_quick(tmp_path):
    ds = study.run(quick=True)
    rho0 = ds.attrs["rho0_Hz"]
    assert float(ds.rate.isel(time=0).min()) > 4 * rho0  # before inhibition has grown
    assert float(ds.rate_static.mean()) > 8 * rho0  # without the rule, no balance
    late = float(ds.rate.isel(time=slice(5, None)).mean())
    assert 0.5 * rho0 < late < 1.6 * rho0, late  # the rule sets the rate to rho0
    end = ds.balance.isel(t_w=-1).values
    assert (end > 0.8).all(), end  # inhibition co-tuned with the excitatory tuning
    assert np.isnan(ds.balance.isel(t_w=0)).all()  # flat at the start: no tuning to correlate
    paths = write_outputs(ds, study.figure(ds), tmp_path, study.NAME)
    assert all(p.stat().st_size > 0 for p in paths)
    assert "target 5 Hz" in study.summary(ds)
