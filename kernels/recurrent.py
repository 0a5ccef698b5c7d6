r"""Fused recurrent kernels: one launch for the whole sequence, ``W`` kept on-chip.

Math (Primer Eq. 31 in the form of :class:`synaptic_fwp.rules.LinearRule`; BCM after
Bienenstock, Cooper & Munro 1982). With ``W`` of shape ``(V, K)`` (post x pre) per (batch, head):

.. math::

    W' &= D_t(W_{t-1}) \in \{W,\ \lambda_t W,\ \mathrm{diag}(a_t) W,\ W \mathrm{diag}(a_t)\} \\
    W_t &= W' + c_t\, v_t \otimes k_t                                   &\text{(Hebbian)} \\
    W_t &= W' + c_t\, (v_t - R\, k_t) \otimes k_t,\ R \in \{W_{t-1}, W'\}  &\text{(delta)} \\
    W_t &= W' + c_t\, v_t \otimes (k_t - W_{t-1}^\top v_t)               &\text{(Oja)} \\
    W_t &= W_{t-1} + \eta_t\, y \odot (y - \theta_t) \otimes k_t,\
           \theta_t = l\,\theta_{t-1} + (1 - l) y^2                    &\text{(BCM)} \\
    y_t &= W_t\, q_t

with ``c_t`` in ``{1, eta_t, 1 - lambda_t}`` and BCM's ``y`` either ``v_t`` or ``W_{t-1} k_t``.

Grid: ``(B * H, cdiv(V, BV))``. Each program holds a ``(BV, BK)`` block of ``W`` in registers
(``BK`` = next power of two >= K: a row of ``W`` is whole on-chip, so ``W k`` needs no
communication; Oja's ``W^T v`` sums over all rows, so Oja runs with one V block). All arithmetic
is float32 whatever the input dtype (float32, float16 or bfloat16); padded rows/columns are masked.

Memory traffic per time step and program: reads ``q_t, k_t`` (``K``), ``v_t`` (``BV``) and the
gates, writes ``y_t`` (``BV``); ``W`` touches HBM only at the start, at the end, at every
``stride``-th step when states are returned and, for the backward pass, every ``SEG`` steps
(checkpoints). See ``docs/roofline.md``.

Backward (:func:`recurrent_bwd`): reverse time, segment by segment. Each program reloads the
checkpoint ``W`` at the start of a segment, replays the segment forward while writing the
states ``W_{t-1}`` to a private scratch buffer (``SEG x BV x BK`` float32, L2-resident), then walks
the segment backward, accumulating ``dW`` (the gradient of the loss with respect to ``W_t``) in
registers. Cost: two forward passes plus one backward pass; memory ``O(T / SEG)`` states.
"""

from __future__ import annotations

import triton
import triton.language as tl

__all__ = ["recurrent_fwd_kernel", "recurrent_bwd_kernel"]


