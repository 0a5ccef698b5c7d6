"""Every rule of the catalogue: step == one gradient step on its Table 1 local loss (autograd,
float64), and transition (Eq. 31) reproduces step."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from synaptic_fwp import rules
from synaptic_fwp.rules import BCMRule, LinearRule

LINEAR = [n for n in rules.names() if isinstance(rules.get(n), LinearRule)]


def _inputs(rule, shape, V, K, seed):
    g = torch.Generator().manual_seed(seed)
    d = torch.float64
    W = torch.randn(*shape, V, K, generator=g, dtype=d)
    k = torch.randn(*shape, K, generator=g, dtype=d) / K**0.5
    v = torch.randn(*shape, V, generator=g, dtype=d)
    gates = {}
    if "eta" in rule.needs:
        gates["eta"] = torch.rand(*shape, generator=g, dtype=d) * 1.5 + 0.1
    if "decay" in rule.needs:
        gates["decay"] = torch.rand(*shape, generator=g, dtype=d) * 0.8 + 0.1
    if "gate" in rule.needs:
        n = V if rule.decay == "post" else K
        gates["gate"] = torch.rand(*shape, n, generator=g, dtype=d) * 0.8 + 0.1
    return W, k, v, gates


def _gd_step(rule, W, k, v, gates):
    Wg = W.clone().requires_grad_(True)
    loss = rule.local_loss(Wg, k, v, **gates).sum()
    (grad,) = torch.autograd.grad(loss, Wg)
    lr = gates["eta"] if rule.correction != "none" else torch.ones(W.shape[:-2], dtype=W.dtype)
    return W - lr[..., None, None] * grad


@settings(max_examples=12, deadline=None)
@given(
    name=st.sampled_from(LINEAR),
    B=st.integers(1, 3),
    H=st.integers(1, 3),
    V=st.integers(1, 6),
    K=st.integers(1, 6),
    seed=st.integers(0, 2**16),
)
def test_step_is_gradient_step_on_local_loss(name, B, H, V, K, seed):
    rule = rules.get(name)
    W, k, v, gates = _inputs(rule, (B, H), V, K, seed)
    expected = _gd_step(rule, W, k, v, gates)
    got = rule.step(W, k, v, **gates)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", LINEAR)
@pytest.mark.parametrize("VK", [(3, 5), (4, 4), (6, 2)])
def test_every_linear_rule_gradient_and_transition(name, VK):
    V, K = VK
    rule = rules.get(name)
    W, k, v, gates = _inputs(rule, (2, 3), V, K, seed=hash((name, VK)) % 1000)
    new = rule.step(W, k, v, **gates)
    torch.testing.assert_close(new, _gd_step(rule, W, k, v, gates), rtol=1e-12, atol=1e-12)
    A, B, C = rule.transition(k, v, **gates)
    assert A.shape[-2:] == (K, K) and B.shape[-2:] == (V, V) and C.shape[-2:] == (V, K)
    torch.testing.assert_close(B @ W @ A + C, new, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", LINEAR)
def test_step_in_place_equals_step(name):
    """``step(..., out=W)`` (the engine's in-place update of a large state) gives exactly the
    new state of ``step``, for every rule (the decay-first variants read the decayed state)."""
    rule = rules.get(name)
    W, k, v, gates = _inputs(rule, (2, 3), 4, 5, seed=3)
    new = rule.step(W, k, v, **gates)
    W2 = W.clone()
    got = rule.step(W2, k, v, **gates, out=W2)
    assert got is W2 and torch.equal(got, new)
    other = torch.empty_like(W)
    assert torch.equal(rule.step(W, k, v, **gates, out=other), new)


def test_step_differs_between_rules():
    """The catalogue is not one rule under many names: on the same inputs the updates differ.
    RetNet and Mamba2 share one step (lambda W + v k^T); they differ only in whether lambda is
    constant in time, which `scan` sees (retnet takes a constant decay)."""
    outs = {}
    for name in LINEAR:
        rule = rules.get(name)
        W, k, v, gates = _inputs(rule, (2,), 4, 4, seed=3)
        if "gate" in rule.needs:  # same numbers for both GLA forms: a square gate
            gates["gate"] = torch.linspace(0.2, 0.9, 4, dtype=torch.float64).expand(2, 4)
        outs[name] = rule.step(W, k, v, **gates)
    names = list(outs)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            if {a, b} == {"mamba2", "retnet"}:
                torch.testing.assert_close(outs[a], outs[b])
            else:
                assert not torch.allclose(outs[a], outs[b]), (a, b)


def test_published_variants_differ_from_table1_as_documented():
    d = torch.float64
    W = torch.randn(3, 4, dtype=d)
    k = torch.randn(4, dtype=d)
    v = torch.randn(3, dtype=d)
    lam, eta = torch.tensor(0.7, dtype=d), torch.tensor(0.4, dtype=d)
    pub = rules.get("gated_delta").step(W, k, v, eta=eta, decay=lam)
    tab = rules.get("gated_delta_table1").step(W, k, v, eta=eta, decay=lam)
    Wd = lam * W
    torch.testing.assert_close(pub, Wd + eta * torch.outer(v - Wd @ k, k))
    torch.testing.assert_close(tab, lam * W + eta * torch.outer(v - W @ k, k))
    a_k = torch.rand(4, dtype=d)
    a_v = torch.rand(3, dtype=d)
    torch.testing.assert_close(
        rules.get("gla").step(W, k, v, gate=a_k), W * a_k[None, :] + torch.outer(v, k)
    )
    torch.testing.assert_close(
        rules.get("gla_table1").step(W, k, v, gate=a_v), a_v[:, None] * W + torch.outer(v, k)
    )


def test_box3_delta_preserves_a_repeated_pair_hebbian_doubles_it():
    d = torch.float64
    k = torch.tensor([0.0, 1.0, 0.0], dtype=d)
    v = torch.tensor([2.0, -1.0], dtype=d)
    W0 = torch.zeros(2, 3, dtype=d)
    heb, delta = rules.get("hebbian"), rules.get("delta")
    W_h = heb.step(heb.step(W0, k, v), k, v)
    W_d = delta.step(delta.step(W0, k, v, eta=1.0), k, v, eta=1.0)
    torch.testing.assert_close(W_h @ k, 2 * v)
    torch.testing.assert_close(W_d @ k, v)


@pytest.mark.parametrize("drive", ["value", "output"])
def test_bcm_step_is_gradient_step_and_threshold_tracks_y2(drive):
    rule = rules.get("bcm", drive=drive, theta_decay=0.9)
    assert isinstance(rule, BCMRule)
    d = torch.float64
    g = torch.Generator().manual_seed(1)
    W = torch.randn(2, 3, 4, generator=g, dtype=d)
    k = torch.randn(2, 4, generator=g, dtype=d)
    v = torch.randn(2, 3, generator=g, dtype=d)
    theta = torch.rand(2, 3, generator=g, dtype=d)
    eta = torch.tensor([0.3, 0.05], dtype=d)
    Wg = W.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(rule.local_loss(Wg, k, v, theta=theta).sum(), Wg)
    torch.testing.assert_close(
        rule.step(W, k, v, theta=theta, eta=eta), W - eta[:, None, None] * grad
    )
    y = rule.post(W, k, v)
    expected = W + eta[:, None, None] * (y * (y - theta))[..., None] * k[:, None, :]
    torch.testing.assert_close(rule.step(W, k, v, theta=theta, eta=eta), expected)
    # sliding threshold: a constant y gives theta -> y^2
    th = torch.zeros(3, dtype=d)
    yc = torch.tensor([1.0, 2.0, 3.0], dtype=d)
    for _ in range(300):
        th = rule.update_threshold(th, yc)
    torch.testing.assert_close(th, yc**2)
    if drive == "value":
        A, B, C = rule.transition(k, v, theta=theta, eta=eta)
        torch.testing.assert_close(B @ W @ A + C, rule.step(W, k, v, theta=theta, eta=eta))
    else:
        with pytest.raises(ValueError, match="drive='output'"):
            rule.transition(k, v, theta=theta, eta=eta)


def test_psi_2sigmoid_range_gives_negative_eigenvalues():
    eta = rules.psi_2sigmoid(torch.tensor([-20.0, 0.0, 20.0], dtype=torch.float64))
    assert 0 < eta[0] < 1e-8 and eta[1] == 1.0 and 2 - 1e-8 < eta[2] < 2
    k = torch.tensor([1.0, 0.0], dtype=torch.float64)
    A, _, _ = rules.get("delta").transition(k, torch.zeros(2, dtype=torch.float64), eta=1.8)
    ev = torch.linalg.eigvalsh(A)
    torch.testing.assert_close(ev.min(), torch.tensor(-0.8, dtype=torch.float64))


def test_feature_maps():
    x = torch.randn(5, 7, dtype=torch.float64)
    fm = rules.FEATURE_MAPS
    assert set(fm) == {"identity", "elu1", "relu", "silu_l2"}
    assert (fm["elu1"](x) > 0).all()
    torch.testing.assert_close(
        fm["silu_l2"](x).norm(dim=-1), torch.ones(5, dtype=torch.float64), atol=1e-5, rtol=0
    )
    with pytest.raises(ValueError, match="phi must be one of"):
        rules.get_feature_map("tanh")


def test_get_errors():
    with pytest.raises(ValueError, match="unknown rule 'hebb'"):
        rules.get("hebb")
    with pytest.raises(TypeError, match="rule must be"):
        rules.get(3)
    with pytest.raises(ValueError, match="decay must be a number in"):
        rules.get("retnet", decay=1.5)
    with pytest.raises(ValueError, match="unknown parameter"):
        rules.get("delta", decay=0.5)
    with pytest.raises(ValueError, match="unknown parameter"):
        rules.get("bcm", tau=3)
    r = rules.get("retnet", decay=0.9)
    assert r.constant_decay == 0.9
