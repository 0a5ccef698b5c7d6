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

__all__ = ["check_value", "check_initial", "to_batch", "initial_to_batch", "is_swept",
           "exp_factor"]


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


def check_initial(name: str, value: object, n: int, *, allow_none: bool = False) -> None:
    """An initial state value (``V_init``, ``r_init``): what :func:`check_value` allows, or a
    floating tensor of shape ``(batch, n)`` or ``(1, n)``, one value per neuron (e.g. membrane
    potentials drawn uniformly between reset and threshold, as in Brette et al. 2007's
    benchmark networks), finite. Its first dimension is checked against the network's batch
    when the population is added (:func:`initial_to_batch`)."""
    if isinstance(value, torch.Tensor) and value.ndim == 2:
        if not value.is_floating_point():
            raise TypeError(f"{name} must be a floating tensor, got dtype {value.dtype}")
        if value.shape[1] != n:
            raise ValueError(
                f"{name} has shape {tuple(value.shape)}; allowed: a float, (batch,) per "
                f"instance, or (batch, {n}) / (1, {n}) per neuron (n = {n})"
            )
        if not bool(torch.isfinite(value).all()):
            raise ValueError(f"{name} contains NaN or inf; all entries must be finite")
        return
    if isinstance(value, torch.Tensor) and value.ndim > 2:
        raise ValueError(
            f"{name} has shape {tuple(value.shape)}; allowed: a float, (batch,) per instance, "
            f"or (batch, {n}) / (1, {n}) per neuron"
        )
    check_value(name, value, allow_none=allow_none)


def initial_to_batch(
    name: str, value: float | torch.Tensor, n: int, batch: int, dtype: torch.dtype,
    device: torch.device,
) -> torch.Tensor:
    """An initial value checked by :func:`check_initial` as a tensor that broadcasts against
    ``(batch, n)`` states: ``(batch, n)`` for per-neuron values, else ``(batch, 1)``."""
    if isinstance(value, torch.Tensor) and value.ndim == 2:
        if value.shape[0] not in (1, batch):
            raise ValueError(
                f"{name} has shape {tuple(value.shape)} but the network has batch={batch}; "
                f"per-neuron initial values must have shape ({batch}, {n}) or (1, {n})"
            )
        t = value.detach().to(dtype=dtype, device=device)
        return t.expand(batch, n).clone()
    return to_batch(name, value, batch, dtype, device)


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
