r"""A trainable fast weight programmer sequence layer (Primer Sec. 3.1-3.4, Eqs. 23-24).

The *slow* weights ``W^Q, W^K, W^V`` (and ``w^b`` for a learning rate, gate weights for a decay)
are ``torch.nn`` parameters trained by backpropagation through :func:`synaptic_fwp.scan`; the
*fast* weights ``W_t`` are the scan's state, programmed by any rule of the catalogue:

.. math::
    q_t, k_t, v_t = W^Q x_t, W^K x_t, W^V x_t;\quad \eta_t = \psi(w^b \cdot x_t);\quad
    W_t = \text{rule}(W_{t-1}, \phi(k_t), v_t, \eta_t, \lambda_t);\quad y_t = W_t \phi(q_t).

``psi`` (``eta_range``): ``"(0,2)"`` is ``2 sigmoid`` (negative eigenvalues of the delta
transition ``I - eta k k^T`` for unit keys; Primer Sec. 3.6, Grazzi et al. 2025), ``"(0,1)"``
is ``sigmoid``, ``"one"`` fixes ``eta = 1``. Decays: ``retnet`` learns one constant
``lambda = sigmoid(a_h)`` per head; the data-dependent scalar decays (``mamba2``, ``mlstm``,
``gated_rfa``, ``gated_delta*``) use ``lambda_t = sigmoid(w^a . x_t + b)``; ``gla`` /
``gla_table1`` use a gate vector ``a_t = sigmoid(W^g x_t + b)`` on the key / value side.
The output is ``W^O [y_t^1 ... y_t^H]`` (heads concatenated).
"""

from __future__ import annotations

import torch
from torch import nn

from synaptic_fwp import scan
from synaptic_fwp._validation import check_choice, check_tensor
from synaptic_fwp.rules import BCMRule, get, psi_2sigmoid

__all__ = ["FWPLayer", "FWPClassifier", "ETA_RANGES"]

ETA_RANGES = ("(0,2)", "(0,1)", "one")


class FWPLayer(nn.Module):
    """FWP layer: ``x (B, T, d_model) -> (B, T, d_model)``; see the module docstring.

    Parameters: ``d_model``; ``n_heads``; ``d_key``/``d_value`` per head (default
    ``d_model // n_heads``); ``rule`` (catalogue name, not ``bcm``); ``eta_range``; ``phi``
    (feature map on q and k, default ``"silu_l2"``, the Primer's recommendation);
    ``backend``/``chunk_size`` passed to :func:`synaptic_fwp.scan` (``"auto"``: the chunk-wise
    form where the rule has one and ``T >= 32``, the recurrence otherwise; with autograd the
    chunk form trained 5-15x faster at ``d_model = 32``, ``T = 300``, to float32 rounding;
    ``chunk_size=None``: its choice from the head sizes); ``decay_bias`` initial bias of the
    decay gates (``sigmoid(3) = 0.95``).
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int = 1,
        d_key: int | None = None,
        d_value: int | None = None,
        rule: str = "delta",
        eta_range: str = "(0,2)",
        phi: str = "silu_l2",
        backend: str = "auto",
        chunk_size: int | None = None,
        decay_bias: float = 3.0,
    ) -> None:
        super().__init__()
        for n, x in (("d_model", d_model), ("n_heads", n_heads)):
            if isinstance(x, bool) or not isinstance(x, int) or x < 1:
                raise ValueError(f"{n} must be a positive int, got {x!r}")
        check_choice("eta_range", eta_range, ETA_RANGES)
        self.rule = get(rule)
        if isinstance(self.rule, BCMRule):
            raise ValueError("rule 'bcm' is not a sequence-layer rule; choose a LinearRule name")
        H = n_heads
        K = d_key if d_key is not None else max(d_model // H, 1)
        V = d_value if d_value is not None else max(d_model // H, 1)
        self.H, self.K, self.V = H, K, V
        self.eta_range, self.phi, self.backend, self.chunk_size = (
            eta_range,
            phi,
            backend,
            chunk_size,
        )
        self.q = nn.Linear(d_model, H * K, bias=False)
        self.k = nn.Linear(d_model, H * K, bias=False)
        self.v = nn.Linear(d_model, H * V, bias=False)
        self.o = nn.Linear(H * V, d_model, bias=False)
        needs = self.rule.needs
        self.beta = nn.Linear(d_model, H) if "eta" in needs else None
        self.lam_const = None
        self.lam = None
        self.gate = None
        if "decay" in needs:
            if self.rule.name == "retnet":
                self.lam_const = nn.Parameter(torch.full((H,), float(decay_bias)))
            else:
                self.lam = nn.Linear(d_model, H)
                nn.init.constant_(self.lam.bias, float(decay_bias))
        if "gate" in needs:
            side = K if self.rule.decay == "pre" else V
            self.gate = nn.Linear(d_model, H * side)
            nn.init.constant_(self.gate.bias, float(decay_bias))

    def gates(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The per-step gates the rule needs, from ``x: (B, T, d_model)``."""
        B, T, _ = x.shape
        g: dict[str, torch.Tensor] = {}
        if self.beta is not None:
            b = self.beta(x)
            if self.eta_range == "(0,2)":
                g["eta"] = psi_2sigmoid(b)
            elif self.eta_range == "(0,1)":
                g["eta"] = torch.sigmoid(b)
            else:
                g["eta"] = torch.ones_like(b)
        if self.lam_const is not None:
            g["decay"] = torch.sigmoid(self.lam_const).expand(B, T, self.H)
        if self.lam is not None:
            g["decay"] = torch.sigmoid(self.lam(x))
        if self.gate is not None:
            g["gate"] = torch.sigmoid(self.gate(x)).reshape(B, T, self.H, -1)
        return g

    def forward(self, x: torch.Tensor, return_state: bool = False):
        check_tensor("x", x, ndim=3)
        B, T, _ = x.shape
        q = self.q(x).reshape(B, T, self.H, self.K)
        k = self.k(x).reshape(B, T, self.H, self.K)
        v = self.v(x).reshape(B, T, self.H, self.V)
        y, W = scan(
            q,
            k,
            v,
            self.rule,
            phi=self.phi,
            backend=self.backend,
            chunk_size=self.chunk_size,
            **self.gates(x),
        )
        out = self.o(y.reshape(B, T, self.H * self.V))
        return (out, W) if return_state else out


