r"""Feature maps :math:`\phi` applied to keys and queries (Primer Sec. 3.3-3.4).

``identity``; ``elu1`` (``ELU(x) + 1``, the linear transformer of Katharopoulos et al. 2020);
``relu``; ``silu_l2`` (SiLU followed by L2 normalisation over the key dimension, the Primer's
recommendation after Yang et al. 2024). Each maps ``(..., K) -> (..., K)``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

__all__ = ["FEATURE_MAPS", "get_feature_map"]


def identity(x: torch.Tensor) -> torch.Tensor:
    return x


def elu1(x: torch.Tensor) -> torch.Tensor:
    """``ELU(x) + 1``: positive, as the normalised (Eq. 19) attention needs."""
    return F.elu(x) + 1.0


def relu(x: torch.Tensor) -> torch.Tensor:
    return torch.relu(x)


def silu_l2(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """``SiLU(x) / ||SiLU(x)||_2`` over the last dimension (eigenvalues of the delta transition
    then stay in ``[1 - eta, 1]``)."""
    s = F.silu(x)
    return s / (s.norm(dim=-1, keepdim=True) + eps)


FEATURE_MAPS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "identity": identity,
    "elu1": elu1,
    "relu": relu,
    "silu_l2": silu_l2,
}


def get_feature_map(phi: str | Callable[[torch.Tensor], torch.Tensor] | None):
    """Resolve a feature map by name (or pass a callable through)."""
    if phi is None:
        return identity
    if callable(phi):
        return phi
    if phi not in FEATURE_MAPS:
        raise ValueError(f"phi must be one of {sorted(FEATURE_MAPS)} or a callable, got {phi!r}")
    return FEATURE_MAPS[phi]
