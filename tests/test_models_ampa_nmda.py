"""Sec. 4.1: the AMPA/NMDA circuit is the FWP with W^V = U W^Q and W^Q = W^K."""

from __future__ import annotations

import pytest
import torch
from synaptic_fwp.models.ampa_nmda import VARIANTS, AMPANMDACircuit


def _setup(seed=0):
    g = torch.Generator().manual_seed(seed)
    W_Q = torch.randn(5, 4, generator=g, dtype=torch.float64) / 2
    U = torch.randn(3, 5, generator=g, dtype=torch.float64) / 2
    x = torch.randn(2, 12, 4, generator=g, dtype=torch.float64) / 2
    W0 = torch.randn(2, 3, 5, generator=g, dtype=torch.float64) / 5
    return W_Q, U, x, W0


@pytest.mark.parametrize("rule", list(VARIANTS))
@pytest.mark.parametrize("backend", ["recurrent", "chunk"])
def test_circuit_is_the_fwp(rule, backend):
    W_Q, U, x, W0 = _setup()
    c = AMPANMDACircuit(W_Q, U, rule=rule, eta=0.3, tau_decay=0.05, dt=0.01)
    sim = c.simulate(x, W0)
    y, W = c.run_fwp(x, W0, backend=backend)
    assert torch.allclose(sim["y"], y, atol=1e-10)
    assert torch.allclose(sim["W"], W, atol=1e-10)
    WQ, WK, WV = c.as_fwp()
    assert torch.equal(WQ, WK) and torch.allclose(WV, U @ W_Q)
    # calcium is the NMDA drive U q
    assert torch.allclose(sim["v"], sim["q"] @ U.T)


def test_mg_block_is_voltage_dependent_and_not_an_fwp():
    W_Q, U, x, W0 = _setup()
    lin = AMPANMDACircuit(W_Q, U, nmda="linear").simulate(x, W0)
    mg = AMPANMDACircuit(W_Q, U, nmda="mg_block", mg=1.0).simulate(x, W0)
    ratio = mg["v"] / lin["v"]
    assert (ratio > 0).all() and (ratio < 1).all()  # Mg2+ block at rest
    assert ratio.std() > 1e-4  # depends on the AMPA depolarisation
    no_mg = AMPANMDACircuit(W_Q, U, nmda="mg_block", mg=0.0).simulate(x, W0)
    assert torch.allclose(no_mg["y"], lin["y"])
    with pytest.raises(ValueError, match="not an FWP"):
        AMPANMDACircuit(W_Q, U, nmda="mg_block").run_fwp(x)


def test_bad_inputs():
    W_Q, U, x, _ = _setup()
    with pytest.raises(ValueError, match="rule"):
        AMPANMDACircuit(W_Q, U, rule="oja")
    with pytest.raises(ValueError, match="n_pre"):
        AMPANMDACircuit(W_Q, U.T)
