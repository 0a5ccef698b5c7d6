"""BCM neuron: same recurrence as scan(rule='bcm', drive='output'); selectivity measure."""

from __future__ import annotations

import pytest
import torch
from synaptic_fwp.models.bcm_neuron import BCMNeuron, selectivity

from synaptic_fwp import rules, scan


def test_bcm_neuron_equals_scan():
    g = torch.Generator().manual_seed(0)
    pats = torch.rand(3, 5, generator=g, dtype=torch.float64)
    w0 = torch.rand(2, 5, generator=g, dtype=torch.float64)
    order = torch.randint(0, 3, (2, 40), generator=g)
    out = BCMNeuron(eta=0.01, theta_decay=0.9).run(pats, w0, order)
    x = pats[order].unsqueeze(2)  # (B, T, 1, n_in)
    rule = rules.get("bcm", theta_decay=0.9, drive="output")
    v = torch.zeros(2, 40, 1, 1, dtype=torch.float64)
    _, W = scan(x, x, v, rule, eta=0.01, initial_state=w0.reshape(2, 1, 1, 5), backend="recurrent")
    assert torch.allclose(W.reshape(2, 5), out["w"][:, -1], atol=1e-12)


def test_selectivity_bounds():
    assert selectivity(torch.tensor([1.0, 1.0, 1.0, 1.0])) == pytest.approx(0.0)
    assert selectivity(torch.tensor([4.0, 0.0, 0.0, 0.0])) == pytest.approx(0.75)


def test_bad_inputs():
    with pytest.raises(ValueError, match="theta_decay"):
        BCMNeuron(theta_decay=1.5)
    n = BCMNeuron()
    with pytest.raises(ValueError, match="order"):
        n.run(torch.rand(2, 3), torch.rand(1, 3), torch.tensor([[0, 2]]))
