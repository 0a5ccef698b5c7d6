"""The oracle scan: semantics (Eq. 14 read-out after the write), strided states, BCM's sliding
threshold, autograd, thread-setting hygiene, and clear errors for bad input."""

from __future__ import annotations

import re

import pytest
import torch

import synaptic_fwp as sf
from synaptic_fwp import rules

D = torch.float64


def _qkv(B=2, T=7, H=3, K=4, V=5, seed=0, dtype=D):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(B, T, H, K, generator=g, dtype=dtype)
    k = torch.randn(B, T, H, K, generator=g, dtype=dtype) / K**0.5
    v = torch.randn(B, T, H, V, generator=g, dtype=dtype)
    return q, k, v


def test_recurrent_matches_handwritten_loop_gated_delta():
    q, k, v = _qkv()
    B, T, H, K = k.shape
    V = v.shape[-1]
    eta = torch.rand(B, T, H, dtype=D)
    lam = torch.rand(B, T, H, dtype=D)
    W0 = torch.randn(B, H, V, K, dtype=D)
    y, WT = sf.scan(q, k, v, "gated_delta", eta=eta, decay=lam, initial_state=W0,
                    backend="recurrent")
    W = W0.clone()
    for t in range(T):
        for b in range(B):
            for h in range(H):
                Wd = lam[b, t, h] * W[b, h]
                W[b, h] = Wd + eta[b, t, h] * torch.outer(v[b, t, h] - Wd @ k[b, t, h], k[b, t, h])
                torch.testing.assert_close(y[b, t, h], W[b, h] @ q[b, t, h])
    torch.testing.assert_close(WT, W)


def test_hebbian_scan_is_sum_of_outer_products():
    q, k, v = _qkv(T=6)
    y, W = sf.scan(q, k, v, "hebbian", backend="recurrent")
    torch.testing.assert_close(W, torch.einsum("bthv,bthk->bhvk", v, k))
    Wt = torch.cumsum(torch.einsum("bthv,bthk->bthvk", v, k), dim=1)
    torch.testing.assert_close(y, torch.einsum("bthvk,bthk->bthv", Wt, q))


@pytest.mark.parametrize("stride", [1, 2, 3, 10])
def test_strided_states(stride):
    q, k, v = _qkv(T=7)
    y, W, states = sf.scan(q, k, v, "delta", eta=0.5, backend="recurrent",
                           return_states=stride)
    _, _, every = sf.scan(q, k, v, "delta", eta=0.5, backend="recurrent", return_states=True)
    assert every.shape == (2, 7, 3, 5, 4)
    torch.testing.assert_close(states, every[:, stride - 1 :: stride])
    torch.testing.assert_close(every[:, -1], W)


def test_retnet_constant_decay_from_rule_or_scan():
    q, k, v = _qkv()
    y1, W1 = sf.scan(q, k, v, rules.get("retnet", decay=0.8), backend="recurrent")
    y2, W2 = sf.scan(q, k, v, "retnet", decay=0.8, backend="recurrent")
    y3, W3 = sf.scan(q, k, v, "mamba2", decay=torch.full((2, 7, 3), 0.8, dtype=D),
                     backend="recurrent")
    torch.testing.assert_close(y1, y2)
    torch.testing.assert_close(y1, y3)
    torch.testing.assert_close(W1, W3)


def test_bcm_scan_tracks_threshold():
    q, k, v = _qkv(T=5, H=1, K=3, V=2)
    rule = rules.get("bcm", theta_decay=0.5, theta0=0.2)
    y, W = sf.scan(q, k, v, rule, eta=0.1, backend="recurrent")
    Wm = torch.zeros(2, 1, 2, 3, dtype=D)
    theta = torch.full((2, 1, 2), 0.2, dtype=D)
    for t in range(5):
        theta = 0.5 * theta + 0.5 * v[:, t] ** 2
        Wm = Wm + 0.1 * (v[:, t] * (v[:, t] - theta))[..., None] * k[:, t, :, None, :]
    torch.testing.assert_close(W, Wm)


