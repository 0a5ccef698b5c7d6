r"""The BCM rule: Hebbian plasticity with a sliding postsynaptic threshold.

.. math::
    \Delta W = \eta \, \big(y \odot (y - \theta)\big) \otimes k, \qquad
    \theta_t = \lambda_\theta \theta_{t-1} + (1 - \lambda_\theta)\, y_t^{2}

(Bienenstock, Cooper & Munro 1982; Intrator & Cooper 1992 for the objective). The threshold is
a running average of ``y^2`` with per-step factor ``theta_decay = exp(-dt / tau_theta)``. It is
the Primer's Sec. 4.1 reading of the delta rule as a calcium threshold: below ``theta`` the
postsynaptic signal depresses, above it potentiates.

``drive`` says what ``y`` is: ``"value"`` (default) takes the value ``v`` as the postsynaptic
activity (the FWP slot of the calcium trace), ``"output"`` uses the fast net's own output
``y = W_{t-1} k`` (the classic BCM neuron). With ``drive="output"`` and ``theta`` held fixed the
step is one gradient step, learning rate ``eta``, on the Intrator-Cooper local loss
``L(W) = -sum_j (y_j^3 / 3 - theta_j y_j^2 / 2)``, ``y = W k``. With ``drive="value"`` the
postsynaptic signal does not depend on ``W`` and the loss is the Hebbian similarity with the
BCM-modulated value, ``L(W) = -(y (y - theta))^T W k``.

Units: ``y`` in the units of the postsynaptic rate (e.g. Hz); ``theta`` in units of ``y^2``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["BCMRule"]


@dataclass(frozen=True)
class BCMRule:
    """BCM with a sliding threshold; not of the Eq. 31 form when ``drive="output"``."""

    name: str = "bcm"
    theta_decay: float = 0.99
    theta0: float = 0.0
    drive: str = "value"
    equation: str = "dW = eta (y (y - theta)) (x) k,  theta_t = l theta_{t-1} + (1 - l) y_t^2"
    loss: str = "-(y (y - theta))^T W k  [value drive];  -sum(y^3/3 - theta y^2/2), y = W k"
    source: str = "Bienenstock, Cooper & Munro 1982, J Neurosci 2:32; Intrator & Cooper 1992"

    decay: str = "none"
    correction: str = "bcm"
    has_chunk_form: bool = False

    def __post_init__(self) -> None:
        if self.drive not in ("value", "output"):
            raise ValueError(f"drive must be 'value' or 'output', got {self.drive!r}")
        if not 0.0 <= self.theta_decay <= 1.0:
            raise ValueError(f"theta_decay must lie in [0, 1], got {self.theta_decay}")

    @property
    def needs(self) -> tuple[str, ...]:
        return ("eta",)

    @property
    def uses_eta(self) -> bool:
        return True

    def post(self, W: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """The postsynaptic activity ``y`` the rule reads."""
        if self.drive == "output":
            return (W @ k.unsqueeze(-1)).squeeze(-1)
        return v

    def update_threshold(self, theta: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``theta_t = l theta_{t-1} + (1 - l) y_t^2``."""
        return self.theta_decay * theta + (1.0 - self.theta_decay) * y**2

    def step(
        self,
        W: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        *,
        theta: torch.Tensor | float = 0.0,
        eta: torch.Tensor | float | None = None,
        **_: object,
    ) -> torch.Tensor:
        """``W + eta (y (y - theta)) (x) k`` with ``theta`` given (shape ``(..., V)`` or scalar)."""
        eta = 1.0 if eta is None else eta
        if isinstance(eta, torch.Tensor):
            eta = eta.unsqueeze(-1).unsqueeze(-1)
        y = self.post(W, k, v)
        return W + eta * (y * (y - theta)).unsqueeze(-1) * k.unsqueeze(-2)

    def local_loss(
        self,
        W: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        *,
        theta: torch.Tensor | float = 0.0,
        eta: torch.Tensor | float | None = None,
        **_: object,
    ) -> torch.Tensor:
        """The loss whose gradient step (learning rate ``eta``, ``theta`` fixed) is :meth:`step`."""
        if isinstance(theta, torch.Tensor):
            theta = theta.detach()
        if self.drive == "output":
            y = (W @ k.unsqueeze(-1)).squeeze(-1)
            return -(y**3 / 3 - theta * y**2 / 2).sum(-1)
        m = (v * (v - theta)).detach()
        return -(m * (W @ k.unsqueeze(-1)).squeeze(-1)).sum(-1)

    def gd_lr(self, g: dict) -> torch.Tensor | float:
        return 1.0 if g.get("eta") is None else g["eta"]

    def transition(
        self,
        k: torch.Tensor,
        v: torch.Tensor,
        *,
        theta: torch.Tensor | float = 0.0,
        eta: torch.Tensor | float | None = None,
        **_: object,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Eq. 31 for the value-driven rule: ``A = I``, ``B = I``, ``C = eta y(y-theta) (x) k``."""
        if self.drive == "output":
            raise ValueError(
                "bcm with drive='output' is not linear in W (y = W k enters squared): "
                "it has no transition of the Eq. 31 form; use drive='value'"
            )
        K, V = k.shape[-1], v.shape[-1]
        lead = torch.broadcast_shapes(k.shape[:-1], v.shape[:-1])
        eta = 1.0 if eta is None else eta
        if isinstance(eta, torch.Tensor):
            eta = eta.unsqueeze(-1).unsqueeze(-1)
        A = torch.eye(K, dtype=k.dtype, device=k.device).expand(*lead, K, K).clone()
        B = torch.eye(V, dtype=k.dtype, device=k.device).expand(*lead, V, V).clone()
        C = eta * (v * (v - theta)).unsqueeze(-1) * k.unsqueeze(-2)
        return A, B, C

    def describe(self) -> str:
        return f"{self.name}: {self.equation}  (loss: {self.loss}; source: {self.source})"
