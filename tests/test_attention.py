"""The attention (dual) form equals the scan (Primer Eqs. 15-22), and the Box 2 construction
(von Oswald et al. 2023) is exactly one step of gradient descent on linear regression."""

from __future__ import annotations

import pytest
import torch

from synaptic_fwp import attention_form, rules, scan
from synaptic_fwp.rules import get_feature_map
from synaptic_fwp.sequence.box2 import box2_predict, box2_tokens, box2_weights, gd_one_step

F64 = torch.float64
ATTN_RULES = ["hebbian", "retnet", "mamba2", "gated_rfa", "mlstm"]


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


def make(name: str, seed: int, shape=(2, 23, 3, 5, 4), zero_decay: bool = False):
    gen = torch.Generator().manual_seed(seed)
    B, T, H, K, V = shape
    q, k, v = (torch.randn(B, T, H, d, generator=gen, dtype=F64) for d in (K, K, V))
    rule = rules.get(name, decay=0.7) if name == "retnet" else rules.get(name)
    gates = {}
    if "eta" in rule.needs:
        gates["eta"] = torch.rand(B, T, H, generator=gen, dtype=F64)
    if "decay" in rule.needs and name != "retnet":
        lam = torch.rand(B, T, H, generator=gen, dtype=F64)
        if zero_decay:
            lam = torch.where(torch.rand(B, T, H, generator=gen, dtype=F64) < 0.2, 0.0, lam)
        gates["decay"] = lam
    return rule, q, k, v, gates


@pytest.mark.parametrize("name", ATTN_RULES)
@pytest.mark.parametrize("zero_decay", [False, True])
def test_attention_form_equals_scan(name, zero_decay):
    rule, q, k, v, gates = make(name, 1, zero_decay=zero_decay)
    y_att = attention_form(q, k, v, rule, **gates)
    y_rec, _ = scan(q, k, v, rule, backend="recurrent", **gates)
    y_chk, _ = scan(q, k, v, rule, backend="chunk", chunk_size=8, **gates)
    assert rel(y_att, y_rec) <= 1e-12
    assert rel(y_att, y_chk) <= 1e-12


@pytest.mark.parametrize("name", ATTN_RULES)
def test_normalised_attention_equals_recurrent_W_and_z(name):
    """Eqs. 19-22: y_t = W_t phi(q_t) / (z_t . phi(q_t)), z_t = lambda_t z_{t-1} + c_t phi(k_t),
    against an explicit loop over t (phi = ELU + 1)."""
    rule, q, k, v, gates = make(name, 2)
    y_att = attention_form(q, k, v, rule, normalize=True, phi="elu1", **gates)
    phi = get_feature_map("elu1")
    fq, fk = phi(q), phi(k)
    B, T, H, K = q.shape
    V = v.shape[-1]
    g = rule.resolve(q, **gates)
    lam = g["decay"] if g["decay"] is not None else torch.ones((), dtype=F64)
    lam = lam.expand(B, T, H)
    c = rule.write_coef(g)
    c = (c if isinstance(c, torch.Tensor) else torch.tensor(c, dtype=F64)).expand(B, T, H)
    W = torch.zeros(B, H, V, K, dtype=F64)
    z = torch.zeros(B, H, K, dtype=F64)
    ys = []
    for t in range(T):
        lt, ct = lam[:, t, :, None], c[:, t, :, None]
        W = lt[..., None] * W + ct[..., None] * v[:, t, :, :, None] * fk[:, t, :, None, :]
        z = lt * z + ct * fk[:, t]
        num = (W @ fq[:, t, :, :, None])[..., 0]
        ys.append(num / (z * fq[:, t]).sum(-1, keepdim=True))
    y_ref = torch.stack(ys, dim=1)
    assert rel(y_att, y_ref) <= 1e-12
    # the unnormalised form is W_t phi(q_t), i.e. the scan with phi = elu1
    y_scan, _ = scan(q, k, v, rule, phi="elu1", **gates)
    assert rel(attention_form(q, k, v, rule, phi="elu1", **gates), y_scan) <= 1e-12


@pytest.mark.parametrize("name", ["delta", "oja", "gla", "gla_table1", "gated_delta", "bcm"])
def test_attention_form_raises_for_rules_without_one(name):
    _, q, k, v, _ = make("hebbian", 0, shape=(1, 4, 1, 3, 3))
    with pytest.raises(ValueError, match="no attention form"):
        attention_form(q, k, v, name)


def test_attention_form_gradients_match_scan():
    rule, q, k, v, gates = make("mlstm", 3, shape=(1, 9, 2, 3, 2))
    grads = []
    for f in (lambda *a, **kw: attention_form(*a, **kw),
              lambda *a, **kw: scan(*a, backend="recurrent", **kw)[0]):
        xs = [t.clone().requires_grad_(True) for t in (q, k, v, gates["eta"], gates["decay"])]
        y = f(xs[0], xs[1], xs[2], rule, eta=xs[3], decay=xs[4])
        grads.append(torch.autograd.grad((y**3).sum(), xs))
    for a, b in zip(*grads, strict=True):
        assert rel(a, b) <= 1e-10


