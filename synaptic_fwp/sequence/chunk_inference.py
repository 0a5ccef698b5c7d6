r"""The chunk algorithm without autograd, segment by segment; and the UT transform.

Both serve :func:`synaptic_fwp.sequence.chunk.scan_chunk`; the notation is that module's.

:func:`ut_inverse` forms ``T_ = (I + Abar)^{-1}`` for the strictly lower triangular ``Abar`` of
a delta-rule chunk (Yang, Wang, Zhang, Shen & Kim 2024, "Parallelizing linear transformers with
the delta rule over sequence length", Sec. 3): the ``b x b`` diagonal blocks (``b = 16``) are
inverted by a batched triangular solve, then block row ``i`` of the inverse is
``T_[i, :i] = -X_i Abar[i, :i] T_[:i, :i]`` with ``X_i`` the inverse of diagonal block ``i``.
Applying ``T_`` is then dense products per chunk, ``T_ c V`` and ``T_ gamma Lam K``, the shape a CPU
or GPU multiplies fastest. The autograd path uses it too.

:func:`segmented_scan` runs the chunk algorithm when no gradient is needed and every chunk's
decay is mild (the factorised regime of ``scan_chunk``), for every rule the chunk backend
covers. It walks the sequence in *segments* of ``G`` chunks (about ``8,192 / (B H S)`` for the
decay rules, twice that for the delta rules: one segment's temporaries are some MB) and keeps
every temporary in buffers kept between calls (:func:`workspace`, the CPU counterpart of CUDA's
caching allocator): every batched product writes into a contiguous buffer (a strided output
sends torch's CPU ``bmm`` to a slow per-matrix loop), and no multi-MB scratch tensor is
allocated per call (fresh ones cost page faults every time). With ``Lam[t]`` the decay from the
chunk start to step ``t`` (along the gated side; computed for the whole sequence first), each
chunk is

    y  = s_out * (tril(qq kk^T) uu + qq W^T)
    W <- Lam[S] * (W + uu^T kk)

with, for decay ``none``/``scalar``/``pre`` (key side), ``qq = Lam q``, ``kk = k / Lam``,
``uu = u``, ``s_out = 1``; and for ``post`` (value side) ``qq = q``, ``kk = k``, ``uu = u / Lam``,
``s_out = Lam``. The write is ``u = c v``. For the delta rules ``uu`` is the pseudo-value
``U_n = Ut_n - Wt_n W^T`` with ``[Ut | Wt] = T_ (c v | gamma Lam[t-1] k)`` and
``Abar = tril(gamma Lam[t-1] k kk^T, -1)`` (one product ``[gamma Lam[t-1] k ; qq] kk^T`` gives
``Abar`` and ``P = tril(qq kk^T)``), and the state update runs chunk by chunk; for the decay rules
the writes ``uu^T kk`` of all chunks of a segment are one batched product and the loop only
adds them and applies ``Lam[S]``. The state is kept transposed (``W^T``, ``K x V``) so that every
product reads its operands untransposed where it can.

Same results as the general path to rounding; tested against the recurrence.
"""

from __future__ import annotations

import functools
import math
import threading
from collections.abc import Callable, Sequence

import torch

__all__ = ["ut_inverse", "ut_inverse_flops", "segmented_scan", "chunk_cumprod", "workspace",
           "UT_BLOCK", "SEGMENT_ROWS", "SEGMENT_ROWS_DELTA", "WORKSPACE_MAX_BYTES"]

#: Diagonal block size of the UT inverse.
UT_BLOCK = 16

#: Time steps x heads per segment of :func:`segmented_scan` (``G B H S`` ~ this): for the decay
#: rules at B=4 T=4096, 4,096 and 16,384 were 4-6% slower (best of 20, with shared buffers).
SEGMENT_ROWS = 8192

#: The same for the delta rules, whose UT transform and in-loop products gain from larger
#: batches: 16,384 was 4-7% faster than 8,192 at B=4 T=4096 (A/B, with kept buffers), while
#: the decay rules were 2-5% slower with it. Scratch at K=V=64, float32: about 44 MB.
SEGMENT_ROWS_DELTA = 16384

#: Largest CPU workspace (bytes) kept between calls, per thread and slot (:func:`workspace`).
WORKSPACE_MAX_BYTES = 256 * 2**20