def test_autograd_flows_to_inputs_and_gates():
    q, k, v = _qkv(T=5)
    q.requires_grad_(True)
    k.requires_grad_(True)
    v.requires_grad_(True)
    beta = torch.zeros(2, 5, 3, dtype=D, requires_grad=True)
    y, W = sf.scan(q, k, v, "delta", eta=rules.psi_2sigmoid(beta), backend="recurrent")
    (y.sum() + W.square().sum()).backward()
    for t in (q, k, v, beta):
        assert t.grad is not None and torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0


def test_instance_independence_and_determinism():
    q, k, v = _qkv(B=4)
    y, W = sf.scan(q, k, v, "gated_delta", eta=0.3, decay=0.9, backend="recurrent")
    y1, W1 = sf.scan(q[2:3], k[2:3], v[2:3], "gated_delta", eta=0.3, decay=0.9,
                     backend="recurrent")
    assert torch.equal(y[2:3], y1) and torch.equal(W[2:3], W1)


def test_thread_setting_is_restored():
    before = torch.get_num_threads()
    q, k, v = _qkv()
    sf.scan(q, k, v, "delta", backend="recurrent")
    assert torch.get_num_threads() == before


def test_feature_map_applied_to_q_and_k():
    q, k, v = _qkv()
    f = rules.FEATURE_MAPS["silu_l2"]
    y1, W1 = sf.scan(q, k, v, "delta", phi="silu_l2", backend="recurrent")
    y2, W2 = sf.scan(f(q), f(k), v, "delta", backend="recurrent")
    torch.testing.assert_close(y1, y2)
    torch.testing.assert_close(W1, W2)


# ----------------------------------------------------------------------------- errors
ERROR_CASES = [
    ("rank", dict(q=torch.zeros(2, 7, 4, dtype=D)), ValueError, r"q must have 4 dimensions"),
    ("q/k shapes", dict(q=torch.zeros(2, 7, 3, 6, dtype=D)), ValueError, r"q has shape"),
    ("v batch", dict(v=torch.zeros(2, 6, 3, 5, dtype=D)), ValueError, r"v has shape"),
    ("dtype", dict(v=torch.zeros(2, 7, 3, 5, dtype=torch.float32)), TypeError, r"v has dtype"),
    ("int dtype", dict(k=torch.zeros(2, 7, 3, 4, dtype=torch.int64)), TypeError,
     r"k must have a floating dtype"),
    ("not tensor", dict(k=[[1.0]]), TypeError, r"k must be a torch.Tensor"),
    ("unknown rule", dict(rule="hebb"), ValueError, r"unknown rule 'hebb'"),
    ("nan", dict(v=torch.full((2, 7, 3, 5), float("nan"), dtype=D)), ValueError,
     r"v contains NaN or inf"),
    ("inf", dict(q=torch.full((2, 7, 3, 4), float("inf"), dtype=D)), ValueError,
     r"q contains NaN or inf"),
    ("negative eta", dict(eta=-0.1), ValueError,
     r"eta must lie in \[0.0, inf\], got a value of -0.1"),
    ("eta shape", dict(eta=torch.ones(3, 3, dtype=D)), ValueError, r"eta has shape \(3, 3\)"),
    ("decay range", dict(rule="mamba2", decay=1.2), ValueError, r"decay must lie in \[0.0, 1.0\]"),
    ("decay negative", dict(rule="gated_delta", decay=-0.5), ValueError, r"decay must lie in"),
    ("missing decay", dict(rule="mamba2"), ValueError, r"needs decay"),
    ("missing gate", dict(rule="gla"), ValueError, r"needs gate"),
    ("gate range", dict(rule="gla", gate=torch.full((2, 7, 3, 4), 2.0, dtype=D)), ValueError,
     r"gate must lie in"),
    ("gate side", dict(rule="gla_table1", gate=torch.full((2, 7, 3, 4), 0.5, dtype=D)),
     ValueError, r"gate has shape"),
    ("gate for hebbian", dict(rule="hebbian", eta=0.5), ValueError, r"takes no eta"),
    ("state shape", dict(initial_state=torch.zeros(2, 3, 4, 4, dtype=D)), ValueError,
     r"initial_state has shape"),
    ("state dtype", dict(initial_state=torch.zeros(2, 3, 5, 4)), TypeError,
     r"initial_state has dtype"),
    ("state nan", dict(initial_state=torch.full((2, 3, 5, 4), float("nan"), dtype=D)),
     ValueError, r"initial_state contains NaN"),
    ("backend", dict(backend="cuda"), ValueError, r"backend must be one of"),
    ("return_states", dict(return_states=0), ValueError, r"return_states must be"),
    ("chunk_size", dict(chunk_size=0), ValueError, r"chunk_size must be a positive int"),
    ("phi", dict(phi="tanh"), ValueError, r"phi must be one of"),
    ("eta type", dict(eta="fast"), TypeError, r"eta must be a float or a torch.Tensor"),
    ("oja chunk", dict(rule="oja", backend="chunk"), ValueError, r"has no chunk-wise form"),
    ("empty", dict(q=torch.zeros(2, 0, 3, 4, dtype=D), k=torch.zeros(2, 0, 3, 4, dtype=D),
                   v=torch.zeros(2, 0, 3, 5, dtype=D)), ValueError, r"T = 0"),
]


