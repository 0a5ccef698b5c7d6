r"""A rate neuron with BCM plasticity and a sliding threshold (Bienenstock, Cooper & Munro 1982).

``y_t = w_{t-1} . x_t`` (linear rate neuron, the fast net's output), with the catalogue rule
:class:`synaptic_fwp.rules.BCMRule` (``drive="output"``):

.. math::
    \theta_t = \lambda_\theta \theta_{t-1} + (1 - \lambda_\theta) y_t^2, \qquad
    w_t = w_{t-1} + \eta\, y_t (y_t - \theta_t)\, x_t ,

``lambda_theta = exp(-dt / tau_theta)`` per presentation. The threshold is a running average of
``y^2``; with a threshold faster than the weights the neuron becomes selective: its fixed points
respond to one input pattern and not to the others (Bienenstock et al. 1982; Intrator & Cooper
1992). This is the same recurrence :func:`synaptic_fwp.scan` runs for rule ``bcm`` (tested).
Units: ``x`` and ``y`` in the units of a rate (dimensionless here), ``theta`` in units of ``y^2``.
"""

from __future__ import annotations

import torch

from synaptic_fwp._validation import check_positive, check_range, check_tensor
from synaptic_fwp.rules import get

__all__ = ["BCMNeuron", "selectivity"]


def selectivity(responses: torch.Tensor) -> torch.Tensor:
    """``1 - mean_p(r_p) / max_p(r_p)`` over the last dim (Bienenstock et al. 1982): 0 for equal
    responses, ``1 - 1/P`` for a response to one pattern only. Negative responses count as 0."""
    r = responses.clamp_min(0)
    return 1 - r.mean(-1) / r.amax(-1).clamp_min(torch.finfo(r.dtype).tiny)


class BCMNeuron:
    """A batch of BCM neurons (one postsynaptic neuron each) driven by a set of patterns.

    ``eta``: learning rate per presentation; ``theta_decay``: ``lambda_theta`` in ``[0, 1)``;
    ``theta0``: initial threshold.
    """

    def __init__(self, eta: float = 5e-3, theta_decay: float = 0.99, theta0: float = 0.0) -> None:
        check_positive("eta", float(eta))
        check_range("theta_decay", float(theta_decay), 0.0, 1.0, high_open=True)
        self.eta = float(eta)
        self.rule = get("bcm", theta_decay=float(theta_decay), theta0=float(theta0), drive="output")

    def run(
        self,
        patterns: torch.Tensor,
        w0: torch.Tensor,
        order: torch.Tensor,
        record_every: int = 1,
    ) -> dict[str, torch.Tensor]:
        """Present ``patterns[order[b, t]]`` to neuron ``b`` at step ``t``.

        ``patterns: (P, n_in)``; ``w0: (B, n_in)``; ``order: (B, T)`` integer indices. Returns
        ``w (B, T', n_in)``, ``theta (B, T')``, ``responses (B, T', P)`` (``w . x_p`` for every
        pattern) and ``y (B, T)`` (the response to the presented pattern), ``T' = T //
        record_every``.
        """
        check_tensor("patterns", patterns, ndim=2)
        check_tensor("w0", w0, ndim=2)
        if order.dtype not in (torch.int64, torch.int32) or order.ndim != 2:
            raise TypeError(
                f"order must be an integer tensor (B, T), got {order.dtype} {tuple(order.shape)}"
            )
        if w0.shape[1] != patterns.shape[1] or order.shape[0] != w0.shape[0]:
            raise ValueError(
                f"shapes patterns {tuple(patterns.shape)}, w0 {tuple(w0.shape)}, order "
                f"{tuple(order.shape)} must be (P, n_in), (B, n_in), (B, T)"
            )
        if bool((order < 0).any()) or bool((order >= patterns.shape[0]).any()):
            raise ValueError(f"order must index patterns, i.e. lie in [0, {patterns.shape[0]})")
        B, T = order.shape
        W = w0.unsqueeze(1)  # (B, 1, n_in): one postsynaptic neuron
        theta = torch.full((B, 1), self.rule.theta0, dtype=w0.dtype)
        ws, thetas, resp, ys = [], [], [], []
        for t in range(T):
            x = patterns[order[:, t]]
            y = self.rule.post(W, x, x)  # W x; the value slot is unused with drive="output"
            theta = self.rule.update_threshold(theta, y)
            W = self.rule.step(W, x, x, theta=theta, eta=self.eta)
            ys.append(y[:, 0])
            if (t + 1) % record_every == 0:
                ws.append(W[:, 0])
                thetas.append(theta[:, 0])
                resp.append(W[:, 0] @ patterns.T)
            if not bool(torch.isfinite(W).all()):
                raise FloatingPointError(
                    f"non-finite weights at step {t} (eta={self.eta} too large?)"
                )
        return {
            "w": torch.stack(ws, 1),
            "theta": torch.stack(thetas, 1),
            "responses": torch.stack(resp, 1),
            "y": torch.stack(ys, 1),
        }
