"""Launchers and the autograd function around the Triton kernels.

:func:`scan_triton` is what ``synaptic_fwp.scan(..., backend="triton")`` calls; it picks the
recurrent or the chunk-wise kernel, derives the kernels' compile-time flags from the rule spec
(:class:`synaptic_fwp.rules.LinearRule`: decay kind, correction, write, order; or
:class:`synaptic_fwp.rules.BCMRule`) and wraps forward and backward in one
:class:`torch.autograd.Function`, so gradients flow to ``q, k, v``, the gates and ``W_0``.

This module imports Triton at import time: import it only after ``TRITON_INTERPRET`` has its
final value (Triton decides at decoration time whether a kernel is compiled or interpreted).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import triton
from triton.runtime.interpreter import InterpretedFunction

from synaptic_fwp.rules import BCMRule, LinearRule

from .chunk import chunk_scalar_fwd_kernel, chunk_vector_fwd_kernel
from .recurrent import recurrent_bwd_kernel, recurrent_fwd_kernel

__all__ = ["scan_triton", "kernel_plan", "INTERPRETED", "AUTOTUNE", "MODES"]

MODES = ("auto", "recurrent", "chunk")
#: whether the kernels of this process run in Triton's CPU interpreter (fixed when imported)
INTERPRETED = isinstance(recurrent_fwd_kernel, InterpretedFunction)

#: opt-in autotuning on a GPU (``SYNAPTIC_FWP_AUTOTUNE=1``). Off by default: the tuned
#: configuration may differ between processes (timing noise) and with it the order of the
#: reductions, so results would not be bit-reproducible run to run (DESIGN.md, determinism).
AUTOTUNE = not INTERPRETED and os.environ.get("SYNAPTIC_FWP_AUTOTUNE") == "1"

if AUTOTUNE:  # pragma: no cover - needs a GPU
    def _tuned(fn, key):
        configs = [triton.Config({}, num_warps=w, num_stages=s) for w in (2, 4, 8) for s in (1, 2)]
        return triton.autotune(configs=configs, key=key)(fn)

    _rec_fwd = _tuned(recurrent_fwd_kernel, ["K", "V", "BK", "BV"])
    _rec_bwd = _tuned(recurrent_bwd_kernel, ["K", "V", "BK", "BV"])
    _chunk_scalar = _tuned(chunk_scalar_fwd_kernel, ["K", "V", "BT", "BK", "BV"])
    _chunk_vector = _tuned(chunk_vector_fwd_kernel, ["K", "V", "BT", "BK", "BV"])
    _REC_OPTS: dict = {}
    _CHUNK_OPTS: dict = {}
else:  # a fixed configuration (the interpreter cannot autotune: it has no GPU driver)
    _rec_fwd, _rec_bwd = recurrent_fwd_kernel, recurrent_bwd_kernel
    _chunk_scalar, _chunk_vector = chunk_scalar_fwd_kernel, chunk_vector_fwd_kernel
    _REC_OPTS = {} if INTERPRETED else {"num_warps": 4}
    _CHUNK_OPTS = {} if INTERPRETED else {"num_warps": 4, "num_stages": 2}

_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
_DECAY = {"none": 0, "scalar": 1, "post": 2, "pre": 3}
_CORR = {"none": 0, "delta": 1, "oja": 2}
_WRITE = {"one": 0, "eta": 1, "one_minus_decay": 2}


def _np2(n: int) -> int:
    return triton.next_power_of_2(max(int(n), 1))


@dataclass(frozen=True)
class Plan:
    """Everything a launch needs besides the tensors: flags derived from the rule, block sizes."""

    mode: str  # "recurrent" or "chunk"
    decay: int
    corr: int
    write: int
    decay_first: bool
    bcm_out: bool
    theta0: float
    theta_l: float
    stride: int
    seg: int  # checkpoint interval of the backward pass (16 steps at most)
    bt: int  # chunk length of the chunk kernels
    bk: int
    bv: int
    bk_bwd: int
    bv_bwd: int


def _rule_flags(rule: LinearRule | BCMRule) -> dict:
    if isinstance(rule, BCMRule):
        return dict(decay=0, corr=3, write=1, decay_first=False,
                    bcm_out=rule.drive == "output", theta0=float(rule.theta0),
                    theta_l=float(rule.theta_decay))
    return dict(decay=_DECAY[rule.decay], corr=_CORR[rule.correction], write=_WRITE[rule.write],
                decay_first=bool(rule.decay_first), bcm_out=False, theta0=0.0, theta_l=0.0)


def has_chunk_kernel(rule: LinearRule | BCMRule) -> bool:
    """Chunk kernels exist for scalar/no decay with a Hebbian or delta correction, and for
    vector gates (GLA) with a Hebbian write. Oja and BCM are recurrent only."""
    if isinstance(rule, BCMRule) or rule.correction == "oja":
        return False
    return not (rule.correction == "delta" and rule.decay in ("post", "pre"))


def kernel_plan(
    rule: LinearRule | BCMRule,
    K: int,
    V: int,
    T: int,
    stride: int,
    chunk_size: int,
    mode: str = "auto",
    block_v: int | None = None,
) -> Plan:
    """Choose the kernel (``mode``) and the block sizes for a problem (see :func:`scan_triton`)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if block_v is not None and (block_v < 1 or block_v & (block_v - 1)):
        raise ValueError(f"block_v must be a power of two, got {block_v!r}")
    f = _rule_flags(rule)
    vector = f["decay"] in (2, 3)
    bt = 16 if vector else min(64, max(16, _np2(chunk_size)))
    can_chunk = has_chunk_kernel(rule)
    if mode == "chunk":
        if not can_chunk:
            raise ValueError(
                f"rule {rule.name!r} has no chunk kernel; use mode='recurrent' (chunk kernels: "
                "scalar or no decay with a Hebbian or delta write, and GLA's vector gates)"
            )
        if stride and stride % bt:
            raise ValueError(
                f"return_states={stride} with the chunk kernel needs a multiple of its chunk "
                f"length {bt}; use mode='recurrent' or such a stride"
            )
    if mode == "auto":
        fits = can_chunk and T > bt and (stride == 0 or stride % bt == 0)
        mode = "chunk" if fits else "recurrent"
    bk_rec = _np2(K)
    bv_rec = _np2(V) if f["corr"] == 2 else min(_np2(V), 32)
    if block_v is not None and f["corr"] != 2:
        bv_rec = block_v
    if mode == "chunk":
        bk = max(16, _np2(K))
        bv = min(max(16, _np2(V)), 64 if not vector else 32)
        if block_v is not None:
            bv = max(16, block_v)
        seg = 16  # a divisor of bt: the chunk kernel writes a checkpoint every 16 steps
    else:
        bk, bv = bk_rec, bv_rec
        seg = min(max(int(chunk_size), 1), 16)  # backward scratch SEG x BV x BK stays in L2
    return Plan(mode=mode, stride=stride, seg=seg, bt=bt, bk=bk, bv=bv, bk_bwd=bk_rec,
                bv_bwd=bv_rec, **f)