@pytest.mark.parametrize("case", ERROR_CASES, ids=[c[0] for c in ERROR_CASES])
def test_bad_input_raises_clear_error(case):
    _, over, exc, pattern = case
    q, k, v = _qkv()
    args = {"q": q, "k": k, "v": v, "rule": "delta"}
    args.update(over)
    with pytest.raises(exc, match=pattern):
        sf.scan(args.pop("q"), args.pop("k"), args.pop("v"), args.pop("rule"), **args)


def test_errors_come_before_work(monkeypatch):
    """A bad gate is rejected before the recurrence runs a single step."""
    import synaptic_fwp.sequence as scan_mod  # the subpackage; sf.scan is the function

    calls = []
    monkeypatch.setattr(scan_mod, "scan_recurrent", lambda *a, **k: calls.append(1))
    q, k, v = _qkv()
    with pytest.raises(ValueError):
        sf.scan(q, k, v, "delta", eta=-1.0, backend="recurrent")
    assert not calls


def test_default_chunk_size():
    """The chunk length picked from the shape: 64 at the benchmark's K = V = 64, near
    2 K V / (K + V) below, within the documented bounds; scan uses it and agrees with the
    recurrence."""
    from synaptic_fwp.sequence.chunk import DEFAULT_CHUNK_SIZE, default_chunk_size

    assert DEFAULT_CHUNK_SIZE == 64
    delta, gla = sf.rules.get("delta"), sf.rules.get("gla")
    for rule in (delta, gla):
        for grad in (False, True):
            assert default_chunk_size(rule, 64, 64, grad) == 64
            assert default_chunk_size(rule, 512, 256, grad) == 64
    assert [default_chunk_size(delta, K, K) for K in (1, 4, 16, 17, 32, 33)] == [
        16, 16, 16, 32, 32, 64]
    assert [default_chunk_size(gla, K, K) for K in (1, 16, 32, 33)] == [32, 32, 32, 64]
    assert default_chunk_size(delta, 64, 8) == default_chunk_size(delta, 8, 64) == 16  # 14.2
    for rule in (delta, gla):  # with autograd: twice the balance, within [16, 64]
        assert [default_chunk_size(rule, K, K, grad=True) for K in (1, 8, 9, 16, 32)] == [
            16, 16, 32, 32, 64]

    q, k, v = _qkv(T=300, H=1, K=3, V=2)
    a = sf.scan(q, k, v, "retnet", decay=0.9, backend="chunk")
    b = sf.scan(q, k, v, "retnet", decay=0.9, backend="chunk", chunk_size=32)
    c = sf.scan(q, k, v, "retnet", decay=0.9, backend="recurrent")
    d = sf.scan(q, k, v, "retnet", decay=0.9, backend="chunk", chunk_size=64)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], d[0])  # the default is not 64 here
    torch.testing.assert_close(a[0], c[0], rtol=1e-10, atol=1e-12)


