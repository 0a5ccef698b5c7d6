r"""The Primer's Sec. 4.1 circuit: AMPA fast weights programmed by NMDA calcium.

A sensory input ``x_t`` drives presynaptic rates ``q_t = W^Q x_t`` (keys equal queries,
``k_t = q_t``). Postsynaptic neurons fire ``y_t = W_t q_t`` through AMPA conductances ``W``
(the fast weights); their calcium is ``v_t = g(U q_t)`` through NMDA conductances ``U``; the
AMPA weights change by the generalised Hebbian rule ``Delta W_{ji} ~ v_j k_i`` (Eq. 33). With
``g`` linear this *is* the FWP with ``W^V = U W^Q`` and ``W^Q = W^K`` (Irie & Gershman, Sec.
4.1): :meth:`AMPANMDACircuit.simulate` steps the circuit as a neuroscientist writes it and
:meth:`AMPANMDACircuit.as_fwp` gives the slow weights for :func:`synaptic_fwp.scan`; the test
shows both give the same rates and weights.

Variants (``rule``):

- ``"hebbian"``: ``W_t = W_{t-1} + eta v_t (x) k_t``;
- ``"delta"`` (a calcium threshold: the AMPA drive ``W_{t-1} k_t`` sets the level below which
  calcium depresses; Sec. 4.1): ``W_t = W_{t-1} + eta (v_t - W_{t-1} k_t) (x) k_t``;
- ``"decay"`` (turnover, homeostasis; RetNet/Mamba2 form): ``W_t = lambda W_{t-1} + eta v_t (x)
  k_t`` with ``lambda = exp(-dt / tau_decay)``;
- ``"delta_decay"`` (Gated DeltaNet, Table 1 form): ``W_t = lambda W_{t-1} + eta (v_t -
  W_{t-1} k_t) (x) k_t``.

``nmda="mg_block"`` makes the calcium voltage dependent, ``v_t = (U q_t) B(V_t)`` with the Jahr &
Stevens 1990 Mg2+ block ``B`` (:func:`synaptic_fwp.neurons.mg_block`) at the postsynaptic
potential ``V_t = V_rest + r_V (W_{t-1} q_t)`` (``r_V`` volts per unit rate): the value then
depends on ``W`` and the circuit leaves the FWP family; it is simulated step by step.
Read-out ``y_t = W_t q_t`` after the step-t write (the Primer's Eq. 14). Rates are dimensionless
(or Hz), ``eta`` per step, ``tau_decay`` and ``dt`` in s, potentials in V, ``[Mg]`` in mM.
"""

from __future__ import annotations

import math

import torch

from synaptic_fwp import scan
from synaptic_fwp._validation import check_choice, check_positive, check_range, check_tensor
from synaptic_fwp.neurons import mg_block

__all__ = ["AMPANMDACircuit", "VARIANTS"]

VARIANTS = {
    "hebbian": "mlstm",
    "delta": "delta",
    "decay": "mlstm",
    "delta_decay": "gated_delta_table1",
}


