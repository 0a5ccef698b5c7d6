r"""Chunk-wise parallel scan in plain torch (Primer Box 1; WY/UT form for the delta rules).

The sequence is cut into ``N = ceil(T / S)`` chunks of ``S`` steps. Inside a chunk everything is
a few batched matrix products over all chunks at once; only the state ``W`` (``V x K`` per head)
is carried from chunk to chunk, in a Python loop over the ``N`` chunks. The algorithm is derived
from the rule's spec (:class:`~synaptic_fwp.rules.LinearRule`), never from its name:

* **decay** ``none``/``scalar``: one factor ``lambda_t`` per step (``1`` for ``none``);
  ``pre``/``post``: a vector ``a_t`` on the key (right) or value (left) side of ``W``.
* **write** ``c_t`` (``1``, ``eta_t`` or ``1 - lambda_t``) scales the write ``c_t v_t k_t^T``.
* **correction** ``delta``: ``W_t = lambda_t W_{t-1} + (c_t v_t - gamma_t W_{t-1} k_t) k_t^T``
  with ``gamma_t = c_t lambda_t`` when the rule decays first (Gated DeltaNet as published, Yang,
  Kautz & Hatamizadeh 2025) and ``gamma_t = c_t`` otherwise (DeltaNet; Gated DeltaNet as in the
  Primer's Table 1).

Notation inside a chunk (local steps ``t, s = 1..S``, ``W_0`` the state entering the chunk)::

    D[t, s]   = prod_{s < r <= t} lambda_r            (1 on the diagonal)
    Lam[t]    = prod_{r <= t} lambda_r = D[t, 0],     d_end[s] = D[S, s]

**Decay rules (no correction)**, with ``u_s = c_s v_s``::

    W_t = Lam[t] W_0 + sum_{s <= t} D[t, s] u_s k_s^T
    y_t = W_t q_t = Lam[t] W_0 q_t + sum_{s <= t} D[t, s] (k_s . q_t) u_s
    W_S = Lam[S] W_0 + sum_s d_end[s] u_s k_s^T

For vector gates the products run elementwise along the gated side (``K`` for ``pre``, ``V`` for
``post``), as in GLA (Yang, Wang, Shen, Panda & Kim 2024, Sec. 4).

**Delta rules (WY/UT representation**, Yang, Wang, Zhang, Shen & Kim 2024, "Parallelizing linear
transformers with the delta rule over sequence length", Sec. 3; here with scalar decay). Write
``W_t = lambda_t W_{t-1} + u_t k_t^T`` with the pseudo-value
``u_t = c_t v_t - gamma_t W_{t-1} k_t``. Unrolling ``W_{t-1}`` inside the chunk gives the unit
lower-triangular system ``(I + Abar) U = diag(c) V - diag(gamma_t Lam[t-1]) K W_0^T`` with
``Abar[t, s] = gamma_t D[t-1, s] (k_t . k_s)`` for ``s < t``. With ``T_ = (I + Abar)^{-1}``
(the UT transform) ``U = Ut - Wt W_0^T``, ``Ut = T_ diag(c) V``, ``Wt = T_ diag(gamma Lam[t-1]) K``:
``Ut`` and ``Wt`` need no state and are computed for all chunks at once (``T_`` explicitly, by
:func:`~synaptic_fwp.sequence.chunk_inference.ut_inverse`, then dense products); the loop over
chunks only does ``U_n = Ut_n - Wt_n W^T`` and ``W <- Lam[S] W + U_n^T diag(d_end) K_n`` (two
matmuls). The outputs follow after the loop, batched, from the decay-rule formula above with
``u = U``. Without autograd (and with mild decays) the same algorithm runs segment by segment in
preallocated buffers, :func:`~synaptic_fwp.sequence.chunk_inference.segmented_scan`.

Numerical safety. Decay products live in log space: ``b_t = sum_{r <= t} log a_r`` per chunk
(``log`` of the gate clamped at the smallest normal number, so a decay of 0 gives a large finite
negative number, never ``-inf`` or NaN). When every chunk's total log-decay is above
``-_SAFE_LOG[dtype]`` (20 in float32, 200 in float64; the usual regime: RetNet, GLA's
``sigmoid^(1/16)`` gates) the factorised forms ``D[t, s] = exp(b_t) exp(-b_s)`` are used: two
matmuls, no ``S x S`` elementwise work, and ``exp(-b)`` cannot overflow. Otherwise (strong decay
or a decay of exactly 0 somewhere) the products are formed exactly, without logarithms or
divisions, as cumulative products down the columns of ``X[t, s] = a_t if t > s else 1``: zeros
give exact zeros and the right gradients (torch's ``cumprod`` backward handles zeros). For
vector gates the exact intra-chunk term needs an ``S x S x X`` tensor; only the chunks that are
not mild take it, in bounded batches. Both paths are tested against the recurrence.

Shapes: ``q, k: (B, T, H, K)``, ``v: (B, T, H, V)``, gates as
:func:`synaptic_fwp.sequence.prepare` returns them (``eta``, ``decay``: ``(B, T, H)``; ``gate``:
``(B, T, H, V|K)``), ``W0: (B, H, V, K)``.
"""