class FWPClassifier(nn.Module):
    """Token sequence -> per-step class logits through one :class:`FWPLayer`.

    ``x: (B, T)`` integer tokens in ``[0, vocab)``; embedding ``e_t``; with ``micro_steps = n``
    every token is presented ``n`` times to the layer, each time with a learned micro-step
    embedding added, and the output is read at the last presentation: with the delta rule this
    is DeltaProduct_n (Siems et al. 2025; Primer Sec. 3.6), a transition that is a product of
    ``n`` generalised Householder matrices per token. Logits ``W^{out} (o_t + e_t)``: a *linear*
    readout, so the layer's state must carry the answer. Returns ``(B, T, n_classes)``.
    """

    def __init__(
        self, vocab: int, n_classes: int, d_model: int = 16, micro_steps: int = 1, **layer_kw
    ) -> None:
        super().__init__()
        for n, x in (("vocab", vocab), ("n_classes", n_classes), ("micro_steps", micro_steps)):
            if isinstance(x, bool) or not isinstance(x, int) or x < 1:
                raise ValueError(f"{n} must be a positive int, got {x!r}")
        self.vocab = vocab
        self.micro_steps = micro_steps
        self.embed = nn.Embedding(vocab, d_model)
        self.micro = (
            nn.Parameter(0.5 * torch.randn(micro_steps, d_model)) if micro_steps > 1 else None
        )
        self.layer = FWPLayer(d_model, **layer_kw)
        self.readout = nn.Linear(d_model, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.dtype not in (torch.int64, torch.int32):
            raise TypeError(f"x must be an integer tensor of tokens (B, T), got {x!r:.60}")
        if x.ndim != 2:
            raise ValueError(f"x must have shape (B, T), got {tuple(x.shape)}")
        if bool((x < 0).any()) or bool((x >= self.vocab).any()):
            raise ValueError(f"tokens must lie in [0, {self.vocab}), got values outside")
        e = self.embed(x)
        B, T, d = e.shape
        if self.micro is None:
            o = self.layer(e)
        else:
            R = self.micro_steps
            o = self.layer((e.unsqueeze(2) + self.micro).reshape(B, T * R, d))
            o = o.reshape(B, T, R, d)[:, :, -1]
        return self.readout(o + e)
