"""The rule catalogue: one definition per fast-weight rule, shared by every backend.

>>> from synaptic_fwp import rules
>>> rules.names()[:3]
['bcm', 'delta', 'gated_delta']
>>> r = rules.get("gated_delta")
>>> r.needs
('eta', 'decay')

Each rule offers ``step(W, k, v, **gates)``, ``local_loss(W, k, v, **gates)`` and
``transition(k, v, **gates) -> (A, B, C)`` with ``W_t = B W_{t-1} A + C`` (Primer Eq. 31).
``W`` has shape ``(..., V, K)`` (post x pre). Gates: ``eta`` (learning rate), ``decay``
(scalar ``lambda_t``), ``gate`` (vector ``a_t``).

Two published variants differ from the Primer's Table 1, and both forms exist here:
``gated_delta`` (as published, Yang, Kautz & Hatamizadeh 2025: decay first, then the delta
read-out from the decayed state) and ``gated_delta_table1`` (Table 1: error read from
``W_{t-1}``); ``gla`` (as published, Yang et al. 2024: the gate acts along the key/pre dimension,
``W diag(a_t)``) and ``gla_table1`` (Table 1: one factor per row/post neuron, ``diag(a_t) W``).
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch

from .bcm import BCMRule
from .features import FEATURE_MAPS, get_feature_map
from .linear import LinearRule

__all__ = [
    "LinearRule",
    "BCMRule",
    "Rule",
    "get",
    "names",
    "catalogue",
    "psi_2sigmoid",
    "FEATURE_MAPS",
    "get_feature_map",
]

Rule = LinearRule | BCMRule

_PRIMER = "Irie & Gershman, Primer, Table 1"

_CATALOGUE: dict[str, Rule] = {
    "hebbian": LinearRule(
        "hebbian",
        equation="W_t = W_{t-1} + v (x) k",
        loss="-v^T W k",
        source=f"vanilla FWP (Schmidhuber 1992); {_PRIMER}, Eq. 13",
    ),
    "delta": LinearRule(
        "delta",
        correction="delta",
        write="eta",
        equation="W_t = W_{t-1} + eta (v - W_{t-1} k) (x) k",
        loss="1/2 ||v - W k||^2  (step size eta)",
        source=f"DeltaNet (Schlag, Irie & Schmidhuber 2021); Widrow & Hoff 1960; {_PRIMER}",
    ),
    "oja": LinearRule(
        "oja",
        correction="oja",
        write="eta",
        equation="W_t = W_{t-1} + eta v (x) (k - W_{t-1}^T v)",
        loss="-v^T W k + 1/2 ||W^T v||^2  (step size eta)",
        source=f"OjaNet (Irie et al. 2022); Oja 1982; {_PRIMER}",
    ),
    "retnet": LinearRule(
        "retnet",
        decay="scalar",
        constant_decay=None,
        equation="W_t = lambda W_{t-1} + v (x) k  (constant lambda)",
        loss="-v^T W k + (1 - lambda)/2 ||W||_F^2",
        source=f"RetNet (Sun et al. 2023); {_PRIMER}",
    ),
    "mamba2": LinearRule(
        "mamba2",
        decay="scalar",
        equation="W_t = lambda_t W_{t-1} + v (x) k",
        loss="-v^T W k + (1 - lambda_t)/2 ||W||_F^2",
        source=f"Mamba2 (Dao & Gu 2024); {_PRIMER}",
    ),
    "gated_rfa": LinearRule(
        "gated_rfa",
        decay="scalar",
        write="one_minus_decay",
        equation="W_t = lambda_t W_{t-1} + (1 - lambda_t) v (x) k",
        loss="-(1 - lambda_t) v^T W k + (1 - lambda_t)/2 ||W||_F^2",
        source=f"Gated RFA (Peng et al. 2021); {_PRIMER}",
    ),
    "mlstm": LinearRule(
        "mlstm",
        decay="scalar",
        write="eta",
        equation="W_t = lambda_t W_{t-1} + eta_t v (x) k",
        loss="-eta_t v^T W k + (1 - lambda_t)/2 ||W||_F^2",
        source=f"mLSTM in xLSTM (Beck et al. 2024); {_PRIMER}",
    ),
    "gla": LinearRule(
        "gla",
        decay="pre",
        equation="W_t = W_{t-1} diag(a_t) + v (x) k  (gate on the key/pre side, as published)",
        loss="-v^T W k + 1/2 ||W (Diag sqrt(1 - a_t))||_F^2",
        source="GLA as published (Yang, Wang, Shen, Panda & Kim 2024, ICML)",
    ),
    "gla_table1": LinearRule(
        "gla_table1",
        decay="post",
        equation="W_t = (a_t (x) 1) . W_{t-1} + v (x) k  (one factor per row/post neuron)",
        loss="-v^T W k + 1/2 ||(sqrt(1 - a_t) (x) 1) . W||_F^2",
        source=f"GLA as written in {_PRIMER}",
    ),
    "gated_delta": LinearRule(
        "gated_delta",
        decay="scalar",
        correction="delta",
        write="eta",
        decay_first=True,
        equation="W' = lambda_t W_{t-1};  W_t = W' + eta_t (v - W' k) (x) k  (as published)",
        loss="||v - lambda W k||^2 / (2 lambda) + (1 - lambda)/(2 eta) ||W||_F^2  (step eta)",
        source="Gated DeltaNet as published (Yang, Kautz & Hatamizadeh 2025, ICLR)",
    ),
    "gated_delta_table1": LinearRule(
        "gated_delta_table1",
        decay="scalar",
        correction="delta",
        write="eta",
        equation="W_t = lambda_t W_{t-1} + eta_t (v - W_{t-1} k) (x) k",
        loss="1/2 ||v - W k||^2 + (1 - lambda_t)/(2 eta_t) ||W||_F^2  (step eta)",
        source=f"Gated DeltaNet as written in {_PRIMER}",
    ),
    "bcm": BCMRule(),
}


def names() -> list[str]:
    """All rule names, sorted."""
    return sorted(_CATALOGUE)


def catalogue() -> dict[str, Rule]:
    """A copy of the name -> rule mapping."""
    return dict(_CATALOGUE)


def get(name: str | Rule, **params: object) -> Rule:
    """Look a rule up by name and set its parameters.

    Parameters: ``decay`` for ``retnet`` (its constant factor ``lambda``, in ``[0, 1]``);
    ``theta_decay``, ``theta0`` and ``drive`` for ``bcm``. A rule object passes through.
    """
    if isinstance(name, (LinearRule, BCMRule)):
        if params:
            raise TypeError("parameters go with a rule name, not with a rule object")
        return name
    if not isinstance(name, str):
        raise TypeError(
            f"rule must be a rule name (str) or a rule object, got {type(name).__name__}"
        )
    if name not in _CATALOGUE:
        raise ValueError(f"unknown rule {name!r}; known rules: {names()}")
    rule = _CATALOGUE[name]
    if not params:
        return rule
    if isinstance(rule, BCMRule):
        allowed = {"theta_decay", "theta0", "drive"}
        bad = set(params) - allowed
        if bad:
            raise ValueError(
                f"unknown parameter(s) {sorted(bad)} for rule 'bcm'; allowed: {sorted(allowed)}"
            )
        return replace(rule, **params)  # type: ignore[arg-type]
    if set(params) != {"decay"} or rule.decay != "scalar":
        allowed = ["decay"] if rule.decay == "scalar" else []
        raise ValueError(
            f"unknown parameter(s) {sorted(params)} for rule {name!r}; allowed: {allowed}"
        )
    lam = params["decay"]
    if not isinstance(lam, (int, float)) or not 0.0 <= float(lam) <= 1.0 or math.isnan(lam):
        raise ValueError(f"decay must be a number in [0, 1], got {lam!r}")
    return replace(rule, constant_decay=float(lam), params={"decay": float(lam)})


def psi_2sigmoid(beta: torch.Tensor) -> torch.Tensor:
    """``eta = 2 sigmoid(beta)`` in ``(0, 2)``: the delta rule's learning rate that lets the
    transition ``I - eta k k^T`` (unit-norm ``k``) have eigenvalues in ``(-1, 1]`` (Primer Sec. 3.6;
    Grazzi et al. 2025)."""
    return 2.0 * torch.sigmoid(beta)