from __future__ import annotations

import math

import torch

from ..rules import LinearRule
from .chunk_inference import (
    chunk_cumprod,
    segmented_scan,
    ut_inverse,
    ut_inverse_flops,
    workspace,
)

__all__ = ["scan_chunk", "chunk_flops", "supports", "default_chunk_size", "DEFAULT_CHUNK_SIZE"]

#: Chunk length at K = V = 64 and the longest :func:`default_chunk_size` picks. Measured with
#: benchmarks/scan_chunk.py (B=4, H=4, T=4096, K=V=64, float32, no autograd): S=64 was the
#: fastest, or within noise of S=32, for delta, gated_delta, gla and retnet (S=128 runs larger
#: products but does more work: 10-35% slower).
DEFAULT_CHUNK_SIZE = 64


def default_chunk_size(rule: LinearRule, K: int, V: int, grad: bool = False) -> int:
    """The chunk length :func:`synaptic_fwp.scan` uses on the CPU when the caller gives none.

    Per step, the chunk algorithm multiplies ``2 S (K + V)`` flops inside its chunk (``Q K^T``
    and ``P U``) and ``4 K V`` between chunks (the write to and the read-out of the state), and
    each chunk costs a few ops whatever its size. The two products balance at
    ``S = 2 K V / (K + V)`` (``K`` when ``K = V``), rounded up to a power of two and kept within
    ``[32, 64]`` (decay rules) or ``[16, 64]`` (delta rules, whose UT transform grows as
    ``S^3``). With autograd (``grad``: the general path, which records every chunk's ops for
    the backward pass, so that per-chunk overhead weighs more) it is twice the balance, within
    ``[16, 64]`` for every rule. At ``K = V = 64`` this is :data:`DEFAULT_CHUNK_SIZE` either
    way. Measured by ``benchmarks/chunk_size.py`` (``T = 512``, ``B H K = 4096``): within 12%
    of the fastest chunk length in every row without autograd, and at ``K = V <= 16`` up to
    1.5x faster than ``S = 64`` without autograd and 3.3x with it.
    """
    delta = rule.correction == "delta"
    balance = math.ceil(2 * K * V / (K + V)) * (2 if grad else 1)
    low = 16 if delta or grad else 32
    return min(DEFAULT_CHUNK_SIZE, max(low, 1 << (balance - 1).bit_length()))


#: Largest total log-decay magnitude of a chunk for which the factorised (log-space) form is used.
_SAFE_LOG = {torch.float64: 200.0, torch.float32: 20.0, torch.float16: 5.0, torch.bfloat16: 5.0}

#: Elements of the ``S x S x X`` temporaries of the exact GLA path processed per batch.
_EXACT_ELEMS = 1 << 24


def supports(rule: object) -> bool:
    """Whether :func:`scan_chunk` covers ``rule``: every :class:`LinearRule` except Oja's
    (left correction) and the delta correction combined with a vector gate."""
    return (
        isinstance(rule, LinearRule)
        and rule.correction != "oja"
        and not (rule.correction == "delta" and rule.decay in ("pre", "post"))
    )


