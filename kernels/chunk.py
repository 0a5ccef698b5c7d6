r"""Chunk-wise kernels (Primer Box 1): the sequence in chunks of ``BT`` steps, matrix products
inside a chunk, the state ``W`` carried on-chip from chunk to chunk.

Within a chunk starting from state ``W_0`` (steps ``i = 1..BT``), write ``c_i`` the write
coefficient and ``b_i = sum_{r <= i} log lambda_r`` (cumulative log decay, 0 without decay).

Scalar decay, Hebbian write (hebbian, retnet, mamba2, gated_rfa, mlstm):

.. math::
    y_i &= e^{b_i} W_0 q_i + \sum_{j \le i} e^{b_i - b_j} (q_i \cdot k_j)\, u_j,
    \qquad u_j = c_j v_j \\
    W_{BT} &= e^{b_{BT}} W_0 + \sum_j e^{b_{BT} - b_j}\, u_j \otimes k_j

Delta and gated delta rules through the WY/UT form (Schlag et al. 2021; Yang et al. 2024,
"Parallelizing linear transformers with the delta rule over sequence length"; Yang, Kautz &
Hatamizadeh 2025): the same two lines hold with ``u_i = c_i (v_i - R_i k_i)``, the error read
from ``R_i = e^{r_i} W_0 + sum_{j<i} e^{r_i - b_j} u_j (x) k_j`` where ``r_i = b_i`` (decay first,
Gated DeltaNet as published) or ``r_i = b_{i-1}`` (Table 1). Stacking the ``u_i``,

.. math::
    (I + L)\, U = C V - \mathrm{diag}(c\, e^{r}) K W_0^\top, \qquad
    L_{ij} = c_i e^{r_i - b_j} (k_i \cdot k_j)\ (j < i),

solved with the unit lower-triangular inverse ``T = (I + L)^{-1}`` (the UT transform), built by
forward substitution on-chip.

Vector gates (GLA as published, gate on K; Table 1's GLA, gate on V): ``b`` is a matrix of
cumulative log gates (one column per key or value index) and the intra-chunk weights
``exp(b_i - b_j)`` are formed elementwise (a ``BT x BT x BK`` or ``BT x BT x BV`` block, exponents
<= 0 on the causal mask, so no overflow) rather than by the unstable ``(q e^{b})(k e^{-b})^T``.

All matrix products run in float32 (``input_precision="ieee"`` for float32 inputs, TF32 for
16-bit inputs). ``lambda = 0`` is taken as ``1e-30`` inside the logarithm (a relative error of
``1e-30`` on the surviving state). For training the kernels also write the state every 16 steps
(float32 checkpoints; inside a chunk from the chunk's ``u, k`` by one more product), which the
backward pass reads: the chunk path's gradients are computed by the recurrent backward kernel,
replaying 16 steps at a time from these checkpoints.

Memory traffic per chunk and program: ``q, k`` (``BT x K``), ``v`` (``BT x BV``), gates; writes
``y`` (``BT x BV``); ``W`` stays on-chip (see ``docs/roofline.md``).
"""

from __future__ import annotations

import triton
import triton.language as tl

from .recurrent import _store_state, _tile

__all__ = ["chunk_scalar_fwd_kernel", "chunk_vector_fwd_kernel"]


@triton.jit
def _load_chunk(ptr, rows, cols, mrow, mcol, n):
    """A (BT, n_block) tile of a (B, T, H, n) tensor, float32, zero outside the masks."""
    x = tl.load(ptr + rows[:, None] * n + cols[None, :], mask=mrow[:, None] & mcol[None, :],
                other=0.0)
    return x.to(tl.float32)


