r"""Linear fast-weight rules as data: one frozen spec per rule of the Primer's Table 1.

Every rule here has the canonical form of the Primer's Eq. 31,

.. math::  W_t = B_t \, W_{t-1} \, A_t + C_t ,

with ``W`` of shape ``(..., V, K)`` (post x pre, ``d_out x d_key``), built from four choices:

``decay``
    where the forgetting factor acts: ``"none"``; ``"scalar"`` (``lambda_t I``; a constant for
    RetNet); ``"post"`` (``diag(a_t)`` on the left, one factor per row/postsynaptic neuron, as in
    Table 1's GLA); ``"pre"`` (``diag(a_t)`` on the right, one factor per key/presynaptic
    input, as GLA is published, Yang et al. 2024).
``correction``
    ``"none"`` (Hebbian write ``v (x) k``); ``"delta"`` (``A = I - c k k^T``, error-correcting,
    Widrow-Hoff); ``"oja"`` (``B = I - c v v^T``, Oja 1982).
``write``
    the coefficient ``c_t`` of the write ``c_t v (x) k``: ``"one"``, ``"eta"`` or
    ``"one_minus_decay"`` (Gated RFA).
``decay_first``
    Gated DeltaNet as published (Yang et al. 2025) decays first and reads the error from the
    decayed state, ``W' = lambda W; W_t = W' + eta (v - W' k) (x) k``; Table 1 reads it from
    ``W_{t-1}``: ``W_t = lambda W + eta (v - W k) (x) k``.

From the spec follow :meth:`LinearRule.step` (one update), :meth:`LinearRule.local_loss` (the
last column of Table 1; one gradient step on it with learning rate ``eta`` for the correction
rules and 1 otherwise reproduces ``step``, Appendix A), :meth:`LinearRule.transition`
(``A, B, C`` of Eq. 31) and, in :mod:`synaptic_fwp.scan`, the choice of chunk algorithm and the
Triton kernel's compile-time flags.

Gates (per-step, broadcast over the leading dims of ``W``): ``eta`` (learning rate, ``>= 0``),
``decay`` (scalar ``lambda_t`` in ``[0, 1]``), ``gate`` (vector ``a_t`` in ``[0, 1]``, shape
``(..., V)`` for ``decay="post"`` or ``(..., K)`` for ``decay="pre"``). Quantities are
dimensionless per-step factors exactly as the Primer writes them; continuous-time models convert
``lambda = exp(-dt / tau)`` before calling.

Source: K. Irie & S. J. Gershman, "Fast weight programming and linear transformers: from machine
learning to neurobiology" (the Primer), Table 1, Eq. 31 and Appendix A.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch

__all__ = ["LinearRule"]

Decay = Literal["none", "scalar", "post", "pre"]
Correction = Literal["none", "delta", "oja"]
Write = Literal["one", "eta", "one_minus_decay"]


def _outer(v: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """``v (x) k``: (..., V), (..., K) -> (..., V, K)."""
    return v.unsqueeze(-1) * k.unsqueeze(-2)


def _write(decayed: torch.Tensor, c: torch.Tensor | float, a: torch.Tensor,
           b: torch.Tensor, inplace: bool = False) -> torch.Tensor:
    """``decayed + c a (x) b`` in one pass over the state (``addcmul``; ``c`` of shape
    ``(...)`` or a float, folded into ``a``): no ``V x K`` temporaries, which for a large state
    cost more than the arithmetic (a 32 x 1,000 x 1,000 rate network: 3 passes -> 1); with
    ``inplace``, into ``decayed`` itself."""
    if isinstance(c, torch.Tensor):
        a = c.unsqueeze(-1) * a
    elif c != 1.0:
        a = c * a
    if inplace:
        return decayed.addcmul_(a.unsqueeze(-1), b.unsqueeze(-2))
    return torch.addcmul(decayed, a.unsqueeze(-1), b.unsqueeze(-2))


def _s(x: torch.Tensor) -> torch.Tensor:
    """A per-instance scalar gate of shape (...) broadcast against (..., V, K)."""
    return x.unsqueeze(-1).unsqueeze(-1)


@dataclass(frozen=True)
class LinearRule:
    """A rule of the Eq. 31 family, described by data (see the module docstring)."""

    name: str
    decay: Decay = "none"
    correction: Correction = "none"
    write: Write = "one"
    decay_first: bool = False
    constant_decay: float | None = None
    equation: str = ""
    loss: str = ""
    source: str = ""
    params: dict = field(default_factory=dict, compare=False)

    # ------------------------------------------------------------------ gates
    @property
    def uses_eta(self) -> bool:
        """Whether the rule takes a learning rate ``eta``."""
        return self.write == "eta"

    @property
    def needs(self) -> tuple[str, ...]:
        """Names of the gates the rule reads: a subset of ``("eta", "decay", "gate")``."""
        out: list[str] = []
        if self.uses_eta:
            out.append("eta")
        if self.decay == "scalar":
            out.append("decay")
        if self.decay in ("post", "pre"):
            out.append("gate")
        return tuple(out)

    @property
    def has_chunk_form(self) -> bool:
        """Whether a chunk-wise parallel form exists here: all rules but Oja's (its correction is
        on the left) and a delta correction combined with a vector gate (not in the catalogue)."""
        if self.correction == "oja":
            return False
        return not (self.correction == "delta" and self.decay in ("pre", "post"))

    def resolve(
        self,
        ref: torch.Tensor,
        eta: torch.Tensor | float | None = None,
        decay: torch.Tensor | float | None = None,
        gate: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor | None]:
        """Fill defaults: ``eta`` 1 where unused or omitted; ``decay`` from ``constant_decay``."""

        def t(x: torch.Tensor | float) -> torch.Tensor:
            if isinstance(x, torch.Tensor):
                return x.to(ref.dtype)
            return torch.tensor(float(x), dtype=ref.dtype, device=ref.device)

        out: dict[str, torch.Tensor | None] = {"eta": None, "decay": None, "gate": None}
        if self.uses_eta:
            out["eta"] = t(1.0 if eta is None else eta)
        if self.decay == "scalar":
            if decay is None:
                if self.constant_decay is None:
                    raise ValueError(
                        f"rule {self.name!r} needs decay (the per-step factor lambda_t in [0, 1]); "
                        "got None"
                    )
                decay = self.constant_decay
            out["decay"] = t(decay)
        if self.decay in ("post", "pre"):
            if gate is None:
                side = "V (post)" if self.decay == "post" else "K (pre)"
                raise ValueError(
                    f"rule {self.name!r} needs gate (a per-step vector a_t in [0, 1] of length "
                    f"{side}); got None"
                )
            out["gate"] = t(gate)
        return out

    # ------------------------------------------------------------ the update
    def write_coef(self, g: dict[str, torch.Tensor | None]) -> torch.Tensor | float:
        """``c_t`` of the write ``c_t v (x) k``."""
        if self.write == "eta":
            return g["eta"]  # type: ignore[return-value]
        if self.write == "one_minus_decay":
            return 1.0 - g["decay"]  # type: ignore[operator]
        return 1.0

    def apply_decay(self, W: torch.Tensor, g: dict[str, torch.Tensor | None],
                    out: torch.Tensor | None = None) -> torch.Tensor:
        """``B W A`` restricted to the decay part: ``lambda W``, ``diag(a) W`` or ``W diag(a)``
        (into ``out`` if given; it may be ``W`` itself)."""
        if self.decay == "scalar":
            f = _s(g["decay"])  # type: ignore[arg-type]
        elif self.decay == "post":
            f = g["gate"].unsqueeze(-1)  # type: ignore[union-attr]
        elif self.decay == "pre":
            f = g["gate"].unsqueeze(-2)  # type: ignore[union-attr]
        else:
            return W if out is None or out is W else out.copy_(W)
        return W * f if out is None else torch.mul(W, f, out=out)

    def step(
        self,
        W: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        *,
        eta: torch.Tensor | float | None = None,
        decay: torch.Tensor | float | None = None,
        gate: torch.Tensor | None = None,
        out: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """One update ``W_{t-1} -> W_t``; ``W: (..., V, K)``, ``k: (..., K)``, ``v: (..., V)``.

        ``eta`` and ``decay`` have shape ``(...)`` (or are floats); ``gate`` has shape
        ``(..., V)`` (post decay) or ``(..., K)`` (pre decay). ``out``: write ``W_t`` there (it
        may be ``W`` itself, updated in place: for a large state this saves allocating a new
        one at every step, which costs more than the update; not for autograd).
        """
        g = self.resolve(W, eta, decay, gate)
        return self._step(W, k, v, g, out)

    def _step(self, W, k, v, g, out=None):  # noqa: ANN001 - resolved gates; the oracle's hot path
        c = self.write_coef(g)
        if self.decay_first:  # the correction reads the decayed state
            W = self.apply_decay(W, g, out)
        if self.correction == "delta":
            a, b = v - (W @ k.unsqueeze(-1)).squeeze(-1), k
        elif self.correction == "oja":
            a, b = v, k - (W.transpose(-1, -2) @ v.unsqueeze(-1)).squeeze(-1)
        else:
            a, b = v, k
        decayed = W if self.decay_first else self.apply_decay(W, g, out)
        return _write(decayed, c, a, b, inplace=out is not None)

    # ------------------------------------------------------------ local loss
    def gd_lr(self, g: dict[str, torch.Tensor | None]) -> torch.Tensor | float:
        """Learning rate of the gradient step on :meth:`local_loss` that gives :meth:`step`."""
        return g["eta"] if self.correction != "none" else 1.0  # type: ignore[return-value]

    def local_loss(
        self,
        W: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        *,
        eta: torch.Tensor | float | None = None,
        decay: torch.Tensor | float | None = None,
        gate: torch.Tensor | None = None,
    ) -> torch.Tensor:
        r"""Table 1's local loss :math:`\mathcal{L}_t(W)`, one value per leading index ``(...)``.

        ``W_t = W_{t-1} - lr * dL/dW (W_{t-1})`` with ``lr = eta`` for the delta and Oja rules and
        ``lr = 1`` otherwise. The decay adds ``(1/(2 lr)) ||sqrt(1 - a) . W||_F^2``.
        For Gated DeltaNet as published the data term is ``||v - lambda W k||^2 / (2 lambda)``.
        """
        g = self.resolve(W, eta, decay, gate)
        Wk = (W @ k.unsqueeze(-1)).squeeze(-1)
        if self.correction == "delta":
            if self.decay_first:
                lam = g["decay"]
                data = ((v - lam.unsqueeze(-1) * Wk) ** 2).sum(-1) / (2 * lam)
            else:
                data = 0.5 * ((v - Wk) ** 2).sum(-1)
        elif self.correction == "oja":
            Wtv = (W.transpose(-1, -2) @ v.unsqueeze(-1)).squeeze(-1)
            data = -(v * Wk).sum(-1) + 0.5 * (Wtv**2).sum(-1)
        else:
            c = self.write_coef(g)
            data = -c * (v * Wk).sum(-1)
        lr = self.gd_lr(g)
        if self.decay == "none":
            return data
        if self.decay == "scalar":
            reg = 0.5 * (1 - g["decay"]) * (W**2).sum((-1, -2))
        elif self.decay == "post":
            reg = 0.5 * ((1 - g["gate"]).unsqueeze(-1) * W**2).sum((-1, -2))
        else:
            reg = 0.5 * ((1 - g["gate"]).unsqueeze(-2) * W**2).sum((-1, -2))
        return data + reg / lr

    # ------------------------------------------------------------ transition
    def transition(
        self,
        k: torch.Tensor,
        v: torch.Tensor,
        *,
        eta: torch.Tensor | float | None = None,
        decay: torch.Tensor | float | None = None,
        gate: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(A, B, C)`` of Eq. 31, dense.

        Shapes: ``A: (..., K, K)``, ``B: (..., V, V)``, ``C: (..., V, K)``.
        """
        g = self.resolve(k, eta, decay, gate)
        K, V = k.shape[-1], v.shape[-1]
        lead = torch.broadcast_shapes(k.shape[:-1], v.shape[:-1])
        eyeK = torch.eye(K, dtype=k.dtype, device=k.device).expand(*lead, K, K)
        eyeV = torch.eye(V, dtype=k.dtype, device=k.device).expand(*lead, V, V)
        A, B = eyeK.clone(), eyeV.clone()
        if self.decay == "scalar":
            B = _s(g["decay"]) * B
        elif self.decay == "post":
            B = torch.diag_embed(g["gate"].expand(*lead, V))
        elif self.decay == "pre":
            A = torch.diag_embed(g["gate"].expand(*lead, K))
        c = self.write_coef(g)
        cs = _s(c) if isinstance(c, torch.Tensor) else c
        if self.correction == "delta":
            kk = _outer(k, k)
            if self.decay_first:  # lambda W (I - c k k^T): B = lambda I, A = I - c k k^T
                A = A - cs * kk
            else:  # lambda W - c W k k^T = W (lambda I - c k k^T): fold the decay into A
                A = B[..., :1, :1] * eyeK - cs * kk if self.decay == "scalar" else A - cs * kk
                if self.decay == "scalar":
                    B = eyeV.clone()
        elif self.correction == "oja":
            B = B - cs * _outer(v, v)
        C = cs * _outer(v, k)
        return A, B, C

    def describe(self) -> str:
        return f"{self.name}: {self.equation}  (loss: {self.loss}; source: {self.source})"