def _check(rule: object, chunk_size: object, stride: object) -> None:
    if not isinstance(rule, LinearRule):
        raise TypeError(
            f"rule must be a LinearRule for the chunk backend, got {type(rule).__name__}; "
            "use backend='recurrent' for BCM"
        )
    if rule.correction == "oja":
        raise ValueError(
            f"rule {rule.name!r} has no chunk-wise form (its correction acts on the left, Oja); "
            "use backend='recurrent'"
        )
    if rule.correction == "delta" and rule.decay in ("pre", "post"):
        raise ValueError(
            f"rule {rule.name!r} combines the delta correction with a vector gate "
            f"(decay={rule.decay!r}); the chunk backend covers the delta rule with decay "
            "'none' or 'scalar'; use backend='recurrent'"
        )
    if not isinstance(chunk_size, int) or isinstance(chunk_size, bool) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
    if not isinstance(stride, int) or isinstance(stride, bool) or stride < 0:
        raise ValueError(f"stride must be a non-negative int, got {stride!r}")


def _to_chunks(x: torch.Tensor, N: int, S: int, pad_value: float) -> torch.Tensor:
    """``(B, T, H, ...) -> (N, B H, S, ...)`` contiguous, time padded with ``pad_value`` to
    ``N * S``. Chunk-major so that the inter-chunk loop slices contiguous blocks."""
    B, T, H = x.shape[:3]
    if N * S != T:
        pad_shape = (B, N * S - T) + tuple(x.shape[2:])
        x = torch.cat([x, x.new_full(pad_shape, pad_value)], dim=1)
    x = x.unflatten(1, (N, S))  # (B, N, S, H, ...)
    x = x.movedim(1, 0).movedim(3, 2)  # (N, B, H, S, ...)
    return x.reshape((N, B * H, S) + tuple(x.shape[4:]))


def _from_chunks(y: torch.Tensor, B: int, H: int, T: int) -> torch.Tensor:
    """``(N, B H, S, X) -> (B, T, H, X)``."""
    N, _, S, X = y.shape
    y = y.reshape(N, B, H, S, X).permute(1, 0, 3, 2, 4).reshape(B, N * S, H, X)
    return y[:, :T]


def _decay_matrix(a: torch.Tensor) -> torch.Tensor:
    """``D[..., t, s, x] = prod_{s < r <= t} a[..., r, x]`` for ``t >= s`` (1 above): exact, from
    a cumulative product of ``X[t, s] = a_t if t > s else 1``. ``a: (..., S, X)``."""
    S = a.shape[-2]
    strict = torch.ones(S, S, dtype=torch.bool, device=a.device).tril(-1)
    X = torch.where(strict.unsqueeze(-1), a.unsqueeze(-2), a.new_ones(()))
    return torch.cumprod(X, dim=-3)


def _decay_to_end(a: torch.Tensor) -> torch.Tensor:
    """``d[..., s, x] = prod_{s < r <= S} a[..., r, x]`` (exclusive reverse cumulative product)."""
    nxt = torch.cat([a[..., 1:, :], a.new_ones(a[..., :1, :].shape)], dim=-2)
    return torch.flip(torch.cumprod(torch.flip(nxt, [-2]), dim=-2), [-2])


def needs_grad(*xs: object) -> bool:
    """Whether autograd will record ops on any of the tensors ``xs``."""
    return torch.is_grad_enabled() and any(
        isinstance(x, torch.Tensor) and x.requires_grad for x in xs
    )


