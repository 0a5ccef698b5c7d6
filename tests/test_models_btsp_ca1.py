"""CA3 -> CA1 BTSP model: ramp read-out and the Primer form's calibration."""

from __future__ import annotations

import pytest
import torch
from synaptic_fwp.models.btsp_ca1 import CA3CA1, calibrated_primer

from synaptic_fwp.protocols.btsp import TrackConfig


def test_calibrated_primer_matches_milstein_one_lap_peak():
    m = CA3CA1("milstein", dt=0.05)
    p = CA3CA1(calibrated_primer(dt=0.05), dt=0.05)
    dm = m.induce([0.935]).delta_weight.max()
    dp = p.induce([0.935]).delta_weight.max()
    assert float(dp) == pytest.approx(float(dm), rel=1e-9)


def test_ramp_is_weighted_sum_of_inputs():
    m = CA3CA1("milstein", track=TrackConfig(n_inputs=50), dt=0.05)
    W = torch.ones(50, dtype=torch.float64)
    x = torch.linspace(0, 1.87, 7, dtype=torch.float64)
    assert torch.allclose(m.ramp(W, x), torch.zeros(7, dtype=torch.float64))
    W[10] = 2.0
    assert torch.allclose(m.ramp(W, x), m.scale * m.rates(x)[10])
    with pytest.raises(ValueError, match="rule must be"):
        CA3CA1("stdp")