_ALIGN = 64  # bytes: each buffer of a workspace starts on a cache line
_kept = threading.local()


def workspace(
    slot: str, shapes: Sequence[tuple[int, ...]], dtype: torch.dtype, device: torch.device
) -> list[torch.Tensor]:
    """Uninitialised contiguous tensors of ``shapes``, carved from one buffer that is kept
    between calls on the CPU (one per thread and ``slot``, up to :data:`WORKSPACE_MAX_BYTES`).

    torch's CPU allocator hands every large tensor fresh pages, and touching them costs page
    faults on every call: about 1 ms per 16 MB here, and more, and more variable, when the
    machine is busy (the GLA chunk path, B=4 T=4096: median 46-52 ms with fresh buffers,
    44-47 ms with kept ones, in alternating runs). On CUDA the caching allocator already reuses
    memory, so other devices get fresh tensors. The tensors are scratch space: valid until
    the next call with the same ``slot`` on this thread, never returned to a caller.
    """
    item = dtype.itemsize
    sizes = [math.prod(sh) * item for sh in shapes]
    offsets, total = [], 0
    for n in sizes:
        offsets.append(total)
        total += -(-n // _ALIGN) * _ALIGN
    if device.type != "cpu" or total > WORKSPACE_MAX_BYTES:
        return [torch.empty(sh, dtype=dtype, device=device) for sh in shapes]
    kept = _kept.__dict__
    buf = kept.get(slot)
    if buf is None or buf.numel() < total + _ALIGN:
        buf = kept[slot] = torch.empty(total + _ALIGN, dtype=torch.uint8)
    start = -buf.data_ptr() % _ALIGN
    return [buf[start + o : start + o + n].view(dtype).view(sh)
            for o, n, sh in zip(offsets, sizes, shapes, strict=True)]


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
    # inverses of the diagonal blocks; a unit lower-triangular solve reads only the strict lower
    # triangle of its matrix (diagonal and upper part are neither read nor differentiated)
    # (torch's triangular solve has no float16/bfloat16 CPU kernel: such inputs solve the small
    # blocks in float32, on every device, so that results do not depend on where they ran)
    low = A.dtype in (torch.float16, torch.bfloat16)
    d32, e32 = (diag.float(), eye.float()) if low else (diag, eye)
    X = torch.linalg.solve_triangular(d32, e32.expand(diag.shape), upper=False, unitriangular=True)
    X = X.to(A.dtype)
    if out is not None and P == S:
        out.zero_()
        blocks_out = out.unflatten(-2, (nb, b)).unflatten(-1, (nb, b))
        torch.diagonal(blocks_out, dim1=-4, dim2=-2).copy_(X.movedim(-3, -1))
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


def segmented_scan(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    side: str,
    delta: bool,
    c: torch.Tensor | float,
    gamma: torch.Tensor | float,
    Lam: torch.Tensor | None,
    W0: torch.Tensor,
    S: int,
    states_every: int = 0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The chunk algorithm without autograd, segment by segment (module docstring).

    ``q, k: (B, T, H, K)``, ``v: (B, T, H, V)``; ``side`` the rule's decay kind (``none``,
    ``scalar``, ``pre``, ``post``), ``delta`` whether it has the delta correction (then ``side``
    is ``none`` or ``scalar``); ``c`` (write) and ``gamma`` (correction): ``(B, T, H)`` tensors or
    floats; ``Lam``: the decay products within each chunk (:func:`chunk_cumprod` of the decay),
    ``(B, N S, H, X)`` (``X = 1`` for ``scalar``, ``K`` for ``pre``, ``V`` for ``post``), ``None``
    for ``none``, mild in every chunk (the caller checks).
    ``W0: (B, H, V, K)``. Runs the ``N = T // S`` whole chunks and returns ``y: (B, T, H, V)``
    (its last ``T - N S`` steps left unwritten, for the caller), the state after them,
    ``(B, H, V, K)``, and, if ``states_every = m > 0``, the states after every ``m``-th chunk,
    ``(N // m, B H, V, K)``.
    """
    B, T, H, K = k.shape
    V = v.shape[-1]
    BH = B * H
    N = T // S
    G = max(1, min(N, (SEGMENT_ROWS_DELTA if delta else SEGMENT_ROWS) // (BH * S)))
    post = side == "post"
    # Buffers for G chunks; a segment of g <= G chunks uses their first g entries. The delta
    # rules stack gamma Lam[t-1] k over Lam q so that one product with kk^T gives Abar and P.
    # Two buffers hold two quantities each, one after the other, to keep a segment's working
    # set small (it outgrows the L2 caches): the outputs yb overwrite kk, read for the last
    # time before them; the products P of the decay rules overwrite the chunks' writes Gw,
    # added into the state before them (3-5% faster than separate buffers, alternating runs).
    rows = G * BH * S
    shapes = {"kk_yb": (rows * max(K, V),), "uu": (G, B, H, S, V),
              "Ws": (G + 1, BH, K, V)}  # Ws: W^T entering each chunk, then the last
    if delta:
        shapes.update(gq=(G, B, H, 2 * S, K),  # [gamma Lam[t-1] k ; Lam q] per chunk
                      AP=(G * BH, 2 * S, S),  # [Abar ; P]
                      Tb=(G * BH, S, S), U=(G, BH, S, V), Wt=(G, BH, S, K))
        if Lam is not None:
            shapes["fac"] = (G, B, H, S, 1)  # gamma_t Lam[t-1]
    else:
        shapes.update(qq=(G, B, H, S, K), Gw_Pb=(G * BH * max(K * V, S * S),))
    bufs = dict(zip(shapes, workspace("segment", list(shapes.values()), q.dtype, q.device),
                    strict=True))
    kk = bufs["kk_yb"][: rows * K].view(G, B, H, S, K)
    yb = bufs["kk_yb"][: rows * V].view(G, B, H, S, V)
    uu, Ws = bufs["uu"], bufs["Ws"]
    if delta:
        gq, AP, Tb, U, Wt = (bufs[n] for n in ("gq", "AP", "Tb", "U", "Wt"))
        fac = bufs.get("fac")
    else:
        qq = bufs["qq"]
        Gw = bufs["Gw_Pb"][: G * BH * K * V].view(G, BH, K, V)
        Pb = bufs["Gw_Pb"][: G * BH * S * S].view(G * BH, S, S)
    y = v.new_empty(B, T, H, V)
    states = W0.new_empty((N // states_every, BH, K, V)) if states_every else None
    Ws[0].copy_(W0.reshape(BH, V, K).mT)

    for n0 in range(0, N, G):
        g = min(G, N - n0)
        M = g * BH
        seg = functools.partial(_segment, t=slice(n0 * S, (n0 + g) * S), g=g, S=S)

        def col(x: torch.Tensor | float, seg: Callable = seg) -> torch.Tensor | float:
            return seg(x.unsqueeze(-1)) if isinstance(x, torch.Tensor) else x

        # ---- chunk-local keys kk, queries qg, writes ug (module docstring)
        ks, qs, kg, ug = seg(k), seg(q), kk[:g], uu[:g]
        qg = gq[:g, ..., S:, :] if delta else qq[:g]
        if isinstance(c, torch.Tensor) or c != 1.0:
            torch.mul(seg(v), col(c), out=ug)
        else:  # a plain copy reads v faster than a product by 1 (GLA, Hebbian)
            ug.copy_(seg(v))
        lam_S = None  # the decay over the whole chunk, shaped to scale W^T: (g, BH, 1|K, 1|V)
        if Lam is None:
            kg.copy_(ks)
            qg.copy_(qs)
        else:
            Lg = seg(Lam)  # (g, B, H, S, X)
            end = Lg[..., -1:, :]
            if post:
                kg.copy_(ks)
                qg.copy_(qs)
                ug.div_(Lg)
                lam_S = end.reshape(g, BH, 1, V)
            else:
                torch.div(ks, Lg, out=kg)
                torch.mul(qs, Lg, out=qg)
                lam_S = end.reshape(g, BH, 1, -1).mT
        kf, qf, uf = kg.view(M, S, K), qg.reshape(M, S, K), ug.view(M, S, V)

        if delta:  # ---- UT transform, then the chunks in order: U_n, and W
            gk = gq[:g, ..., :S, :]
            if Lam is None:
                torch.mul(ks, col(gamma), out=gk)
            else:
                fg = fac[:g]
                fg[..., :1, :].fill_(1.0)
                fg[..., 1:, :].copy_(Lg[..., :-1, :])
                torch.mul(ks, fg.mul_(col(gamma)), out=gk)
            APm = AP[:M]
            torch.bmm(gq[:g].view(M, 2 * S, K), kf.mT, out=APm)  # [Abar ; P]
            Pm = APm[:, S:].tril_()
            Tm = ut_inverse(APm[:, :S], out=Tb[:M])  # reads Abar's strictly lower part
            torch.bmm(Tm, uf, out=U[:g].view(M, S, V))  # Ut
            torch.bmm(Tm, gk.reshape(M, S, K), out=Wt[:g].view(M, S, K))
            kn = kg.view(g, BH, S, K)
            Uu, Wtu, Wu, ku = U.unbind(0), Wt.unbind(0), Ws.unbind(0), kn.unbind(0)
            lu = lam_S.unbind(0) if lam_S is not None else None
            for n in range(g):  # (views by unbind: one call instead of a few per chunk)
                Un = Uu[n].baddbmm_(Wtu[n], Wu[n], alpha=-1.0)
                Wn = torch.baddbmm(Wu[n], ku[n].mT, Un, out=Wu[n + 1])
                if lu is not None:
                    Wn.mul_(lu[n])
                _keep(states, states_every, n0 + n + 1, Wn)
            uf = U[:g].view(M, S, V)
        else:  # ---- the chunks' writes kk^T u at once; the loop adds them and decays
            Gn = Gw[:g]
            torch.bmm(kf.mT, uf, out=Gn.view(M, K, V))
            Gu, Wu = Gn.unbind(0), Ws.unbind(0)
            lu = lam_S.unbind(0) if lam_S is not None else None
            # W <- Lam[S] (W + write): the decay scales the sum while it is in cache, not the
            # writes in a pass of their own (median 2-5% faster, 150 alternating calls)
            for n in range(g):
                Wn = torch.add(Wu[n], Gu[n], out=Wu[n + 1])
                if lu is not None:
                    Wn.mul_(lu[n])
                _keep(states, states_every, n0 + n + 1, Wn)
            Pm = torch.bmm(qf, kf.mT, out=Pb[:M]).tril_()

        # ---- outputs: intra-chunk P u plus inter-chunk qq W^T, then into y
        yf = yb[:g].view(M, S, V)
        torch.bmm(Pm, uf, out=yf).baddbmm_(qf, Ws[:g].view(M, K, V))
        if post:
            yb[:g].mul_(Lg)
        seg(y).copy_(yb[:g])
        Ws[0].copy_(Ws[g])
    W = Ws[0].mT.reshape(B, H, V, K).clone(memory_format=torch.contiguous_format)  # not a view
    if states is not None:
        states = states.mT.contiguous()
    return y, W, states


def chunk_cumprod(a: torch.Tensor, S: int, out: torch.Tensor | None = None) -> torch.Tensor:
    """``Lam[t] = prod_{r <= t} a_r`` within each chunk of ``S`` steps, ``a: (B, N S, H, X)``
    (into ``out``, contiguous, ``a``'s shape, if given).

    For vector gates (``X > 1``) a loop over the ``S`` steps of full-width products (``S``
    ops over ``B N H X`` elements): torch's ``cumprod`` along a dimension that is not the
    innermost ran 3-4x slower here (B=4, H=4, K=64, T=4096: 12 ms against 3.4 ms)."""
    B, T, H, X = a.shape
    av = a.reshape(B, T // S, S, H, X)
    L = torch.empty_like(av) if out is None else out.view(av.shape)
    if X == 1:  # a scalar decay: few elements, torch.cumprod is fast enough
        return torch.cumprod(av, dim=2, out=L).reshape(B, T, H, X)
    Lt, at = L.unbind(2), av.unbind(2)  # the S steps' views in one call each
    Lt[0].copy_(at[0])
    for t in range(1, S):
        torch.mul(Lt[t - 1], at[t], out=Lt[t])
    return L.reshape(B, T, H, X)


def _keep(states: torch.Tensor | None, every: int, j: int, W: torch.Tensor) -> None:
    """Copy the state after chunk ``j`` (1-based) into ``states`` if ``j`` is on the stride."""
    if states is not None and j % every == 0:
        states[j // every - 1].copy_(W)
