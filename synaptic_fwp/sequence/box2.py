r"""The Primer's Box 2: slow weights that make a vanilla FWP do one step of gradient descent.

von Oswald et al. (2023), "Transformers learn in-context by gradient descent" (ICML), as
reviewed in the Primer's Box 2 (Eqs. 26-30). A linear regression task gives demonstrations
``x_t = [z_t, f(z_t)]`` (``z_t`` in ``R^{d_x}``, ``f(z_t)`` in ``R^{d_y}``). With identity
``phi``, one head, ``d_key = d_in = d_out = d_x + d_y`` and the slow weights (Eq. 26)

.. math::
    W^Q = W^K = \begin{pmatrix} I_{d_x} & 0 \\ 0 & 0 \end{pmatrix}, \qquad
    W^V = \eta \begin{pmatrix} 0 & 0 \\ W_0 & -I_{d_y} \end{pmatrix},

the keys and values are ``k_t = q_t = [z_t, 0]`` and ``v_t = [0, eta (W_0 z_t - f(z_t))]``
(Eq. 27), and the vanilla (Hebbian) fast weights become (Eq. 29)
``W_t = [[0, 0], [-Delta W_t, 0]]`` with
``Delta W_t = eta sum_{tau <= t} (f(z_tau) - W_0 z_tau) z_tau^T = -eta grad L_t(W_0)``,
``L_t(W) = 1/2 sum_{tau <= t} ||f(z_tau) - W z_tau||^2``. A query token
``x* = [z*, W_0 z*]`` writes nothing (its value is 0) and reads ``y* = [0, -Delta W_T z*]``
(Eq. 30). With the residual read-out ``p* = [0 | I] x* - [0 | I] y* = W_0 z* + Delta W_T z*``
the FWP's prediction is exactly that of the linear model after one gradient-descent step,
``(W_0 - eta grad L_T(W_0)) z*``. (The Primer writes the learning rate as 1 and reads out
``w_out^T y* = Delta W_T z*``, i.e. drops the ``W_0 z*`` term for small ``W_0``; the residual
term makes the identity exact for any ``W_0``.)

Everything is dimensionless (the regression's own units). Shapes: ``z: (B, T, d_x)``,
``fz: (B, T, d_y)``, ``z_query: (B, Q, d_x)``, ``W0: (d_y, d_x)`` or ``(B, d_y, d_x)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .._validation import check_finite, check_tensor

__all__ = ["Box2Weights", "box2_weights", "box2_tokens", "box2_predict", "gd_one_step"]


@dataclass(frozen=True)
class Box2Weights:
    """Slow weights of Eq. 26 and the residual read-out.

    ``WQ, WK, WV: (..., d, d)`` with ``d = d_x + d_y`` (``q = WQ x``); ``readout: (d_y, d)`` the
    matrix ``[0 | I_{d_y}]`` that picks the target slot; prediction
    ``p* = readout (x* - y*)``.
    """

    WQ: torch.Tensor
    WK: torch.Tensor
    WV: torch.Tensor
    readout: torch.Tensor
    d_x: int
    d_y: int


def _check_lr(eta: object) -> float:
    if isinstance(eta, bool) or not isinstance(eta, (int, float)):
        raise TypeError(f"eta must be a float, got {type(eta).__name__}")
    eta = float(eta)
    if not eta >= 0.0 or eta == float("inf"):
        raise ValueError(f"eta must be a finite number >= 0, got {eta!r}")
    return eta


def box2_weights(W0: torch.Tensor, eta: float = 1.0) -> Box2Weights:
    """Slow weights (Eq. 26) for initial regression weights ``W0: (..., d_y, d_x)`` and learning
    rate ``eta`` (the Primer uses ``eta = 1``; here it scales ``W^V``)."""
    check_tensor("W0", W0, ndim=(2, 3))
    check_finite("W0", W0)
    eta = _check_lr(eta)
    d_y, d_x = W0.shape[-2:]
    d = d_x + d_y
    lead = W0.shape[:-2]
    WQ = W0.new_zeros(d, d)
    WQ[:d_x, :d_x] = torch.eye(d_x, dtype=W0.dtype, device=W0.device)
    WV = W0.new_zeros(*lead, d, d)
    WV[..., d_x:, :d_x] = eta * W0
    WV[..., d_x:, d_x:] = -eta * torch.eye(d_y, dtype=W0.dtype, device=W0.device)
    readout = W0.new_zeros(d_y, d)
    readout[:, d_x:] = torch.eye(d_y, dtype=W0.dtype, device=W0.device)
    return Box2Weights(WQ, WQ.clone(), WV, readout, d_x, d_y)


def _apply(M: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``M x_t`` for every ``t``: ``M: (o, i)`` or ``(B, o, i)``, ``x: (B, T, i)``."""
    return torch.einsum("oi,bti->bto" if M.ndim == 2 else "boi,bti->bto", M, x)