def _dummy(ref: torch.Tensor) -> torch.Tensor:
    return torch.zeros(1, dtype=torch.float32, device=ref.device)


def _forward(q, k, v, eta, lam, gate, W0, plan: Plan, save_ck: bool):
    B, T, H, K = q.shape
    V = v.shape[-1]
    BH = B * H
    stride = plan.stride
    nst = T // stride if stride else 0
    y = torch.empty((B, T, H, V), dtype=q.dtype, device=q.device)
    WT = torch.empty((B, H, V, K), dtype=W0.dtype, device=q.device)
    st = torch.empty((B, nst, H, V, K), dtype=q.dtype, device=q.device)
    nseg = triton.cdiv(T, plan.seg)
    ck = torch.empty((BH, nseg, V, K) if save_ck else (1,), dtype=torch.float32, device=q.device)
    ckth = torch.empty((BH, nseg, V) if save_ck and plan.corr == 3 else (1,),
                       dtype=torch.float32, device=q.device)
    d = _dummy(q)
    eta_, lam_, gate_ = (x if x is not None else d for x in (eta, lam, gate))
    st_ = st if nst else d
    if plan.mode == "chunk":
        grid = (BH, triton.cdiv(V, plan.bv))
        ieee = q.dtype == torch.float32
        nch = triton.cdiv(T, plan.bt)
        if plan.decay in (2, 3):
            assert plan.bt == plan.seg
            _chunk_vector[grid](
                q, k, v, eta_, gate_, W0, y, WT, st_, ck, T, H, K, V, nst, nch, nseg,
                SIDE=plan.decay, WRITE=plan.write, STRIDE=stride, SAVE_CK=save_ck, IEEE=ieee,
                BT=plan.bt, BK=plan.bk, BV=plan.bv, **_CHUNK_OPTS,
            )
        else:
            _chunk_scalar[grid](
                q, k, v, eta_, lam_, W0, y, WT, st_, ck, T, H, K, V, nst, nch, nseg,
                DECAY=plan.decay, DELTA=plan.corr == 1, WRITE=plan.write,
                DECAY_FIRST=plan.decay_first, STRIDE=stride, SAVE_CK=save_ck, CK=plan.seg,
                IEEE=ieee, BT=plan.bt, BK=plan.bk, BV=plan.bv, **_CHUNK_OPTS,
            )
    else:
        grid = (BH, triton.cdiv(V, plan.bv))
        _rec_fwd[grid](
            q, k, v, eta_, lam_, gate_, W0, y, WT, st_, ck, ckth,
            T, H, K, V, nst, nseg, plan.theta0, plan.theta_l,
            DECAY=plan.decay, CORR=plan.corr, WRITE=plan.write, DECAY_FIRST=plan.decay_first,
            BCM_OUT=plan.bcm_out, STRIDE=stride, SEG=plan.seg, SAVE_CK=save_ck,
            BK=plan.bk, BV=plan.bv, **_REC_OPTS,
        )
    return y, WT, st, ck, ckth


