"""The interface every spiking rule implements, and small shared helpers (broadcasting per-instance
parameters, bounds, parameter checks). See the package docstring for the contract."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

from .._validation import check_choice, check_finite, check_positive

__all__ = ["SpikingRule", "Param", "expand", "check_param", "apply_bounds", "BOUNDS"]

Param = float | torch.Tensor
BOUNDS = ("hard", "soft", "none")


@runtime_checkable
class SpikingRule(Protocol):
    """Structural type of a spiking rule (see :mod:`synaptic_fwp.plasticity`)."""

    name: str
    w_min: float
    w_max: float
    bounds: str
    pre_delay: float
    has_continuous_dynamics: bool

    @property
    def state_shapes(self) -> dict[str, str]: ...

    def init_state(self, W: torch.Tensor) -> dict[str, torch.Tensor]: ...

    def decay(self, state: dict[str, torch.Tensor], dt: Param) -> dict[str, torch.Tensor]: ...

    def advance(
        self, W: torch.Tensor, state: dict[str, torch.Tensor], dt: Param
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]: ...

    def on_pre(
        self, W: torch.Tensor, state: dict[str, torch.Tensor], pre: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]: ...

    def on_post(
        self, W: torch.Tensor, state: dict[str, torch.Tensor], post: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]: ...

    def clip(self, W: torch.Tensor) -> torch.Tensor: ...


def expand(p: Param, trailing: int, ref: torch.Tensor | None = None) -> Param:
    """Give a per-instance parameter of the batch shape ``trailing`` singleton dims on the right.

    A float is returned unchanged; a tensor of shape ``batch`` becomes ``batch + (1,)*trailing``
    so that it broadcasts against a trace of shape ``batch + (n,)`` (``trailing=1``) or a weight
    of shape ``batch + (n_post, n_pre)`` (``trailing=2``). ``ref`` moves it to that dtype/device.
    """
    if isinstance(p, torch.Tensor):
        if ref is not None:
            p = p.to(dtype=ref.dtype, device=ref.device)
        return p.reshape(p.shape + (1,) * trailing)
    return p


def check_param(name: str, value: object, *, positive: bool = False, nonneg: bool = False) -> None:
    """A rule parameter: a real number or a floating tensor, finite, with optional sign."""
    if isinstance(value, bool) or not isinstance(value, (int, float, torch.Tensor)):
        raise TypeError(
            f"{name} must be a float or a torch.Tensor of the batch shape, got "
            f"{type(value).__name__} ({value!r})"
        )
    if isinstance(value, torch.Tensor) and not value.is_floating_point():
        raise TypeError(f"{name} must have a floating dtype, got {value.dtype}")
    v = float(value) if not isinstance(value, torch.Tensor) else value
    check_finite(name, v)
    if positive:
        check_positive(name, v)
    elif nonneg:
        check_positive(name, v, strict=False)


def check_bounds(bounds: str, w_min: float, w_max: float) -> None:
    check_choice("bounds", bounds, BOUNDS)
    for n, v in (("w_min", w_min), ("w_max", w_max)):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise TypeError(f"{n} must be a float, got {type(v).__name__} ({v!r})")
    if not w_min < w_max:
        raise ValueError(f"w_min must be < w_max, got w_min={w_min}, w_max={w_max}")


def apply_bounds(
    W: torch.Tensor,
    dw_plus: torch.Tensor | float,
    dw_minus: torch.Tensor | float,
    bounds: str,
    w_min: float,
    w_max: float,
) -> torch.Tensor:
    """``W + dw_plus - dw_minus`` with the rule's bounds (``dw_plus``, ``dw_minus`` >= 0)."""
    if bounds == "soft":
        W = W + dw_plus * (w_max - W) - dw_minus * (W - w_min)
        return W.clamp(w_min, w_max)
    if isinstance(dw_plus, float) and dw_plus == 0.0:
        W = W - dw_minus
    elif isinstance(dw_minus, float) and dw_minus == 0.0:
        W = W + dw_plus
    else:
        W = W + dw_plus - dw_minus
    if bounds == "hard":
        return W.clamp(w_min, w_max)
    return W
