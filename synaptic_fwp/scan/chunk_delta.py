r"""The UT transform of the delta rules and their chunk-wise inference path (no autograd).

Both serve :func:`synaptic_fwp.scan.chunk.scan_chunk`; the notation is that module's.

:func:`ut_inverse` forms ``T_ = (I + Abar)^{-1}`` for the strictly lower triangular ``Abar`` of
a chunk (Yang, Wang, Zhang, Shen & Kim 2024, "Parallelizing linear transformers with the delta
rule over sequence length", Sec. 3): the ``b x b`` diagonal blocks (``b = 16``) are inverted by a
batched triangular solve, then block row ``i`` of the inverse is
``T_[i, :i] = -X_i Abar[i, :i] T_[:i, :i]`` with ``X_i`` the inverse of diagonal block ``i``.
Applying ``T_`` is then one dense product per chunk, ``T_ (c V | gamma Lam K)``, the shape a CPU
or GPU multiplies fastest.

:func:`delta_inference` runs the whole chunk algorithm when no gradient is needed, for the delta
rules with decay ``none`` or ``scalar`` whose decays are mild (see ``scan_chunk``). It walks the
sequence in *segments* of ``G`` chunks (about ``16,384 / (B H S)`` chunks, so one segment's
temporaries are a few MB and stay in cache) and keeps every temporary in buffers allocated once
per call: every batched product writes into a contiguous buffer (strided outputs send torch's
CPU ``bmm`` to a slow per-matrix loop), and fresh multi-MB tensors, which cost page faults on
every call, are avoided. Per segment, with ``M = G B H`` chunk-heads:

1. ``u = c v`` and ``gk = gamma Lam[t-1] k`` into one ``(M, S, V + K)`` buffer ``R``;
   ``kw = k / Lam`` (chunk-local keys), ``qL = Lam q``, ``kd = (Lam[S] / Lam) k``;
2. ``Abar = gk kw^T`` (only its strictly lower part is read), ``T_`` by :func:`ut_inverse`,
   ``[Ut | Wt] = T_ R`` (one product);
3. the chunks in order: ``U_n = Ut_n - Wt_n W^T``, ``W <- Lam[S] W + U_n^T kd_n``;
4. ``y = tril(qL kw^T) U + qL W_start^T`` for all chunks of the segment.

Same result as the general path to rounding; tested against the recurrence.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch

__all__ = ["ut_inverse", "ut_inverse_flops", "delta_inference", "UT_BLOCK", "SEGMENT_ROWS"]

#: Diagonal block size of the UT inverse.
UT_BLOCK = 16

#: Time steps x heads per segment of :func:`delta_inference` (``G B H S`` ~ this).
SEGMENT_ROWS = 16384


def ut_inverse(A: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """``(I + tril(A, -1))^{-1}`` for ``A: (..., S, S)``; only the strictly lower triangle of
    ``A`` is read. With ``out`` (contiguous, ``A``'s shape) the inverse is written there in
    place (no autograd); without, it is built out of place and autograd flows through."""
    S = A.shape[-1]
    b = min(UT_BLOCK, S)
    nb = -(-S // b)
    P = nb * b
    if P != S:  # pad with an identity block: inv(diag(I + A, I)) = diag(inv(I + A), I)
        A = torch.nn.functional.pad(A, (0, P - S, 0, P - S))
    lead = A.shape[:-2]
    blocks = A.unflatten(-2, (nb, b)).unflatten(-1, (nb, b))  # (..., nb, b, nb, b)
    diag = torch.diagonal(blocks, dim1=-4, dim2=-2).movedim(-1, -3)  # (..., nb, b, b)
    eye = torch.eye(b, dtype=A.dtype, device=A.device)
    X = torch.linalg.solve_triangular(
        diag.tril(-1) + eye, eye.expand(diag.shape), upper=False, unitriangular=True
    )  # (..., nb, b, b): inverses of the diagonal blocks
    if out is not None and P == S:
        out.zero_()
        torch.diagonal(out.view(*lead, nb, b, nb, b), dim1=-4, dim2=-2).copy_(X.movedim(-3, -1))
        for i in range(1, nb):
            r = slice(i * b, (i + 1) * b)
            low = X[..., i, :, :] @ (A[..., r, : i * b] @ out[..., : i * b, : i * b])
            out[..., r, : i * b] = low.neg_()
        return out
    Tn = X[..., 0, :, :]
    for i in range(1, nb):
        r = slice(i * b, (i + 1) * b)
        low = -(X[..., i, :, :] @ (A[..., r, : i * b] @ Tn))
        top = torch.cat([Tn, Tn.new_zeros(lead + (i * b, b))], dim=-1)
        Tn = torch.cat([top, torch.cat([low, X[..., i, :, :]], dim=-1)], dim=-2)
    Tn = Tn[..., :S, :S] if P != S else Tn
    if out is not None:
        return out.copy_(Tn)
    return Tn


def ut_inverse_flops(S: int) -> int:
    """Flops of :func:`ut_inverse` for one ``S x S`` matrix: ``b^3 / 3`` per diagonal block
    (triangular inverse) plus, for block row ``i``, ``2 b (i b)^2 + 2 b^2 (i b)`` (the two
    products)."""
    b = min(UT_BLOCK, S)
    nb = -(-S // b)
    return nb * b**3 // 3 + sum(2 * b * (i * b) ** 2 + 2 * b * b * (i * b) for i in range(1, nb))


def _segment(x: torch.Tensor, t: slice, g: int, S: int) -> torch.Tensor:
    """``(B, T, H, X) -> (g, B, H, S, X)``: the ``g`` chunks of time slice ``t``, as a view."""
    return x[:, t].unflatten(1, (g, S)).permute(1, 0, 3, 2, 4)


def delta_inference(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    c: torch.Tensor | float,
    gamma: torch.Tensor | float,
    a: torch.Tensor | None,
    W0: torch.Tensor,
    S: int,
    states_every: int = 0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The delta-rule chunk algorithm without autograd, segment by segment (module docstring).

    ``q, k: (B, T, H, K)``, ``v: (B, T, H, V)``; ``c`` (write), ``gamma`` (correction) and ``a``
    (scalar decay, ``None`` for none): ``(B, T, H)`` tensors or floats; every chunk's decay
    product must be mild (the caller checks). ``W0: (B, H, V, K)``. Runs the ``N = T // S`` whole
    chunks and returns ``y: (B, T, H, V)`` (its last ``T - N S`` steps left unwritten for the
    caller), the state after them, ``(B, H, V, K)``, and, if ``states_every = m > 0``, the states
    after every ``m``-th chunk, ``(N // m, B H, V, K)``.
    """
    B, T, H, K = k.shape
    V = v.shape[-1]
    BH = B * H
    N = T // S
    G = max(1, min(N, SEGMENT_ROWS // (BH * S)))
    f = {"dtype": q.dtype, "device": q.device}
    R = torch.empty(G, B, H, S, V + K, **f)  # [c v | gamma Lam[t-1] k]
    qL, kw = torch.empty(G, B, H, S, K, **f), torch.empty(G, B, H, S, K, **f)
    kd = torch.empty(G, B, H, S, K, **f) if a is not None else kw
    fac = torch.empty(G, B, H, S, 1, **f) if a is not None else None
    Ab, Tb = torch.empty(G * BH, S, S, **f), torch.empty(G * BH, S, S, **f)
    X = torch.empty(G * BH, S, V + K, **f)
    U = torch.empty(G, BH, S, V, **f)
    Ws = torch.empty(G + 1, BH, V, K, **f)  # the states entering each chunk, then the last
    yb = torch.empty(G, B, H, S, V, **f)
    y = v.new_empty(B, T, H, V)
    states = W0.new_empty((N // states_every, BH, V, K)) if states_every else None
    Ws[0].copy_(W0.reshape(BH, V, K))

    for n0 in range(0, N, G):
        g = min(G, N - n0)
        M = g * BH
        t = slice(n0 * S, (n0 + g) * S)
        seg = functools.partial(_segment, t=t, g=g, S=S)

        def col(x: torch.Tensor | float, seg: Callable = seg) -> torch.Tensor | float:
            return seg(x.unsqueeze(-1)) if isinstance(x, torch.Tensor) else x

        Rg, qg, kg, kdg = R[:g], qL[:g], kw[:g], kd[:g]
        ks = seg(k)
        torch.mul(seg(v), col(c), out=Rg[..., :V])
        if a is None:
            torch.mul(ks, col(gamma), out=Rg[..., V:])
            kg.copy_(ks)
            qg.copy_(seg(q))
            lam_S = None
        else:
            Lam = torch.cumprod(col(a), dim=-2)  # (g, B, H, S, 1)
            fg = fac[:g]
            fg[..., :1, :].fill_(1.0)
            fg[..., 1:, :].copy_(Lam[..., :-1, :])
            torch.mul(ks, fg.mul_(col(gamma)), out=Rg[..., V:])
            torch.div(ks, Lam, out=kg)
            torch.mul(seg(q), Lam, out=qg)
            torch.mul(kg, Lam[..., -1:, :], out=kdg)
            lam_S = Lam[..., -1:, :].reshape(g, BH, 1, 1)
        Rf, kf, qf = Rg.view(M, S, V + K), kg.view(M, S, K), qg.view(M, S, K)
        A, Tm, Xm = Ab[:M], Tb[:M], X[:M]
        torch.bmm(Rf[..., V:], kf.transpose(-1, -2), out=A)  # Abar (strictly lower part)
        torch.bmm(ut_inverse(A, out=Tm), Rf, out=Xm)  # [Ut | Wt]
        torch.bmm(qf, kf.transpose(-1, -2), out=A).tril_()  # P, into Abar's buffer
        Xg, kdn = Xm.view(g, BH, S, V + K), kdg.view(g, BH, S, K)
        for n in range(g):
            Un = torch.baddbmm(Xg[n, ..., :V], Xg[n, ..., V:], Ws[n].mT, alpha=-1.0, out=U[n])
            if lam_S is None:
                torch.baddbmm(Ws[n], Un.mT, kdn[n], out=Ws[n + 1])
            else:
                torch.mul(Ws[n], lam_S[n], out=Ws[n + 1]).baddbmm_(Un.mT, kdn[n])
            j = n0 + n + 1  # chunks done
            if states_every and j % states_every == 0:
                states[j // states_every - 1].copy_(Ws[n + 1])
        yf = yb[:g].view(M, S, V)
        torch.bmm(A, U[:g].view(M, S, V), out=yf).baddbmm_(qf, Ws[:g].view(M, V, K).mT)
        seg(y).copy_(yb[:g])
        Ws[0].copy_(Ws[g])
    return y, Ws[0].reshape(B, H, V, K).clone(), states