def _backward(q, k, v, eta, lam, gate, ck, ckth, dy, dWT, dst, plan: Plan):
    B, T, H, K = q.shape
    V = v.shape[-1]
    BH = B * H
    BK, BV = plan.bk_bwd, plan.bv_bwd
    NV = triton.cdiv(V, BV)
    nseg = ck.shape[1]
    f32 = dict(dtype=torch.float32, device=q.device)
    scr = torch.empty((BH * NV, plan.seg, BV, BK), **f32)
    scrth = torch.empty((BH * NV, plan.seg, BV) if plan.corr == 3 else (1,), **f32)
    dq = torch.empty((NV, B, T, H, K), **f32)
    dk = torch.empty((NV, B, T, H, K), **f32)
    dv = torch.empty((B, T, H, V), **f32)
    deta = torch.empty((NV, B, T, H) if plan.write == 1 else (1,), **f32)
    dlam = torch.empty((NV, B, T, H) if plan.decay == 1 else (1,), **f32)
    if plan.decay == 2:
        dgate = torch.empty((B, T, H, V), **f32)
    elif plan.decay == 3:
        dgate = torch.empty((NV, B, T, H, K), **f32)
    else:
        dgate = torch.empty((1,), **f32)
    dW0 = torch.empty((B, H, V, K), **f32)
    d = _dummy(q)
    eta_, lam_, gate_ = (x if x is not None else d for x in (eta, lam, gate))
    nst = dst.shape[1] if dst is not None else 0
    has_dst = dst is not None and nst > 0
    _rec_bwd[(BH, NV)](
        q, k, v, eta_, lam_, gate_, ck, ckth, scr, scrth,
        dy, dWT, dst if has_dst else d,
        dq, dk, dv, deta, dlam, dgate, dW0,
        T, B, H, K, V, nst, nseg, plan.theta_l,
        DECAY=plan.decay, CORR=plan.corr, WRITE=plan.write, DECAY_FIRST=plan.decay_first,
        BCM_OUT=plan.bcm_out, STRIDE=max(plan.stride, 1), HAS_DST=has_dst, SEG=plan.seg,
        BK=BK, BV=BV, **_REC_OPTS,
    )
    grads = dict(q=dq.sum(0), k=dk.sum(0), v=dv, W0=dW0)
    grads["eta"] = deta.sum(0) if plan.write == 1 else None
    grads["decay"] = dlam.sum(0) if plan.decay == 1 else None
    grads["gate"] = dgate if plan.decay == 2 else (dgate.sum(0) if plan.decay == 3 else None)
    return grads