@triton.jit
def _tile(H, K, V, BK: tl.constexpr, BV: tl.constexpr):
    """This program's place (grid ``(B * H, cdiv(V, BV))``): its V block ``i_v``, batch ``i_b`` and
    head ``i_h``; the key and value indices ``ok``, ``ov`` with their masks ``mk``, ``mv``; the
    mask ``mw`` and offsets ``blk`` of its ``(BV, BK)`` block within a ``(V, K)`` state; and
    ``base``, the offset of its state in a ``(B, H, V, K)`` tensor."""
    i_bh = tl.program_id(0)
    i_v = tl.program_id(1)
    ok = tl.arange(0, BK)
    ov = i_v * BV + tl.arange(0, BV)
    mk = ok < K
    mv = ov < V
    mw = mv[:, None] & mk[None, :]
    blk = ov[:, None] * K + ok[None, :]
    base = i_bh.to(tl.int64) * V * K
    i_b = (i_bh // H).to(tl.int64)
    i_h = (i_bh % H).to(tl.int64)
    return i_bh, i_v, i_b, i_h, ok, ov, mk, mv, mw, blk, base


@triton.jit
def _store_state(st_ptr, W, n, T, i_b, i_h, NST, H, V, K, blk, mw, STRIDE: tl.constexpr):
    """Write ``W``, the state after ``n`` steps, into the strided states ``(B, NST, H, V, K)``
    when ``STRIDE > 0`` divides ``n`` and ``n <= T``."""
    if STRIDE > 0:
        if n % STRIDE == 0:
            if n <= T:
                off = ((i_b * NST + n // STRIDE - 1) * H + i_h) * V * K
                tl.store(st_ptr + off + blk, W.to(st_ptr.dtype.element_ty), mask=mw)


@triton.jit
def _load_step(
    k_ptr, v_ptr, eta_ptr, lam_ptr, gate_ptr, row, ok, ov, mk, mv, K, V,
    DECAY: tl.constexpr, WRITE: tl.constexpr,
):
    """Load ``k_t, v_t`` and the gates of one step (row = flat (b, t, h) index, int64)."""
    kt = tl.load(k_ptr + row * K + ok, mask=mk, other=0.0).to(tl.float32)
    vt = tl.load(v_ptr + row * V + ov, mask=mv, other=0.0).to(tl.float32)
    lt = 1.0
    a = 1.0
    if DECAY == 1:
        lt = tl.load(lam_ptr + row).to(tl.float32)
    if DECAY == 2:
        a = tl.load(gate_ptr + row * V + ov, mask=mv, other=1.0).to(tl.float32)
    if DECAY == 3:
        a = tl.load(gate_ptr + row * K + ok, mask=mk, other=1.0).to(tl.float32)
    c = 1.0
    if WRITE == 1:
        c = tl.load(eta_ptr + row).to(tl.float32)
    if WRITE == 2:
        c = 1.0 - lt
    return kt, vt, lt, a, c


@triton.jit
def _decay(W, lt, a, DECAY: tl.constexpr):
    """``D_t(W)``: identity, ``lambda W``, ``diag(a) W`` (post) or ``W diag(a)`` (pre)."""
    if DECAY == 1:
        W = W * lt
    if DECAY == 2:
        W = W * a[:, None]
    if DECAY == 3:
        W = W * a[None, :]
    return W


@triton.jit
def _advance(
    W, theta, kt, vt, lt, a, c, theta_l,
    DECAY: tl.constexpr, CORR: tl.constexpr, DECAY_FIRST: tl.constexpr, BCM_OUT: tl.constexpr,
):
    """One step ``W_{t-1} -> W_t`` (and BCM's threshold ``theta``)."""
    Wd = _decay(W, lt, a, DECAY)
    if CORR == 0:
        Wn = Wd + c * vt[:, None] * kt[None, :]
    elif CORR == 1:
        if DECAY_FIRST:
            e = vt - tl.sum(Wd * kt[None, :], 1)
        else:
            e = vt - tl.sum(W * kt[None, :], 1)
        Wn = Wd + c * e[:, None] * kt[None, :]
    elif CORR == 2:
        back = tl.sum(W * vt[:, None], 0)
        Wn = Wd + c * vt[:, None] * (kt - back)[None, :]
    else:
        if BCM_OUT:
            yp = tl.sum(W * kt[None, :], 1)
        else:
            yp = vt
        theta = theta_l * theta + (1.0 - theta_l) * yp * yp
        Wn = W + c * (yp * (yp - theta))[:, None] * kt[None, :]
    return Wn, theta


@triton.jit
def recurrent_fwd_kernel(
    q_ptr, k_ptr, v_ptr, eta_ptr, lam_ptr, gate_ptr, w0_ptr,
    y_ptr, wT_ptr, st_ptr, ck_ptr, ckth_ptr,
    T, H, K, V, NST, NSEG, theta0, theta_l,
    DECAY: tl.constexpr, CORR: tl.constexpr, WRITE: tl.constexpr,
    DECAY_FIRST: tl.constexpr, BCM_OUT: tl.constexpr,
    STRIDE: tl.constexpr, SEG: tl.constexpr, SAVE_CK: tl.constexpr,
    BK: tl.constexpr, BV: tl.constexpr,
):
    """Forward scan. Flags: DECAY 0 none / 1 scalar / 2 post / 3 pre; CORR 0 none / 1 delta /
    2 oja / 3 bcm; WRITE 0 one / 1 eta / 2 one_minus_decay. Layouts (contiguous): q, k
    (B, T, H, K); v, y (B, T, H, V); eta, lam (B, T, H); gate (B, T, H, V|K); w0, wT (B, H, V, K);
    states (B, NST, H, V, K); checkpoints ck (B*H, NSEG, V, K) float32, ckth (B*H, NSEG, V)."""
    i_bh, i_v, i_b, i_h, ok, ov, mk, mv, mw, blk, base = _tile(H, K, V, BK, BV)
    W = tl.load(w0_ptr + base + blk, mask=mw, other=0.0).to(tl.float32)
    theta = tl.zeros([BV], dtype=tl.float32) + theta0
    for t in range(T):
        if SAVE_CK:
            if t % SEG == 0:
                off = (i_bh.to(tl.int64) * NSEG + t // SEG) * V * K
                tl.store(ck_ptr + off + blk, W, mask=mw)
                if CORR == 3:
                    offt = (i_bh.to(tl.int64) * NSEG + t // SEG) * V
                    tl.store(ckth_ptr + offt + ov, theta, mask=mv)
        row = (i_b * T + t) * H + i_h
        kt, vt, lt, a, c = _load_step(
            k_ptr, v_ptr, eta_ptr, lam_ptr, gate_ptr, row, ok, ov, mk, mv, K, V, DECAY, WRITE
        )
        W, theta = _advance(W, theta, kt, vt, lt, a, c, theta_l, DECAY, CORR, DECAY_FIRST, BCM_OUT)
        qt = tl.load(q_ptr + row * K + ok, mask=mk, other=0.0).to(tl.float32)
        yt = tl.sum(W * qt[None, :], 1)
        tl.store(y_ptr + row * V + ov, yt.to(y_ptr.dtype.element_ty), mask=mv)
        _store_state(st_ptr, W, t + 1, T, i_b, i_h, NST, H, V, K, blk, mw, STRIDE)
    tl.store(wT_ptr + base + blk, W.to(wT_ptr.dtype.element_ty), mask=mw)


@triton.jit
def recurrent_bwd_kernel(
    q_ptr, k_ptr, v_ptr, eta_ptr, lam_ptr, gate_ptr,
    ck_ptr, ckth_ptr, scr_ptr, scrth_ptr,
    dy_ptr, dwT_ptr, dst_ptr,
    dq_ptr, dk_ptr, dv_ptr, deta_ptr, dlam_ptr, dgate_ptr, dw0_ptr,
    T, B, H, K, V, NST, NSEG, theta_l,
    DECAY: tl.constexpr, CORR: tl.constexpr, WRITE: tl.constexpr,
    DECAY_FIRST: tl.constexpr, BCM_OUT: tl.constexpr,
    STRIDE: tl.constexpr, HAS_DST: tl.constexpr, SEG: tl.constexpr,
    BK: tl.constexpr, BV: tl.constexpr,
):
    """Backward scan. Partial sums over V blocks (index ``i_v`` first): dq, dk (NV, B, T, H, K),
    deta, dlam (NV, B, T, H), dgate (NV, B, T, H, K) for the pre gate; complete: dv
    (B, T, H, V), dgate (B, T, H, V) for the post gate, dw0 (B, H, V, K). All float32.
    Scratch: scr (B*H*NV, SEG, BV, BK), scrth (B*H*NV, SEG, BV) float32."""
    i_bh, i_v, i_b, i_h, ok, ov, mk, mv, mw, blk, base = _tile(H, K, V, BK, BV)
    NV = tl.num_programs(1)
    sblk = tl.arange(0, BV)[:, None] * BK + ok[None, :]
    sbase = (i_bh.to(tl.int64) * NV + i_v) * SEG * BV * BK
    sbase_th = (i_bh.to(tl.int64) * NV + i_v) * SEG * BV
    BTH = B * T * H
    pv = i_v.to(tl.int64) * BTH  # offset of this V block's partial sums
    dW = tl.load(dwT_ptr + base + blk, mask=mw, other=0.0).to(tl.float32)
    dth = tl.zeros([BV], dtype=tl.float32)
    for s in range(NSEG):
        seg = NSEG - 1 - s
        t0 = seg * SEG
        off = (i_bh.to(tl.int64) * NSEG + seg) * V * K
        W = tl.load(ck_ptr + off + blk, mask=mw, other=0.0)
        theta = tl.zeros([BV], dtype=tl.float32)
        if CORR == 3:
            offt = (i_bh.to(tl.int64) * NSEG + seg) * V
            theta = tl.load(ckth_ptr + offt + ov, mask=mv, other=0.0)
        # replay the segment, keeping W_{t-1} (and theta_{t-1}) of each step in scratch
        for i in range(SEG):
            t = t0 + i
            if t < T:
                tl.store(scr_ptr + sbase + i * BV * BK + sblk, W)
                if CORR == 3:
                    tl.store(scrth_ptr + sbase_th + i * BV + tl.arange(0, BV), theta)
                row = (i_b * T + t) * H + i_h
                kt, vt, lt, a, c = _load_step(
                    k_ptr, v_ptr, eta_ptr, lam_ptr, gate_ptr, row, ok, ov, mk, mv, K, V,
                    DECAY, WRITE,
                )
                W, theta = _advance(
                    W, theta, kt, vt, lt, a, c, theta_l, DECAY, CORR, DECAY_FIRST, BCM_OUT
                )
        tl.debug_barrier()
        for j in range(SEG):
            i = SEG - 1 - j
            t = t0 + i
            if t < T:
                row = (i_b * T + t) * H + i_h
                Wp = tl.load(scr_ptr + sbase + i * BV * BK + sblk)
                thp = tl.zeros([BV], dtype=tl.float32)
                if CORR == 3:
                    thp = tl.load(scrth_ptr + sbase_th + i * BV + tl.arange(0, BV))
                kt, vt, lt, a, c = _load_step(
                    k_ptr, v_ptr, eta_ptr, lam_ptr, gate_ptr, row, ok, ov, mk, mv, K, V,
                    DECAY, WRITE,
                )
                Wn, thn = _advance(
                    Wp, thp, kt, vt, lt, a, c, theta_l, DECAY, CORR, DECAY_FIRST, BCM_OUT
                )
                qt = tl.load(q_ptr + row * K + ok, mask=mk, other=0.0).to(tl.float32)
                dyt = tl.load(dy_ptr + row * V + ov, mask=mv, other=0.0).to(tl.float32)
                if HAS_DST:
                    if (t + 1) % STRIDE == 0:
                        offs = ((i_b * NST + (t + 1) // STRIDE - 1) * H + i_h) * V * K
                        dW += tl.load(dst_ptr + offs + blk, mask=mw, other=0.0).to(tl.float32)
                # y_t = W_t q_t
                dW += dyt[:, None] * qt[None, :]
                tl.store(dq_ptr + (pv + row) * K + ok, tl.sum(Wn * dyt[:, None], 0), mask=mk)
                # the step W_{t-1} -> W_t
                gk = tl.sum(dW * kt[None, :], 1)  # dW k_t, (BV,)
                dc = 0.0
                dlam = 0.0
                if CORR == 0:
                    dvt = c * gk
                    dkt = c * tl.sum(dW * vt[:, None], 0)
                    dc = tl.sum(vt * gk, 0)
                    Gd = dW
                    dWp = dW * 0.0
                elif CORR == 1:
                    if DECAY_FIRST:
                        R = _decay(Wp, lt, a, DECAY)
                    else:
                        R = Wp
                    e = vt - tl.sum(R * kt[None, :], 1)
                    de = c * gk
                    dvt = de
                    dc = tl.sum(e * gk, 0)
                    dkt = c * tl.sum(dW * e[:, None], 0) - tl.sum(R * de[:, None], 0)
                    dR = -de[:, None] * kt[None, :]
                    if DECAY_FIRST:
                        Gd = dW + dR
                        dWp = dW * 0.0
                    else:
                        Gd = dW
                        dWp = dR
                elif CORR == 2:
                    back = tl.sum(Wp * vt[:, None], 0)
                    gb = tl.sum(dW * vt[:, None], 0)  # dW^T v_t, (BK,)
                    gback = tl.sum(dW * back[None, :], 1)
                    dkt = c * gb
                    dvt = c * gk - c * gback - c * tl.sum(Wp * gb[None, :], 1)
                    dc = tl.sum(vt * (gk - gback), 0)
                    Gd = dW
                    dWp = -c * vt[:, None] * gb[None, :]
                else:
                    if BCM_OUT:
                        yp = tl.sum(Wp * kt[None, :], 1)
                    else:
                        yp = vt
                    m = yp * (yp - thn)
                    dm = c * gk
                    dc = tl.sum(m * gk, 0)
                    dkt = c * tl.sum(dW * m[:, None], 0)
                    dthn = dth - dm * yp
                    dyp = dm * (2.0 * yp - thn) + dthn * (1.0 - theta_l) * 2.0 * yp
                    dth = theta_l * dthn
                    if BCM_OUT:
                        dkt += tl.sum(Wp * dyp[:, None], 0)
                        dWp = dyp[:, None] * kt[None, :]
                        dvt = yp * 0.0
                    else:
                        dWp = dW * 0.0
                        dvt = dyp
                    Gd = dW
                # decay part: Gd is the gradient with respect to D_t(W_{t-1})
                if DECAY == 0:
                    dWp += Gd
                if DECAY == 1:
                    dWp += lt * Gd
                    dlam = tl.sum(tl.sum(Gd * Wp, 1), 0)
                if DECAY == 2:
                    dWp += a[:, None] * Gd
                    tl.store(dgate_ptr + row * V + ov, tl.sum(Gd * Wp, 1), mask=mv)
                if DECAY == 3:
                    dWp += a[None, :] * Gd
                    tl.store(dgate_ptr + (pv + row) * K + ok, tl.sum(Gd * Wp, 0), mask=mk)
                if WRITE == 1:
                    tl.store(deta_ptr + pv + row, dc)
                if WRITE == 2:
                    dlam -= dc
                if DECAY == 1:
                    tl.store(dlam_ptr + pv + row, dlam)
                tl.store(dk_ptr + (pv + row) * K + ok, dkt, mask=mk)
                tl.store(dv_ptr + row * V + ov, dvt, mask=mv)
                dW = dWp
        tl.debug_barrier()
    tl.store(dw0_ptr + base + blk, dW, mask=mw)