# ---------------------------------------------------------------- Box 2
def regression(seed: int, B=3, T=17, d_x=4, d_y=3, Q=6):
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(B, T, d_x, generator=gen, dtype=F64)
    A = torch.randn(B, d_y, d_x, generator=gen, dtype=F64)
    fz = torch.einsum("byx,btx->bty", A, z) + 0.1 * torch.randn(B, T, d_y, generator=gen,
                                                                  dtype=F64)
    zq = torch.randn(B, Q, d_x, generator=gen, dtype=F64)
    return z, fz, zq, gen


@pytest.mark.parametrize("backend", ["recurrent", "chunk"])
@pytest.mark.parametrize("eta", [1.0, 0.05])
@pytest.mark.parametrize("batched_W0", [False, True])
def test_box2_fwp_is_one_gd_step(backend, eta, batched_W0):
    """The vanilla FWP with Eq. 26's slow weights predicts (W0 - eta grad L(W0)) z* exactly."""
    z, fz, zq, gen = regression(4)
    B, _, d_x = z.shape
    d_y = fz.shape[-1]
    shape = (B, d_y, d_x) if batched_W0 else (d_y, d_x)
    W0 = 0.5 * torch.randn(*shape, generator=gen, dtype=F64)
    pred = box2_predict(z, fz, zq, W0, eta=eta, backend=backend)
    # reference: gradient of L(W) = 1/2 sum_t ||f(z_t) - W z_t||^2 at W0, by autograd
    W = W0.expand(B, d_y, d_x).clone().requires_grad_(True)
    L = 0.5 * ((fz - torch.einsum("byx,btx->bty", W, z)) ** 2).sum()
    (grad,) = torch.autograd.grad(L, W)
    W1 = W0 - eta * grad
    ref = torch.einsum("byx,bqx->bqy", W1, zq)
    assert pred.shape == (B, zq.shape[1], d_y)
    assert rel(pred, ref) <= 1e-12
    assert rel(gd_one_step(z, fz, W0, eta), W1.detach()) <= 1e-12


def test_box2_every_step_is_gd_on_the_data_so_far():
    """Eqs. 29-30: after demonstration t, W_t = [[0, 0], [-Delta W_t, 0]] and the target slot of
    y_t is -Delta W_t z_t, with Delta W_t the GD step on the first t points."""
    z, fz, _, gen = regression(5, B=2, T=9, d_x=3, d_y=2, Q=1)
    W0 = torch.randn(2, 3, generator=gen, dtype=F64)
    eta = 0.3
    w = box2_weights(W0, eta)
    x = torch.cat([z, fz], -1)
    q = (x @ w.WQ.T).unsqueeze(2)
    k = (x @ w.WK.T).unsqueeze(2)
    v = (x @ w.WV.T).unsqueeze(2)
    y, _, states = scan(q, k, v, "hebbian", return_states=True, backend="recurrent")
    for t in range(z.shape[1]):
        dW = gd_one_step(z[:, : t + 1], fz[:, : t + 1], W0, eta) - W0
        Wt = states[:, t, 0]
        assert rel(Wt[:, 3:, :3], -dW) <= 1e-12
        assert Wt[:, :3].abs().max() == 0 and Wt[:, 3:, 3:].abs().max() == 0
        assert rel(-y[:, t, 0, 3:], torch.einsum("byx,bx->by", dW, z[:, t])) <= 1e-12


def test_box2_queries_write_nothing_and_errors():
    z, fz, zq, gen = regression(6, B=1, T=5, d_x=2, d_y=2, Q=3)
    W0 = torch.randn(2, 2, generator=gen, dtype=F64)
    x = box2_tokens(z, fz, zq, W0)
    assert x.shape == (1, 8, 4)
    w = box2_weights(W0)
    assert (x[:, 5:] @ w.WV.T).abs().max() < 1e-14  # v* = W0 z* - W0 z* = 0
    with pytest.raises(ValueError, match="z_query"):
        box2_predict(z, fz, zq[..., :1], W0)
    with pytest.raises(ValueError, match="W0"):
        box2_predict(z, fz, zq, torch.zeros(3, 2, dtype=F64))
    with pytest.raises(ValueError, match="eta"):
        box2_weights(W0, eta=-1.0)
    # W0 omitted: zero initialisation, the Primer's "small W0" case
    ref = torch.einsum("byx,bqx->bqy", gd_one_step(z, fz), zq)
    assert rel(box2_predict(z, fz, zq), ref) < 1e-12
