"""FWP sequence layer: equals a hand-written recurrence, trains by backprop, checks inputs."""

from __future__ import annotations

import pytest
import torch
from synaptic_fwp.models.fwp_layer import FWPClassifier, FWPLayer

from synaptic_fwp.rules import get, get_feature_map


@pytest.mark.parametrize("rule", ["delta", "mamba2", "gla", "retnet", "hebbian"])
def test_layer_matches_manual_recurrence(rule):
    torch.manual_seed(0)
    layer = FWPLayer(6, n_heads=2, d_key=3, d_value=4, rule=rule).double()
    x = torch.randn(2, 5, 6, dtype=torch.float64)
    out = layer(x)
    B, T, H, K, V = 2, 5, 2, 3, 4
    phi = get_feature_map("silu_l2")
    q = phi(layer.q(x).reshape(B, T, H, K))
    k = phi(layer.k(x).reshape(B, T, H, K))
    v = layer.v(x).reshape(B, T, H, V)
    g = layer.gates(x)
    r = get(rule)
    W = torch.zeros(B, H, V, K, dtype=torch.float64)
    ys = []
    for t in range(T):
        W = r.step(W, k[:, t], v[:, t], **{n: x_[:, t] for n, x_ in g.items()})
        ys.append((W @ q[:, t].unsqueeze(-1)).squeeze(-1))
    ref = layer.o(torch.stack(ys, 1).reshape(B, T, H * V))
    assert torch.allclose(out, ref, atol=1e-10)


@pytest.mark.parametrize("rule", ["delta", "gated_delta", "gla", "hebbian"])
def test_default_backend_equals_the_recurrence_with_gradients(rule):
    """The default backend ('auto': chunk-wise at T >= 32) gives the recurrence's outputs and
    slow-weight gradients."""
    torch.manual_seed(0)
    layer = FWPLayer(6, n_heads=2, d_key=3, d_value=4, rule=rule).double()
    assert layer.backend == "auto"
    x = torch.randn(2, 70, 6, dtype=torch.float64)
    res = []
    for backend in ("auto", "recurrent"):
        layer.backend = backend
        layer.zero_grad()
        out = layer(x)
        out.square().sum().backward()
        res.append((out.detach(), [p.grad.clone() for p in layer.parameters()]))
    torch.testing.assert_close(res[0][0], res[1][0], rtol=1e-10, atol=1e-12)
    for a, b in zip(res[0][1], res[1][1], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)


def test_eta_ranges():
    torch.manual_seed(0)  # (1, 3, 4) inputs once left every eta below 1, after other tests' draws
    layer = FWPLayer(4, rule="delta", eta_range="(0,2)")
    x = torch.randn(4, 50, 4) * 3  # not so large that float32 sigmoids round to 1
    eta = layer.gates(x)["eta"]
    assert (eta > 0).all() and (eta < 2).all() and (eta > 1).any()
    layer1 = FWPLayer(4, rule="delta", eta_range="(0,1)")
    assert (layer1.gates(x)["eta"] < 1).all()


def test_classifier_trains_and_gradients_reach_slow_weights():
    torch.manual_seed(0)
    net = FWPClassifier(2, 2, d_model=8, micro_steps=2, rule="delta").double()
    x = torch.randint(0, 2, (4, 6))
    loss = net(x).logsumexp(-1).mean()
    loss.backward()
    for name in ("layer.q.weight", "layer.k.weight", "layer.v.weight", "layer.beta.weight"):
        p = dict(net.named_parameters())[name]
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_bad_inputs():
    with pytest.raises(ValueError, match="eta_range"):
        FWPLayer(4, eta_range="(0,3)")
    with pytest.raises(ValueError, match="bcm"):
        FWPLayer(4, rule="bcm")
    net = FWPClassifier(2, 2, d_model=4)
    with pytest.raises(ValueError, match="tokens"):
        net(torch.tensor([[0, 2]]))
    with pytest.raises(TypeError, match="integer"):
        net(torch.zeros(1, 3))