class TritonScan(torch.autograd.Function):
    """``(q, k, v, eta, decay, gate, W0) -> (y, W_T, states)`` with the Triton kernels."""

    @staticmethod
    def forward(ctx, q, k, v, eta, lam, gate, W0, plan):  # noqa: ANN001, D102
        save = any(ctx.needs_input_grad[:7])
        y, WT, st, ck, ckth = _forward(q, k, v, eta, lam, gate, W0, plan, save_ck=save)
        if save:
            ctx.save_for_backward(q, k, v, eta, lam, gate, ck, ckth)
            ctx.plan = plan
            ctx.W0_dtype = W0.dtype
        ctx.mark_non_differentiable(*(() if plan.stride else (st,)))
        return y, WT, st

    @staticmethod
    def backward(ctx, dy, dWT, dst):  # noqa: ANN001, D102
        q, k, v, eta, lam, gate, ck, ckth = ctx.saved_tensors
        plan = ctx.plan
        B, T, H, K = q.shape
        V = v.shape[-1]
        dy = (torch.zeros((B, T, H, V), dtype=torch.float32, device=q.device) if dy is None
              else dy.contiguous())
        dWT = (torch.zeros((B, H, V, K), dtype=torch.float32, device=q.device) if dWT is None
               else dWT.contiguous())
        dst = dst.contiguous() if (dst is not None and plan.stride) else None
        g = _backward(q, k, v, eta, lam, gate, ck, ckth, dy, dWT, dst, plan)
        need = ctx.needs_input_grad

        def cast(x, ref, i):  # noqa: ANN001
            if not need[i] or x is None:
                return None
            return x.to(ref.dtype)

        return (cast(g["q"], q, 0), cast(g["k"], k, 1), cast(g["v"], v, 2),
                cast(g["eta"], q, 3) if eta is not None else None,
                cast(g["decay"], q, 4) if lam is not None else None,
                cast(g["gate"], q, 5) if gate is not None else None,
                cast(g["W0"], q, 6) if need[6] else None, None)


def check_supported(q: torch.Tensor, rule: object) -> None:
    """Raise ``ValueError``/``TypeError`` before any work if the kernels cannot run here."""
    if not isinstance(rule, (LinearRule, BCMRule)):
        raise TypeError(f"rule must be a LinearRule or a BCMRule, got {type(rule).__name__}")
    if q.dtype not in _DTYPES:
        raise TypeError(
            f"backend='triton' takes float32, float16 or bfloat16 inputs, got {q.dtype}; "
            "use backend='recurrent' or 'chunk' for float64"
        )
    if q.is_cuda and INTERPRETED:
        raise ValueError(
            "the Triton kernels were imported with TRITON_INTERPRET=1 (CPU interpreter) but the "
            "tensors are on CUDA; unset TRITON_INTERPRET before the first Triton import"
        )
    if not q.is_cuda and not INTERPRETED:
        raise ValueError(
            f"backend='triton' needs CUDA tensors (got device {q.device}); on the CPU set "
            "TRITON_INTERPRET=1 before the first Triton import, or use backend='recurrent'/'chunk'"
        )


def scan_triton(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    rule: LinearRule | BCMRule,
    g: dict[str, torch.Tensor | None],
    W0: torch.Tensor,
    stride: int = 0,
    chunk_size: int = 64,
    *,
    mode: str = "auto",
    block_v: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The Triton backend of :func:`synaptic_fwp.scan` (inputs as validated by ``prepare``).

    ``mode``: ``"recurrent"`` (fused recurrent kernel, every rule), ``"chunk"`` (chunk-wise
    kernel, Primer Box 1; scalar/no decay with Hebbian or delta write, GLA's vector gates) or
    ``"auto"`` (chunk where it exists, the sequence spans more than one chunk and ``stride`` is
    a multiple of the chunk, else recurrent). The chunk length is ``chunk_size`` rounded up to a
    power of two in [16, 64] (16 for vector gates). ``block_v`` forces the V block (tests).
    Returns ``(y, W_T, states or None)``; autograd flows to every tensor input.
    """
    check_supported(q, rule)
    B, T, H, K = q.shape
    V = v.shape[-1]
    plan = kernel_plan(rule, K, V, T, stride, chunk_size, mode, block_v)
    c = [x.contiguous() if x is not None else None
         for x in (q, k, v, g.get("eta"), g.get("decay"), g.get("gate"), W0)]
    y, WT, st = TritonScan.apply(*c, plan)
    return y, WT, (st if stride else None)


def interpreter_requested() -> bool:
    """Whether ``TRITON_INTERPRET=1`` is set in the environment now."""
    return os.environ.get("TRITON_INTERPRET") == "1"
