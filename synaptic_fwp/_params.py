"""Per-instance parameters for the network layer (neurons, inputs, synapses, engine).

Any parameter may be a Python number (shared by all instances) or a tensor of shape
``(batch,)`` (one value per instance: a parameter sweep; the engine turns it into a coordinate on
the ``batch`` dim). Values are checked when an object is built; shapes are checked against the
network's batch size when the object is added to a :class:`synaptic_fwp.engine.Network`, i.e.
always before any simulation work.
"""

from __future__ import annotations

import math

import torch

__all__ = ["check_value", "to_batch", "is_swept", "exp_factor"]


def check_value(
    name: str,
    value: object,
    *,
    positive: bool = False,
    nonneg: bool = False,
    allow_none: bool = False,
) -> None:
    """A number or a 0-d/1-d floating tensor, finite, optionally ``> 0`` / ``>= 0``."""
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float, torch.Tensor)):
        raise TypeError(
            f"{name} must be a float or a torch.Tensor of shape (batch,), got "
            f"{type(value).__name__} ({value!r})"
        )
    if isinstance(value, torch.Tensor):
        if value.ndim > 1:
            raise ValueError(
                f"{name} must be a float or a tensor of shape (batch,), got shape "
                f"{tuple(value.shape)}"
            )
        vals = value.detach().to(torch.float64).flatten().tolist()
    else:
        vals = [float(value)]
    for v in vals:
        if not math.isfinite(v):
            raise ValueError(f"{name} must be finite, got {v}")
        if positive and not v > 0:
            raise ValueError(f"{name} must be > 0, got {v}")
        if nonneg and not v >= 0:
            raise ValueError(f"{name} must be >= 0, got {v}")


def is_swept(value: object) -> bool:
    """Whether a parameter is given per instance (a 1-d tensor)."""
    return isinstance(value, torch.Tensor) and value.ndim == 1


def to_batch(
    name: str, value: float | torch.Tensor, batch: int, dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """``value`` as a ``(batch, 1)`` tensor (broadcasts against ``(batch, n)`` states)."""
    if isinstance(value, torch.Tensor):
        if value.ndim == 1 and value.shape[0] != batch:
            raise ValueError(
                f"{name} has shape {tuple(value.shape)} but the network has batch={batch}; a "
                f"per-instance parameter must have shape ({batch},)"
            )
        t = value.detach().to(dtype=dtype, device=device).reshape(-1, 1)
        return t.expand(batch, 1).clone() if t.shape[0] == 1 else t
    return torch.full((batch, 1), float(value), dtype=dtype, device=device)


def exp_factor(
    name: str, tau: float | torch.Tensor, dt: float, batch: int, dtype: torch.dtype,
    device: torch.device,
) -> torch.Tensor:
    """Exact per-step decay factor ``exp(-dt / tau)`` as a ``(batch, 1)`` tensor.

    Computed in float64 with Python's ``math.exp`` per instance, so an instance's factor does not
    depend on which other instances share the batch (bit-identical results, DESIGN.md).
    """
    if isinstance(tau, torch.Tensor):
        vals = tau.detach().to(torch.float64).flatten().tolist()
        if len(vals) not in (1, batch):
            raise ValueError(
                f"{name} has shape {tuple(tau.shape)} but the network has batch={batch}; a "
                f"per-instance parameter must have shape ({batch},)"
            )
        if len(vals) == 1:
            vals = vals * batch
    else:
        vals = [float(tau)] * batch
    return torch.tensor([[math.exp(-dt / v)] for v in vals], dtype=dtype, device=device)


def min_value(value: float | torch.Tensor) -> float:
    """Smallest entry of a parameter (for dt checks)."""
    if isinstance(value, torch.Tensor):
        return float(value.min())
    return float(value)
