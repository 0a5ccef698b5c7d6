r"""Hetero-associative key-value memory in fast weights (Primer Box 3; Kohonen 1972).

``P`` pairs ``(k_p, v_p)`` are written one after another into ``W: (V, K)`` by a rule of the
catalogue (:func:`synaptic_fwp.scan`); a query ``q`` reads ``y = W q``. With the Hebbian write
``W = sum_p v_p (x) k_p`` and random unit keys in ``K`` dimensions, reading key ``q = k_s`` gives
``v_s`` plus crosstalk ``sum_{p != s} (k_p . k_s) v_p``; with ``E[(k_p . k_s)^2] = 1/K`` and
independent unit-norm values, the expected relative recall error is

.. math::  E\,\|W k_s - v_s\|^2 / \|v_s\|^2 = (P - 1)/K

(:func:`hebbian_crosstalk_error`). With a scalar decay ``lambda`` the item written ``n`` writes
ago is read with gain ``lambda^n`` (:func:`decay_signal`). The delta rule writes only the error
``v - W k`` (Widrow & Hoff 1960), so presenting the same pair twice leaves the memory unchanged,
where the Hebbian write doubles the stored value (Primer Box 3, fact 2).
"""

from __future__ import annotations

import torch

from synaptic_fwp import scan
from synaptic_fwp._validation import check_tensor
from synaptic_fwp.rules import LinearRule, get

__all__ = [
    "KeyValueMemory",
    "random_pairs",
    "hebbian_crosstalk_error",
    "decay_signal",
    "relative_error",
]


def random_pairs(
    batch: int,
    P: int,
    K: int,
    V: int,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``keys: (batch, P, K)`` and ``values: (batch, P, V)``, i.i.d. Gaussian directions scaled to
    unit norm (uniform on the sphere)."""
    for n, x in (("batch", batch), ("P", P), ("K", K), ("V", V)):
        if isinstance(x, bool) or not isinstance(x, int) or x < 1:
            raise ValueError(f"{n} must be a positive int, got {x!r}")
    k = torch.randn(batch, P, K, generator=generator, dtype=dtype)
    v = torch.randn(batch, P, V, generator=generator, dtype=dtype)
    return k / k.norm(dim=-1, keepdim=True), v / v.norm(dim=-1, keepdim=True)


def hebbian_crosstalk_error(P: torch.Tensor | float, K: int) -> torch.Tensor | float:
    """Expected relative recall error ``(P - 1)/K`` of a Hebbian memory of ``P`` random unit
    pairs with ``K``-dimensional keys (crosstalk theory, see the module docstring)."""
    return (P - 1) / K


def decay_signal(n: torch.Tensor | float, lam: float) -> torch.Tensor | float:
    """Gain ``lambda^n`` of an item written ``n`` writes ago under scalar decay ``lambda``."""
    return lam**n


def relative_error(y: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``||y - v||^2 / ||v||^2`` over the last dim."""
    return ((y - v) ** 2).sum(-1) / (v**2).sum(-1)


class KeyValueMemory:
    """A fast-weight key-value memory with a catalogue rule.

    ``rule``: a rule name or object (``hebbian``, ``delta``, ``oja``, ``retnet``, ...); ``eta``
    and ``decay``: the per-step learning rate and decay factor (floats), as the rule needs;
    ``backend``: passed to :func:`synaptic_fwp.scan`.
    """

    def __init__(
        self,
        rule: str | LinearRule = "delta",
        eta: float | None = None,
        decay: float | None = None,
        backend: str = "recurrent",
    ) -> None:
        self.rule = get(rule)
        self.eta = eta if "eta" in self.rule.needs else None
        if eta is not None and "eta" not in self.rule.needs:
            raise ValueError(f"rule {self.rule.name!r} takes no eta; got eta={eta}")
        self.decay = decay
        self.backend = backend

    def write(
        self,
        keys: torch.Tensor,
        values: torch.Tensor,
        W0: torch.Tensor | None = None,
        stride: int = 0,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Write ``keys: (B, P, K)`` / ``values: (B, P, V)`` in order; return ``W: (B, V, K)`` and,
        with ``stride > 0``, the states after every ``stride`` writes ``(B, P // stride, V, K)``."""
        check_tensor("keys", keys, ndim=3)
        check_tensor("values", values, ndim=3)
        if keys.shape[:2] != values.shape[:2]:
            raise ValueError(
                f"keys {tuple(keys.shape)} and values {tuple(values.shape)} must share (B, P)"
            )
        k = keys.unsqueeze(2)
        v = values.unsqueeze(2)
        init = None if W0 is None else W0.unsqueeze(1)
        kw = {"initial_state": init, "backend": self.backend}
        if self.eta is not None:
            kw["eta"] = self.eta
        if self.decay is not None:
            kw["decay"] = self.decay
        if stride:
            _, W, st = scan(k, k, v, self.rule, return_states=stride, **kw)
            return W[:, 0], st[:, :, 0]
        _, W = scan(k, k, v, self.rule, **kw)
        return W[:, 0], None

    @staticmethod
    def read(W: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
        """``y = W q`` for ``W: (B, V, K)``, ``queries: (B, Q, K)`` -> ``(B, Q, V)``."""
        return queries @ W.transpose(-1, -2)