def test_default_chunk_size_follows_autograd(monkeypatch):
    """scan asks for the autograd chunk length exactly when a gradient will be recorded."""
    from synaptic_fwp.sequence import chunk as chunk_mod

    seen = []
    real = chunk_mod.default_chunk_size
    monkeypatch.setattr(chunk_mod, "default_chunk_size",
                        lambda *a: seen.append(a[-1]) or real(*a))
    q, k, v = _qkv(T=70, H=1, K=4, V=4)
    sf.scan(q, k, v, "delta", eta=0.5, backend="chunk")
    sf.scan(q.requires_grad_(), k, v, "delta", eta=0.5, backend="chunk")
    with torch.no_grad():
        sf.scan(q, k, v, "delta", eta=0.5, backend="chunk")
    assert seen == [False, True, False]


def test_auto_takes_the_recurrence_for_many_small_delta_instances(monkeypatch):
    """Without autograd, ``auto`` runs the delta rules' recurrence from ``B H = 32 K V`` on
    when ``K V <= 64`` (where it was faster than their chunk form); the chunk form everywhere
    else, and whenever a gradient will be recorded."""
    import synaptic_fwp.sequence as scan_mod
    from synaptic_fwp.sequence import _pick_backend

    q = torch.zeros(128, 64, 4, 4)  # B H = 512 = 32 K V
    delta = rules.get("delta")
    for rule in (delta, rules.get("gated_delta")):
        assert _pick_backend(rule, q, "auto", 4, grad=False) == "recurrent"
        assert _pick_backend(rule, q, "auto", 4, grad=True) == "chunk"
        assert _pick_backend(rule, q[:127], "auto", 4, grad=False) == "chunk"  # B H = 508
        assert _pick_backend(rule, q, "auto", 5, grad=False) == "chunk"  # B H < 32 K V = 640
    assert _pick_backend(rules.get("gla"), q, "auto", 4, grad=False) == "chunk"  # no UT form
    q16 = torch.zeros(2048, 64, 4, 16)
    assert _pick_backend(delta, q16, "auto", 16, grad=False) == "chunk"  # K V = 256 > 64
    assert _pick_backend(delta, q[:, :31], "auto", 4, grad=True) == "recurrent"  # T < 32

    ran = []
    real = scan_mod.scan_recurrent
    monkeypatch.setattr(scan_mod, "scan_recurrent", lambda *a, **k: ran.append(1) or real(*a, **k))
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(128, 40, 4, 2, generator=g, dtype=D) for _ in range(3))  # B H 512
    y_auto, W_auto = sf.scan(q, k, v, "delta", eta=0.5)
    assert ran == [1]
    y_chunk, W_chunk = sf.scan(q, k, v, "delta", eta=0.5, backend="chunk")
    torch.testing.assert_close(y_auto, y_chunk, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(W_auto, W_chunk, rtol=1e-9, atol=1e-10)
    sf.scan(q.requires_grad_(), k, v, "delta", eta=0.5)  # autograd: the chunk form
    assert ran == [1]


def test_function_and_backend_modules_both_reachable():
    """``sf.scan`` is the function and the backends import by their dotted path (a subpackage
    that shared the function's name made ``import synaptic_fwp.scan.chunk as m`` fail)."""
    import synaptic_fwp.sequence.chunk as chunk
    import synaptic_fwp.sequence.chunk_inference as inference

    assert callable(sf.scan) and sf.scan is sf.sequence.scan
    assert sf.sequence.chunk is chunk and chunk.segmented_scan is inference.segmented_scan


def test_a_diverging_rule_raises_naming_the_step_instead_of_returning_nan():
    """DESIGN 'Errors': nothing returns NaN silently. A delta rule with unnormalised keys
    (eta |k|^2 > 2) diverges; every backend names the same first step, instance and head (the
    chunk path by re-running the recurrence), with the Primer's remedy; check_finite=False
    returns the raw output."""
    g = torch.Generator().manual_seed(0)
    B, T, H, K, V = 2, 65, 1, 16, 2
    q, k = torch.randn(B, T, H, K, generator=g), torch.randn(B, T, H, K, generator=g)
    v, eta = torch.randn(B, T, H, V, generator=g), torch.rand(B, T, H, generator=g)
    y, _ = sf.scan(q, k, v, "delta", eta=eta, phi="elu1", backend="recurrent",
                   check_finite=False)
    bad = (~torch.isfinite(y)).any(-1)  # (B, T, H)
    assert bool(bad.any())
    b, t, h = min((r.tolist() for r in bad.nonzero()), key=lambda r: r[1])
    assert bool(torch.isfinite(y[:, :t]).all())
    where = f"at step {t} (instance {b}, head {h}; 0-based)"
    for backend in ("recurrent", "chunk", "auto"):
        with pytest.raises(sf.NonFiniteError, match=re.escape(where) + ".*silu_l2"):
            sf.scan(q, k, v, "delta", eta=eta, phi="elu1", backend=backend)
    # normalised keys keep it finite
    y2, _ = sf.scan(q, k, v, "delta", eta=eta, phi="silu_l2")
    assert bool(torch.isfinite(y2).all())
    # unbounded Hebbian growth past float32's range
    big = torch.full((1, 40, 1, 2), 1e18)
    with pytest.raises(sf.NonFiniteError, match=r"hebbian.*grew past the dtype's range"):
        sf.scan(big, big, big, "hebbian", backend="recurrent")
    with pytest.raises(TypeError, match="check_finite must be a bool"):
        sf.scan(q, k, v, "delta", eta=eta, check_finite=1)


def test_an_overflow_of_the_chunk_form_alone_is_named(monkeypatch):
    """When only the fast path overflows (the recurrence re-run stays finite), the error says
    so and points to backend='recurrent'."""
    import synaptic_fwp.sequence.chunk as chunk_mod

    real = chunk_mod.scan_chunk

    def overflowing(*a, **kw):
        y, W, st = real(*a, **kw)
        if y.shape[1] == 100:  # the whole call (not its last, partial chunk, run by itself)
            y = y.index_fill(1, torch.tensor([70]), float("inf"))
        return y, W, st

    monkeypatch.setattr(chunk_mod, "scan_chunk", overflowing)
    q, k, v = _qkv(T=100, H=1, K=3, V=2)
    with pytest.raises(sf.NonFiniteError, match=r"backend 'chunk' overflowed \(at step 70.*"
                                                r"recurrence stays finite.*backend='recurrent'"):
        sf.scan(q, k, v, "retnet", decay=0.9, backend="chunk")


def test_attention_form_with_a_zero_normaliser_raises():
    q = torch.tensor([[[[1.0, -1.0]]], [[[1.0, 1.0]]]]).expand(2, 3, 1, 2).clone()
    k = torch.tensor([1.0, 1.0]).expand(2, 3, 1, 2).clone()
    v = torch.ones(2, 3, 1, 2)
    with pytest.raises(sf.NonFiniteError, match=r"step 0 \(instance 0, head 0.*elu1"):
        sf.attention_form(q, k, v, normalize=True)
    y = sf.attention_form(q, k, v, normalize=True, check_finite=False)
    assert not bool(torch.isfinite(y[0]).any()) and bool(torch.isfinite(y[1]).all())