class AMPANMDACircuit:
    """Sec. 4.1 circuit with ``W_Q: (n_pre, d_in)`` and ``U: (n_post, n_pre)``.

    ``rule`` in :data:`VARIANTS`; ``eta`` per step (>= 0); ``tau_decay`` (s) and ``dt`` (s) for
    the decay variants; ``nmda`` in ``{"linear", "mg_block"}`` with ``V_rest`` (V), ``r_V`` (V per
    unit rate) and ``mg`` (mM).
    """

    def __init__(
        self,
        W_Q: torch.Tensor,
        U: torch.Tensor,
        rule: str = "hebbian",
        eta: float = 0.1,
        tau_decay: float = 1.0,
        dt: float = 0.01,
        nmda: str = "linear",
        V_rest: float = -0.065,
        r_V: float = 0.005,
        mg: float = 1.0,
    ) -> None:
        check_tensor("W_Q", W_Q, ndim=2)
        check_tensor("U", U, ndim=2)
        if U.shape[1] != W_Q.shape[0]:
            raise ValueError(
                f"U has shape {tuple(U.shape)} but W_Q has {tuple(W_Q.shape)}; U must be "
                "(n_post, n_pre) with n_pre = W_Q.shape[0]"
            )
        check_choice("rule", rule, list(VARIANTS))
        check_choice("nmda", nmda, ["linear", "mg_block"])
        check_range("eta", float(eta), 0.0, None)
        check_positive("tau_decay", float(tau_decay))
        check_positive("dt", float(dt))
        check_positive("mg", float(mg), strict=False)
        self.W_Q, self.U = W_Q, U
        self.rule, self.eta, self.nmda = rule, float(eta), nmda
        self.lam = math.exp(-dt / tau_decay) if "decay" in rule else 1.0
        self.V_rest, self.r_V, self.mg = float(V_rest), float(r_V), float(mg)

    def as_fwp(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The FWP slow weights ``(W^Q, W^K, W^V) = (W_Q, W_Q, U W_Q)`` (Sec. 4.1)."""
        return self.W_Q, self.W_Q, self.U @ self.W_Q

    def simulate(self, x: torch.Tensor, W0: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Step the circuit: ``x: (B, T, d_in)`` -> rates ``q (B, T, n_pre)``, ``y (B, T,
        n_post)``, calcium ``v (B, T, n_post)`` and the final AMPA weights ``W (B, n_post,
        n_pre)``."""
        check_tensor("x", x, ndim=3)
        if x.shape[-1] != self.W_Q.shape[1]:
            raise ValueError(f"x has d_in = {x.shape[-1]}, W_Q expects {self.W_Q.shape[1]}")
        B, T, _ = x.shape
        n_post, n_pre = self.U.shape
        W = x.new_zeros(B, n_post, n_pre) if W0 is None else W0.clone()
        q = x @ self.W_Q.T
        nmda_drive = q @ self.U.T
        ys, vs = [], []
        delta = self.rule in ("delta", "delta_decay")
        for t in range(T):
            k = q[:, t]
            ampa = (W @ k.unsqueeze(-1)).squeeze(-1)  # AMPA drive before the write
            v = nmda_drive[:, t]
            if self.nmda == "mg_block":
                v = v * mg_block(self.V_rest + self.r_V * ampa, self.mg)
            post = v - ampa if delta else v
            W = self.lam * W + self.eta * post.unsqueeze(-1) * k.unsqueeze(-2)
            ys.append((W @ k.unsqueeze(-1)).squeeze(-1))
            vs.append(v)
        return {"q": q, "y": torch.stack(ys, 1), "v": torch.stack(vs, 1), "W": W}

    def run_fwp(
        self, x: torch.Tensor, W0: torch.Tensor | None = None, backend: str = "recurrent"
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The same circuit as an FWP through :func:`synaptic_fwp.scan` (``nmda="linear"``
        only): ``q = k = W^Q x``, ``v = W^V x``; returns ``(y, W)``."""
        if self.nmda != "linear":
            raise ValueError(
                "nmda='mg_block' makes the value depend on W; it is not an FWP of the catalogue. "
                "Use simulate(), or nmda='linear'"
            )
        check_tensor("x", x, ndim=3)
        WQ, WK, WV = self.as_fwp()
        q = (x @ WQ.T).unsqueeze(2)
        k = (x @ WK.T).unsqueeze(2)
        v = (x @ WV.T).unsqueeze(2)
        name = VARIANTS[self.rule]
        kw: dict[str, float] = {"eta": self.eta}
        if name in ("mlstm", "gated_delta_table1"):
            kw["decay"] = self.lam
        init = None if W0 is None else W0.unsqueeze(1)
        y, W = scan(q, k, v, name, initial_state=init, backend=backend, **kw)
        return y[:, :, 0], W[:, 0]