def _without_grad(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    rule: LinearRule,
    g: dict[str, torch.Tensor | None],
    W0: torch.Tensor,
    stride: int,
    S: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None] | None:
    """The whole chunks by :func:`.chunk_inference.segmented_scan` (segment-wise, preallocated
    buffers), the last partial chunk by the general path; ``None`` where that path does not
    apply (a decay that is not mild in some chunk, states at a stride that is not a multiple of
    ``S``, fewer than ``S`` steps)."""
    B, T, H, K = k.shape
    NS = (T // S) * S
    if stride % S or NS == 0:
        return None
    side = rule.decay
    a = {"none": None, "scalar": g["decay"], "pre": g["gate"], "post": g["gate"]}[side]
    if side == "scalar":
        a = a.unsqueeze(-1)  # (B, T, H, 1)
    Lam = None
    if a is not None:  # every chunk's decay product must be mild (see _Decays)
        (out,) = workspace("decay", [(B, NS, H, a.shape[-1])], a.dtype, a.device)
        Lam = chunk_cumprod(a[:, :NS], S, out=out)
        if not bool(Lam[:, S - 1 :: S].amin() >= math.exp(-_SAFE_LOG.get(a.dtype, 20.0))):
            return None
    c = rule.write_coef(g)
    delta = rule.correction == "delta"
    gamma = c * a[..., 0] if (delta and rule.decay_first and a is not None) else c
    y, W, states = segmented_scan(q, k, v, side, delta, c, gamma, Lam, W0, S, stride // S)
    if NS < T:  # the last, partial chunk by the general path, from the state reached
        rest = {n: x[:, NS:] if isinstance(x, torch.Tensor) else x for n, x in g.items()}
        y[:, NS:], W, _ = scan_chunk(
            q[:, NS:], k[:, NS:], v[:, NS:], rule, rest, W, chunk_size=T - NS
        )
    if states is not None:
        V = v.shape[-1]
        states = states.reshape(-1, B, H, V, K).transpose(0, 1)
    return y, W, states


def _states_at(
    positions: torch.Tensor,
    S: int,
    W_start: torch.Tensor,
    U: torch.Tensor,
    k: torch.Tensor,
    a: torch.Tensor,
    Lam: torch.Tensor,
    side: str,
) -> torch.Tensor:
    """States ``W_p`` after (0-based) steps ``positions``, from the chunk quantities.

    ``W_p = Lam[l] W_0 + sum_{s <= l} D[l, s] u_s k_s^T`` with ``l`` the local index of ``p`` in
    its chunk ``n`` (decays along ``side``). Chunk-major inputs ``(N, BH, ...)``; returns
    ``(M, BH, V, K)``.
    """
    n = torch.div(positions, S, rounding_mode="floor")
    loc = positions - n * S
    idx = torch.arange(S, device=a.device)
    upto = (idx.unsqueeze(0) <= loc.unsqueeze(1)).unsqueeze(1).unsqueeze(-1)  # (M, 1, S, 1)
    a_m = torch.where(upto, a[n], a.new_ones(()))  # (M, BH, S, X): a_r for r <= l, else 1
    Dl = _decay_to_end(a_m) * upto.to(a.dtype)  # prod_{s<r<=l} a_r; 0 for s > l
    lam_l = Lam[n, :, loc]  # (M, BH, X)
    W0m, u_m, k_m = W_start[n], U[n], k[n]
    if side == "post":
        return lam_l.unsqueeze(-1) * W0m + (u_m * Dl).transpose(-1, -2) @ k_m
    if side == "pre":
        return W0m * lam_l.unsqueeze(-2) + u_m.transpose(-1, -2) @ (k_m * Dl)
    return lam_l.unsqueeze(-1) * W0m + u_m.transpose(-1, -2) @ (k_m * Dl)


def scan_chunk(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    rule: LinearRule,
    g: dict[str, torch.Tensor | None],
    W0: torch.Tensor,
    stride: int = 0,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Chunk-wise parallel scan; same contract as :func:`.recurrent.scan_recurrent`.

    Inputs are validated and broadcast by :func:`synaptic_fwp.sequence.prepare` (``phi`` already
    applied). Returns ``y: (B, T, H, V)`` (``y_t = W_t q_t``), ``W_T: (B, H, V, K)`` and, if
    ``stride > 0``, the states after steps ``stride, 2 stride, ...`` as
    ``(B, T // stride, H, V, K)`` (else ``None``). ``T`` need not be a multiple of
    ``chunk_size``: the last chunk is padded with steps that leave ``W`` unchanged
    (``k = v = 0``, decay 1, write 0). Autograd flows through every operation.
    """
    _check(rule, chunk_size, stride)
    B, T, H, K = k.shape
    V = v.shape[-1]
    S = min(chunk_size, T)
    N = -(-T // S)
    BH = B * H
    if not needs_grad(q, k, v, W0, *g.values()):
        fast = _without_grad(q, k, v, rule, g, W0, stride, S)
        if fast is not None:
            return fast

    # ---- per-step gates: write c_t, decay a_t ((N, BH, S, X), X = 1 for a scalar decay)
    c = rule.write_coef(g)
    side = rule.decay  # none | scalar | pre | post
    a = {
        "scalar": g["decay"].unsqueeze(-1) if side == "scalar" else None,
        "pre": g["gate"],
        "post": g["gate"],
        "none": None,
    }[side]
    delta = rule.correction == "delta"

    qc, kc, vc = (_to_chunks(x, N, S, 0.0) for x in (q, k, v))  # (N, BH, S, K|V)
    if isinstance(c, torch.Tensor):
        cc = _to_chunks(c, N, S, 0.0)  # (N, BH, S); padded steps write nothing
        uc = cc.unsqueeze(-1) * vc  # c_s v_s
    else:  # c == 1: padded steps have v = 0 and write nothing
        cc, uc = None, vc
    causal = torch.ones(S, S, dtype=torch.bool, device=q.device).tril()
    zero = q.new_zeros(())

    # ---- decay products: fast (log-space, factorised) when every chunk's decay is mild
    dec = _Decays(_to_chunks(a, N, S, 1.0)) if a is not None else None
    # kw: the keys of the chunk's write to the state. Fast path: W_end = Lam_S (W + sum_s u_s
    # (k_s / Lam_s)^T), so kw = k / Lam and the loop scales by Lam_S; exact: kw = d_end k.
    if dec is None or side == "post":
        qL, kw, k_over = qc, kc, kc
    else:
        qL = qc * dec.Lam  # Lam[t] q_t (scalar or along K)
        k_over = kc / dec.Lam if dec.fast else None  # k_s / Lam[s]
        kw = k_over if dec.fast else kc * dec.d_end
    scale_after = dec is not None and dec.fast and side != "post"

    if side in ("none", "scalar"):
        if dec is None or dec.fast:
            P = (qL @ k_over.transpose(-1, -2)).tril_()  # fresh tensor: in place is safe
        else:
            D = _decay_matrix(dec.a)[..., 0]  # (N, BH, S, S), exact
            P = torch.where(causal, (qc @ kc.transpose(-1, -2)) * D, zero)

    W = W0.reshape(BH, V, K)
    if delta:
        gamma = c * a[..., 0] if (rule.decay_first and a is not None) else c
        if isinstance(gamma, torch.Tensor):
            gch = _to_chunks(gamma, N, S, 0.0).unsqueeze(-1)  # (N, BH, S, 1)
        else:
            gch = kc.new_full(kc.shape[:-1] + (1,), float(gamma))
        strict = torch.ones(S, S, dtype=torch.bool, device=q.device).tril(-1)
        # gamma_t k_t (times Lam[t-1] with a decay); the (N, BH, S, 1) factors are formed first
        gk = kc * (gch if dec is None else gch * dec.Lam_prev)
        if dec is None:  # Abar[t, s] = gamma_t (k_t . k_s); fresh product: in place is safe
            Abar = (gk @ kc.transpose(-1, -2)).tril_(-1)
        elif dec.fast:  # gamma_t D[t-1, s] (k_t . k_s) = (gamma_t Lam[t-1] k_t) . (k_s / Lam[s])
            Abar = (gk @ k_over.transpose(-1, -2)).tril_(-1)
        else:  # exact: D[t-1, s] from the cumulative-product matrix
            D_prev = torch.cat([torch.ones_like(D[..., :1, :]), D[..., :-1, :]], dim=-2)
            Abar = torch.where(strict, gch * D_prev * (kc @ kc.transpose(-1, -2)), zero)
        Tinv = ut_inverse(Abar)  # the UT transform T_ = (I + Abar)^{-1}
        Ut, Wt = Tinv @ uc, Tinv @ gk  # T_ c v: (N, BH, S, V); T_ gamma Lam k
        lam_S = dec.Lam_S[..., 0, :].unsqueeze(-1) if dec is not None else None  # (N, BH, 1, 1)
        starts, Us = [], []
        for n in range(N):  # out of place: autograd records every step
            starts.append(W)
            Un = torch.baddbmm(Ut[n], Wt[n], W.transpose(-1, -2), alpha=-1.0)  # (BH, S, V)
            Us.append(Un)
            if scale_after:
                W = torch.baddbmm(W, Un.transpose(-1, -2), kw[n]) * lam_S[n]
            else:
                Wd = W if lam_S is None else lam_S[n] * W
                W = torch.baddbmm(Wd, Un.transpose(-1, -2), kw[n])
        W_start = torch.stack(starts)  # (N, BH, V, K)
        U = torch.stack(Us)  # (N, BH, S, V)
    else:
        U = uc
        if side == "post":
            G = (U * dec.d_end).transpose(-1, -2) @ kc  # (N, BH, V, K)
            fac = dec.Lam_S.transpose(-1, -2)  # (N, BH, V, 1)
        else:
            G = U.transpose(-1, -2) @ kw
            fac = dec.Lam_S if dec is not None else None  # (N, BH, 1, X)
        starts = []
        for n in range(N):
            starts.append(W)
            if fac is None:
                W = W + G[n]
            elif scale_after:
                W = (W + G[n]) * fac[n]
            else:
                W = torch.addcmul(G[n], fac[n], W)
        W_start = torch.stack(starts)

    # ---- outputs: inter-chunk (from the state entering the chunk) + intra-chunk
    if side == "post":
        y = dec.Lam * (qc @ W_start.transpose(-1, -2)) + _intra_vector(qc, kc, U, dec, causal)
    else:
        intra = _intra_vector(qc, kc, U, dec, causal, qL, k_over) if side == "pre" else P @ U
        args = (qL.flatten(0, 1), W_start.transpose(-1, -2).flatten(0, 1))
        y = torch.baddbmm(intra.flatten(0, 1), *args).unflatten(0, (N, BH))
    y = _from_chunks(y, B, H, T)

    states = None
    if stride:
        M = T // stride
        if M == 0:
            states = W.new_zeros((0, BH, V, K))
        elif stride % S == 0:
            W_end = torch.cat([W_start[1:], W.unsqueeze(0)])  # state after each chunk
            states = W_end[stride // S - 1 :: stride // S][:M]
        else:
            pos = torch.arange(1, M + 1, device=q.device) * stride - 1
            ac = dec.a if dec is not None else kc.new_ones(kc.shape[:-1] + (1,))
            Lam = dec.Lam if dec is not None else ac
            states = _states_at(pos, S, W_start, U, kc, ac, Lam, side)
        states = states.reshape(-1, B, H, V, K).transpose(0, 1)
    return y, W.reshape(B, H, V, K), states


class _Decays:
    """Decay products of one chunked gate ``a: (N, BH, S, X)``.

    ``Lam[t] = prod_{r<=t} a_r`` (an exact cumulative product: zeros allowed), ``Lam_S``
    (``(N, BH, 1, X)``), ``Lam_prev[t] = Lam[t-1]``, ``d_end[s] = prod_{s<r<=S} a_r``. ``fast``
    when every chunk's total decay is at least ``exp(-_SAFE_LOG[dtype])``: then
    ``inv = 1 / Lam`` is bounded by ``exp(_SAFE_LOG)`` and the factorised forms
    ``prod_{s<r<=t} a_r = Lam[t] inv[s]`` are used. Otherwise ``safe`` marks the mild chunks and
    ``b = cumsum(log a)`` (clamped log) serves the factorised form there.
    """

    def __init__(self, a: torch.Tensor) -> None:
        self.a = a
        self.Lam = torch.cumprod(a, dim=-2)
        self.Lam_S = self.Lam[..., -1:, :]
        floor = math.exp(-_SAFE_LOG.get(a.dtype, 20.0))
        self.safe = self.Lam_S[..., 0, :].amin(-1) >= floor  # (N, BH)
        self.fast = bool(self.safe.all())

    @property
    def inv(self) -> torch.Tensor:
        """``1 / Lam`` (fast path only: bounded by ``exp(_SAFE_LOG)``)."""
        return torch.reciprocal(self.Lam)

    @property
    def d_end(self) -> torch.Tensor:
        if self.fast:
            return self.Lam_S * self.inv
        return _decay_to_end(self.a)

    @property
    def Lam_prev(self) -> torch.Tensor:
        """``Lam[t-1]`` (1 at the chunk start); only the delta rules need it."""
        return torch.cat([torch.ones_like(self.a[..., :1, :]), self.Lam[..., :-1, :]], dim=-2)

    @property
    def b(self) -> torch.Tensor:
        """``log Lam`` from clamped logs (finite for zero gates)."""
        tiny = torch.finfo(self.a.dtype).tiny
        return torch.cumsum(torch.log(self.a.clamp_min(tiny)), dim=-2)


def _intra_vector(
    qc: torch.Tensor,
    kc: torch.Tensor,
    U: torch.Tensor,
    dec: _Decays,
    causal: torch.Tensor,
    qL: torch.Tensor | None = None,
    k_over: torch.Tensor | None = None,
) -> torch.Tensor:
    """Intra-chunk output for a vector gate: ``y_t = sum_{s<=t} (q_t . (G_ts k_s)) u_s`` (pre,
    ``qL``/``k_over`` given) or ``(k_s . q_t) (G_ts u_s)`` (post), ``G_ts = prod_{s<r<=t} a_r``.

    Mild chunks use ``G_ts = exp(b_t) exp(-b_s)`` (two matmuls); the others the exact
    ``S x S x X`` product (see the module docstring).
    """
    zero = qc.new_zeros(())
    pre = qL is not None
    if dec.fast and pre:
        ebb = ninv = None  # qL and k_over are given
    elif dec.fast:
        ebb, ninv = dec.Lam, dec.inv
    else:  # factorised form only where safe; finite placeholders elsewhere
        bb = torch.where(dec.safe[..., None, None], dec.b, zero)
        ebb, ninv = bb.exp(), (-bb).exp()
    if pre:
        if not dec.fast:
            qL, k_over = qc * ebb, kc * ninv
        y = (qL @ k_over.transpose(-1, -2)).tril_() @ U  # fresh tensor: in place is safe
    else:
        A = torch.where(causal, qc @ kc.transpose(-1, -2), zero)
        y = ebb * (A @ (U * ninv))
    if dec.fast:
        return y
    N, BH, S, _ = qc.shape
    flat = (N * BH, S)
    idx = torch.nonzero(~dec.safe.reshape(-1)).squeeze(-1)
    X = dec.a.shape[-1]
    per = max(1, _EXACT_ELEMS // (S * S * X))  # chunks per batch: bounded S x S x X temporaries
    parts = []
    for i0 in range(0, idx.numel(), per):
        ix = idx[i0 : i0 + per]
        qs = qc.reshape(*flat, -1).index_select(0, ix)
        ks = kc.reshape(*flat, -1).index_select(0, ix)
        us = U.reshape(*flat, -1).index_select(0, ix)
        G = _decay_matrix(dec.a.reshape(*flat, -1).index_select(0, ix))  # (m, S, S, X)
        G = torch.where(causal.unsqueeze(-1), G, zero)
        if pre:
            parts.append(torch.einsum("mtk,msk,mtsk->mts", qs, ks, G) @ us)
        else:
            As = torch.where(causal, qs @ ks.transpose(-1, -2), zero)
            parts.append(torch.einsum("mts,msv,mtsv->mtv", As, us, G))
    ys = torch.cat(parts) if len(parts) > 1 else parts[0]
    y = y.reshape(*flat, -1).index_copy(0, idx, ys)
    return y.reshape(N, BH, S, -1)


def chunk_flops(rule: LinearRule, B: int, T: int, H: int, K: int, V: int, S: int) -> int:
    """Matrix-product flops (2 per multiply-add) of :func:`scan_chunk`'s algorithm.

    Per chunk and head, decay rules: ``Q K^T`` (``2 S^2 K``), ``P U`` (``2 S^2 V``), the chunk's
    write to the state ``U^T K`` (``2 S K V``) and the inter-chunk read-out ``Q W^T``
    (``2 S K V``). The delta rules add ``K K^T`` (``2 S^2 K``), the UT inverse
    (:func:`~synaptic_fwp.sequence.chunk_inference.ut_inverse_flops`: about ``0.65 S^3`` at
    ``S = 64``), its application ``T_ (c V | gamma K)`` as one dense product
    (``2 S^2 (V + K)``) and the in-loop correction ``Wt W^T`` (``2 S K V``). Elementwise work
    (decay products, masks; ``O(S^2 + S (K + V))`` per chunk, or ``S^2 K`` in GLA chunks that
    need the exact path) is not counted.
    """
    S = min(S, T)
    N = -(-T // S)
    per = 2 * S * S * K + 2 * S * S * V + 4 * S * K * V
    if rule.correction == "delta":
        per += 2 * S * S * K + ut_inverse_flops(S) + 2 * S * S * (V + K) + 2 * S * K * V
    return int(B * H * N * per)
