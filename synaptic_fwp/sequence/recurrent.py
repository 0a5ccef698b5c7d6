"""The oracle: a rule applied step by step over a sequence, in plain torch.

Every fast path (chunk-wise torch, Triton) is tested against this loop. It calls the rule's own
``step`` so the math lives in one place (:mod:`synaptic_fwp.rules`).

Shapes (after :func:`synaptic_fwp.scan` has validated and broadcast them): ``q, k:
(B, T, H, K)``, ``v: (B, T, H, V)``, gates ``eta, decay: (B, T, H)``, ``gate: (B, T, H, V|K)``,
state ``W: (B, H, V, K)``. Output ``y_t = W_t q_t`` with ``W_t`` after the step-t write (Eq. 14).
"""

from __future__ import annotations

import torch

from ..rules import BCMRule, LinearRule

__all__ = ["scan_recurrent"]


def scan_recurrent(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    rule: LinearRule | BCMRule,
    gates: dict[str, torch.Tensor | None],
    W0: torch.Tensor,
    stride: int = 0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Return ``y: (B, T, H, V)``, ``W_T: (B, H, V, K)`` and, if ``stride > 0``, the states after
    steps ``stride, 2 stride, ...`` stacked as ``(B, T // stride, H, V, K)``."""
    B, T, H, _ = k.shape
    W = W0
    ys = []
    states = []
    is_bcm = isinstance(rule, BCMRule)
    if is_bcm:
        theta = torch.full(
            (B, H, v.shape[-1]), float(rule.theta0), dtype=W.dtype, device=W.device
        )
    for t in range(T):
        g = {n: (x[:, t] if x is not None else None) for n, x in gates.items()}
        if is_bcm:
            y_post = rule.post(W, k[:, t], v[:, t])
            theta = rule.update_threshold(theta, y_post)
            W = rule.step(W, k[:, t], v[:, t], theta=theta, eta=g["eta"])
        else:
            W = rule._step(W, k[:, t], v[:, t], g)
        ys.append((W @ q[:, t].unsqueeze(-1)).squeeze(-1))
        if stride and (t + 1) % stride == 0:
            states.append(W)
    y = torch.stack(ys, dim=1)
    st = torch.stack(states, dim=1) if stride and states else None
    if stride and not states:
        st = W.new_zeros((B, 0) + tuple(W.shape[1:]))
    return y, W, st