def _check_data(z: torch.Tensor, fz: torch.Tensor, z_query: torch.Tensor, W0: torch.Tensor):
    for name, x in (("z", z), ("fz", fz), ("z_query", z_query)):
        check_tensor(name, x, ndim=3)
        check_finite(name, x)
    check_tensor("W0", W0, ndim=(2, 3))
    B, T, d_x = z.shape
    if fz.shape[:2] != (B, T):
        raise ValueError(f"fz has shape {tuple(fz.shape)}; its first two dims must be z's {(B, T)}")
    d_y = fz.shape[-1]
    if z_query.shape[0] != B or z_query.shape[-1] != d_x:
        raise ValueError(
            f"z_query has shape {tuple(z_query.shape)}, expected (B, Q, d_x) = ({B}, Q, {d_x})"
        )
    if W0.shape[-2:] != (d_y, d_x) or (W0.ndim == 3 and W0.shape[0] != B):
        raise ValueError(
            f"W0 has shape {tuple(W0.shape)}, expected (d_y, d_x) = {(d_y, d_x)} or (B, d_y, d_x)"
        )
    for name, x in (("fz", fz), ("z_query", z_query), ("W0", W0)):
        if x.dtype != z.dtype or x.device != z.device:
            raise TypeError(
                f"{name} has dtype {x.dtype} on {x.device}; z has {z.dtype} on {z.device}"
            )


def box2_tokens(
    z: torch.Tensor, fz: torch.Tensor, z_query: torch.Tensor, W0: torch.Tensor
) -> torch.Tensor:
    """The FWP's input sequence: demonstrations ``[z_t, f(z_t)]`` then queries ``[z*, W0 z*]``.

    Returns ``x: (B, T + Q, d_x + d_y)``.
    """
    _check_data(z, fz, z_query, W0)
    target = _apply(W0, z_query)
    return torch.cat([torch.cat([z, fz], -1), torch.cat([z_query, target], -1)], dim=1)


def box2_predict(
    z: torch.Tensor,
    fz: torch.Tensor,
    z_query: torch.Tensor,
    W0: torch.Tensor | None = None,
    eta: float = 1.0,
    backend: str = "auto",
) -> torch.Tensor:
    """Run the vanilla FWP with the Box 2 slow weights; return its predictions ``(B, Q, d_y)``.

    The FWP reads the demonstrations and then the queries (which write nothing), with
    :func:`synaptic_fwp.scan` (rule ``"hebbian"``, identity ``phi``, one head). Equals
    :func:`gd_one_step` applied to ``z_query`` up to rounding.
    """
    from . import scan

    if W0 is None:
        check_tensor("z", z, ndim=3)
        check_tensor("fz", fz, ndim=3)
        W0 = z.new_zeros(fz.shape[-1], z.shape[-1])
    x = box2_tokens(z, fz, z_query, W0)
    w = box2_weights(W0, eta)
    q = torch.einsum("ij,btj->bti", w.WQ, x).unsqueeze(2)  # (B, T+Q, 1, d)
    k = torch.einsum("ij,btj->bti", w.WK, x).unsqueeze(2)
    v = _apply(w.WV, x).unsqueeze(2)
    y, _ = scan(q, k, v, "hebbian", backend=backend)
    T = z.shape[1]
    xq, yq = x[:, T:], y[:, T:, 0]
    return (xq - yq) @ w.readout.T


def gd_one_step(
    z: torch.Tensor, fz: torch.Tensor, W0: torch.Tensor | None = None, eta: float = 1.0
) -> torch.Tensor:
    """``W_1 = W_0 - eta grad L(W_0)`` for ``L(W) = 1/2 sum_t ||f(z_t) - W z_t||^2``, i.e.
    ``W_0 + eta sum_t (f(z_t) - W_0 z_t) z_t^T``; returns ``(B, d_y, d_x)``."""
    check_tensor("z", z, ndim=3)
    check_tensor("fz", fz, ndim=3)
    eta = _check_lr(eta)
    if W0 is None:
        W0 = z.new_zeros(fz.shape[-1], z.shape[-1])
    err = fz - _apply(W0, z)
    return W0 + eta * torch.einsum("bty,btx->byx", err, z)