@triton.jit
def chunk_scalar_fwd_kernel(
    q_ptr, k_ptr, v_ptr, eta_ptr, lam_ptr, w0_ptr,
    y_ptr, wT_ptr, st_ptr, ck_ptr,
    T, H, K, V, NST, NCH, NSEG,
    DECAY: tl.constexpr, DELTA: tl.constexpr, WRITE: tl.constexpr, DECAY_FIRST: tl.constexpr,
    STRIDE: tl.constexpr, SAVE_CK: tl.constexpr, CK: tl.constexpr, IEEE: tl.constexpr,
    BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
):
    """Scalar/no decay, Hebbian or delta correction. DECAY 0 none / 1 scalar; WRITE 0 one /
    1 eta / 2 one_minus_decay. ``STRIDE`` must be 0 or a multiple of ``BT``. Layouts as in
    :func:`kernels.recurrent.recurrent_fwd_kernel`; checkpoints ck (B*H, NSEG, V, K) float32,
    the state before steps 0, CK, 2 CK, ... (``BT`` a multiple of ``CK``): inside a chunk,
    ``W_m = e^{b_m} W_0 + sum_{j <= m} e^{b_m - b_j} u_j (x) k_j``, one more product each."""
    i_bh, i_v, i_b, i_h, ok, ov, mk, mv, mw, blk, base = _tile(H, K, V, BK, BV)
    ot = tl.arange(0, BT)
    causal = ot[:, None] >= ot[None, :]
    strict = ot[:, None] > ot[None, :]
    W = tl.load(w0_ptr + base + blk, mask=mw, other=0.0).to(tl.float32)
    for ci in range(NCH):
        t0 = ci * BT
        tt = t0 + ot
        mt = tt < T
        rows = (i_b * T + tt) * H + i_h
        Q = _load_chunk(q_ptr, rows, ok, mt, mk, K)
        Kc = _load_chunk(k_ptr, rows, ok, mt, mk, K)
        Vc = _load_chunk(v_ptr, rows, ov, mt, mv, V)
        if DECAY == 1:
            lt = tl.load(lam_ptr + rows, mask=mt, other=1.0).to(tl.float32)
            logl = tl.log(tl.maximum(lt, 1e-30))
            b = tl.cumsum(logl, 0)
        else:
            lt = tl.full([BT], 1.0, tl.float32)
            logl = tl.zeros([BT], dtype=tl.float32)
            b = tl.zeros([BT], dtype=tl.float32)
        if WRITE == 1:
            c = tl.load(eta_ptr + rows, mask=mt, other=0.0).to(tl.float32)
        elif WRITE == 2:
            c = 1.0 - lt
        else:
            c = tl.where(mt, 1.0, 0.0)
        if DELTA:
            if DECAY_FIRST:
                r = b
            else:
                r = b - logl
            KK = tl.dot(Kc, tl.trans(Kc), input_precision="ieee" if IEEE else "tf32")
            ex = tl.exp(tl.where(strict, r[:, None] - b[None, :], float("-inf")))
            N = -(c[:, None] * ex * KK)  # strictly lower: -L
            # forward substitution: rows of (I + L)^{-1} - I
            Tm = tl.zeros([BT, BT], dtype=tl.float32)
            for i in range(1, BT):
                n_i = tl.sum(tl.where(ot[:, None] == i, N, 0.0), 0)
                new_i = n_i + tl.sum(n_i[:, None] * Tm, 0)
                Tm = tl.where(ot[:, None] == i, new_i[None, :], Tm)
            Tm = Tm + tl.where(ot[:, None] == ot[None, :], 1.0, 0.0)
            KW = tl.dot(Kc, tl.trans(W), input_precision="ieee" if IEEE else "tf32")
            rhs = c[:, None] * Vc - (c * tl.exp(r))[:, None] * KW
            U = tl.dot(Tm, rhs, input_precision="ieee" if IEEE else "tf32")
        else:
            U = c[:, None] * Vc
        if SAVE_CK:
            for m in tl.static_range(0, BT, CK):
                if m == 0:
                    Wm = W
                else:
                    bm = tl.sum(tl.where(ot == m - 1, b, 0.0), 0)
                    wj = tl.exp(tl.where(ot < m, bm - b, float("-inf")))
                    Wm = tl.exp(bm) * W + tl.dot(tl.trans(U * wj[:, None]), Kc,
                                                 input_precision="ieee" if IEEE else "tf32")
                if t0 + m < T:
                    off = (i_bh.to(tl.int64) * NSEG + (t0 + m) // CK) * V * K
                    tl.store(ck_ptr + off + blk, Wm, mask=mw)
        QK = tl.dot(Q, tl.trans(Kc), input_precision="ieee" if IEEE else "tf32")
        A = QK * tl.exp(tl.where(causal, b[:, None] - b[None, :], float("-inf")))
        Y = tl.exp(b)[:, None] * tl.dot(Q, tl.trans(W), input_precision="ieee" if IEEE else "tf32")
        Y += tl.dot(A, U, input_precision="ieee" if IEEE else "tf32")
        tl.store(y_ptr + rows[:, None] * V + ov[None, :], Y.to(y_ptr.dtype.element_ty),
                 mask=mt[:, None] & mv[None, :])
        bS = tl.sum(tl.where(ot == BT - 1, b, 0.0), 0)
        Uw = U * tl.exp(bS - b)[:, None]
        W = tl.exp(bS) * W + tl.dot(tl.trans(Uw), Kc, input_precision="ieee" if IEEE else "tf32")
        _store_state(st_ptr, W, t0 + BT, T, i_b, i_h, NST, H, V, K, blk, mw, STRIDE)
    tl.store(wT_ptr + base + blk, W.to(wT_ptr.dtype.element_ty), mask=mw)


@triton.jit
def chunk_vector_fwd_kernel(
    q_ptr, k_ptr, v_ptr, eta_ptr, gate_ptr, w0_ptr,
    y_ptr, wT_ptr, st_ptr, ck_ptr,
    T, H, K, V, NST, NCH, NSEG,
    SIDE: tl.constexpr, WRITE: tl.constexpr,
    STRIDE: tl.constexpr, SAVE_CK: tl.constexpr, IEEE: tl.constexpr,
    BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
):
    """Vector gate, Hebbian write. SIDE 2 post (``diag(a) W``, gate (B, T, H, V)) / 3 pre
    (``W diag(a)``, gate (B, T, H, K), GLA as published); WRITE 0 one / 1 eta."""
    i_bh, i_v, i_b, i_h, ok, ov, mk, mv, mw, blk, base = _tile(H, K, V, BK, BV)
    ot = tl.arange(0, BT)
    causal = ot[:, None] >= ot[None, :]
    W = tl.load(w0_ptr + base + blk, mask=mw, other=0.0).to(tl.float32)
    for ci in range(NCH):
        t0 = ci * BT
        if SAVE_CK:  # chunk-start states: NSEG == NCH here (chunks of BT = 16 steps)
            off = (i_bh.to(tl.int64) * NSEG + ci) * V * K
            tl.store(ck_ptr + off + blk, W, mask=mw)
        tt = t0 + ot
        mt = tt < T
        rows = (i_b * T + tt) * H + i_h
        Q = _load_chunk(q_ptr, rows, ok, mt, mk, K)
        Kc = _load_chunk(k_ptr, rows, ok, mt, mk, K)
        Vc = _load_chunk(v_ptr, rows, ov, mt, mv, V)
        if WRITE == 1:
            c = tl.load(eta_ptr + rows, mask=mt, other=0.0).to(tl.float32)
        else:
            c = tl.where(mt, 1.0, 0.0)
        U = c[:, None] * Vc
        if SIDE == 3:
            a = tl.load(gate_ptr + rows[:, None] * K + ok[None, :],
                        mask=mt[:, None] & mk[None, :], other=1.0).to(tl.float32)
            b = tl.cumsum(tl.log(tl.maximum(a, 1e-30)), 0)  # (BT, BK)
            ex = tl.exp(tl.where(causal[:, :, None], b[:, None, :] - b[None, :, :],
                                 float("-inf")))
            A = tl.sum(Q[:, None, :] * Kc[None, :, :] * ex, 2)  # (BT, BT)
            Y = tl.dot(Q * tl.exp(b), tl.trans(W), input_precision="ieee" if IEEE else "tf32")
            Y += tl.dot(A, U, input_precision="ieee" if IEEE else "tf32")
            bS = tl.sum(tl.where(ot[:, None] == BT - 1, b, 0.0), 0)  # (BK,)
            W = W * tl.exp(bS)[None, :] + tl.dot(
                tl.trans(U), Kc * tl.exp(bS[None, :] - b),
                input_precision="ieee" if IEEE else "tf32",
            )
        else:
            a = tl.load(gate_ptr + rows[:, None] * V + ov[None, :],
                        mask=mt[:, None] & mv[None, :], other=1.0).to(tl.float32)
            b = tl.cumsum(tl.log(tl.maximum(a, 1e-30)), 0)  # (BT, BV)
            ex = tl.exp(tl.where(causal[:, :, None], b[:, None, :] - b[None, :, :],
                                 float("-inf")))  # (BT, BT, BV)
            QK = tl.dot(Q, tl.trans(Kc), input_precision="ieee" if IEEE else "tf32")
            Y = tl.exp(b) * tl.dot(Q, tl.trans(W), input_precision="ieee" if IEEE else "tf32")
            Y += tl.sum(QK[:, :, None] * ex * U[None, :, :], 1)
            bS = tl.sum(tl.where(ot[:, None] == BT - 1, b, 0.0), 0)  # (BV,)
            W = W * tl.exp(bS)[:, None] + tl.dot(
                tl.trans(U * tl.exp(bS[None, :] - b)), Kc,
                input_precision="ieee" if IEEE else "tf32",
            )
        tl.store(y_ptr + rows[:, None] * V + ov[None, :], Y.to(y_ptr.dtype.element_ty),
                 mask=mt[:, None] & mv[None, :])
        _store_state(st_ptr, W, t0 + BT, T, i_b, i_h, NST, H, V, K, blk, mw, STRIDE)
    tl.store(wT_ptr + base + blk, W.to(wT_ptr.dtype.element_ty), mask=mw)
