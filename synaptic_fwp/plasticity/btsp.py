r"""Behavioural timescale synaptic plasticity (BTSP) at CA3 -> CA1 synapses: two forms.

BTSP is *non-Hebbian*: the weight change depends on presynaptic CA3 activity and on an EC3-driven
dendritic plateau in CA1, not on CA1 firing (Bittner et al. 2017, Science 357:1033; Milstein et
al. 2021, eLife 10:e73046). It acts on seconds, so both forms here are *per-lap, rate-based*
rules: a lap's continuous signals are integrated and the weights move once per lap. They do not
use the spike-driven ``on_pre``/``on_post`` interface of :mod:`synaptic_fwp.plasticity`; each
documents its own form:

:class:`MilsteinBTSP` (Milstein et al. 2021, weight-dependent bidirectional model)
    ``ET_i(t)``: the CA3 rate ``r_i`` filtered by a normalised causal exponential (``tau_ET``);
    ``IS(t)``: the plateau gate filtered by a causal exponential (``tau_IS``); each divided by its
    population peak so both lie in ``[0, 1]``. With ``x_i(t) = ET_i(t) IS(t)`` and ``w = W/W_max``
    (``W`` in units of the baseline weight 1, ``W_max = 1 + peak_delta_weight``), one lap gives

    .. math::
        \Delta w_i = k_+ \Big(\int q_+(x_i) dt\Big) (1 - w_i) - k_- \Big(\int q_-(x_i) dt\Big) w_i,

    then ``w`` is clipped to ``[0, 1]``. ``q_\pm`` are sigmoids with threshold ``th`` and slope
    ``2 / half_width``, rescaled to map ``[0, 1]`` onto ``[0, 1]`` (so ``q(0) = 0``). Signals
    ``ET`` and ``IS`` are dimensionless, ``k_\pm`` in 1/s, integrals in s. Parameters: the
    population fit of the authors' published configuration (the shipped table
    ``milstein2021_btsp_params.csv``; ``optimize_biBTSP_synthetic_WD_config.yaml``, ``x0``).
    The normalisation of ``ET`` and ``IS`` to a peak of 1 belongs to the fitted model (their
    model description, ``optimize_biBTSP_synthetic_WD_D.py`` and network simulation normalise;
    the stored ``optimize_biBTSP_synthetic_WD.py`` does not, and with these parameters its
    unnormalised signals, peaks about 0.5 each, give a ten times smaller field).

:class:`PrimerBTSP` (the Primer's FWP reading, Irie & Gershman, Sec. 4.2)
    The fast weights of CA3 -> CA1 are written by the outer product of an EC3-gated instructive
    value ``v(t) = IS(t)`` (one per CA1 neuron) and a CA3 key ``k_i(t) = ET_i(t)``:
    ``dW/dt = eta v (x) k``, so one lap adds ``Delta W = eta \int v(t) k(t)^T dt``. This is the
    Hebbian FWP write ``W_t = W_{t-1} + (eta dt) v_t (x) k_t`` summed over the lap's time steps
    (``synaptic_fwp.scan`` with rule ``"hebbian"`` gives the same result; tested). ``eta`` in
    1/s (``W`` in units of the baseline weight). It only potentiates: it cannot depress an old
    field, which the Milstein rule does.

Every parameter may be a float or a tensor of batch shape ``(B,)`` (parameter sweeps); signals
have shape ``(B, n_pre, T)`` (``ET``) and ``(B, T)`` (``IS``).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, fields, replace
from importlib import resources
from pathlib import Path

import torch

from .._validation import check_choice, check_positive, check_tensor
from .base import Param, check_param

__all__ = [
    "MilsteinBTSP",
    "PrimerBTSP",
    "read_milstein_table",
    "scaled_sigmoid",
    "eligibility_trace",
    "instructive_signal",
    "MILSTEIN_TABLE",
]

MILSTEIN_TABLE = "milstein2021_btsp_params.csv"
_SOURCE = "Milstein, Li, Bittner, Grienberger, Soltesz, Magee & Romani 2021, eLife 10:e73046"
_TABLE_COLUMNS = ("population_fit_x0", "cell_median", "cell_q25", "cell_q75")


def read_milstein_table(path: str | Path | None = None) -> dict[str, dict[str, str]]:
    """Rows of the shipped Milstein et al. 2021 table, keyed by ``parameter``.

    ``path`` defaults to ``synaptic_fwp/datasets/data/milstein2021_btsp_params.csv`` (a copy of
    ``shared/data/physiology``, header kept). Comment lines start with ``#``.
    """
    if path is None:
        ref = resources.files("synaptic_fwp.datasets").joinpath("data", MILSTEIN_TABLE)
        text = ref.read_text(encoding="utf-8")
    else:
        p = Path(path)
        if not p.is_file():
            raise ValueError(f"path must be an existing CSV file, got {str(path)!r}")
        text = p.read_text(encoding="utf-8")
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    return {row["parameter"]: row for row in csv.DictReader(lines)}


def _t(x: Param, ref: torch.Tensor, trailing: int) -> Param:
    """A float stays; a (B,) tensor gets ``trailing`` singleton dims and ``ref``'s dtype."""
    if isinstance(x, torch.Tensor):
        return x.to(dtype=ref.dtype, device=ref.device).reshape(x.shape + (1,) * trailing)
    return float(x)


def scaled_sigmoid(x: torch.Tensor, th: Param, half_width: Param) -> torch.Tensor:
    """Milstein's rescaled sigmoid: ``(s(x) - s(0)) / (s(1) - s(0))``, ``s(x) = 1/(1 +
    exp(-(2/half_width)(x - th)))``; maps ``[0, 1]`` onto ``[0, 1]``.

    ``th`` and ``half_width`` are floats or tensors broadcastable against ``x``."""
    slope = 2.0 / half_width

    def s(z):
        return torch.sigmoid(slope * (z - th))

    zero = torch.zeros((), dtype=x.dtype, device=x.device)
    s0, s1 = s(zero), s(zero + 1.0)
    return (s(x) - s0) / (s1 - s0)


def eligibility_trace(rates: torch.Tensor, dt: float, tau: Param, periodic: bool = True):
    r"""``ET_i(t)``: causal normalised exponential filter of the rates, divided by its population
    peak (so the largest value over inputs and time is 1).

    ``rates: (..., n_pre, T)`` sampled every ``dt`` s; ``tau`` in s, a float or a tensor of the
    leading batch shape. With ``periodic=True`` the rates are one period of a periodic signal
    (running laps at constant speed) and the filter is the exact periodic steady state, a
    circular convolution with ``(1 - a) a^m / (1 - a^T)``, ``a = exp(-dt/tau)``; otherwise a
    causal filter from rest. Returns a tensor like ``rates``.
    """
    check_tensor("rates", rates, ndim=(2, 3))
    check_positive("dt", float(dt))
    check_param("tau", tau, positive=True)
    if isinstance(tau, torch.Tensor) and rates.ndim != 3:
        raise ValueError(
            f"a batched tau (tensor) needs rates of shape (B, n_pre, T), got {tuple(rates.shape)}"
        )
    T = rates.shape[-1]
    m = torch.arange(T, dtype=rates.dtype, device=rates.device)
    tau_t = _t(tau, rates, 2)
    a = torch.exp(-dt / torch.as_tensor(tau_t, dtype=rates.dtype, device=rates.device))
    kern = a**m  # (B, 1, T) or (T,)
    if periodic:
        kern = kern * (1 - a) / (1 - a**T)
        n = T
        et = torch.fft.irfft(torch.fft.rfft(rates, n=n) * torch.fft.rfft(kern, n=n), n=n)
    else:
        kern = kern * (1 - a)
        n = 2 * T
        et = torch.fft.irfft(torch.fft.rfft(rates, n=n) * torch.fft.rfft(kern, n=n), n=n)[..., :T]
    peak = et.amax(dim=(-1, -2), keepdim=True).clamp_min(torch.finfo(et.dtype).tiny)
    return et / peak


def instructive_signal(t: torch.Tensor, duration: float, tau: Param) -> torch.Tensor:
    r"""``IS(t)``: a plateau gate of ``duration`` s starting at ``t = 0``, filtered by a causal
    exponential with time constant ``tau`` (s) and divided by its peak. Exact:
    ``(1 - e^{-t/tau}) / (1 - e^{-D/tau})`` during the plateau, ``e^{-(t-D)/tau}`` after, 0 before.

    ``t: (T,)`` in s; ``tau`` a float or a ``(B,)`` tensor; returns ``(T,)`` or ``(B, T)``.
    """
    check_tensor("t", t, ndim=1)
    check_positive("duration", float(duration))
    check_param("tau", tau, positive=True)
    tau_t = torch.as_tensor(_t(tau, t, 1), dtype=t.dtype, device=t.device)
    tt = t.expand(tau_t.shape[0], -1) if tau_t.ndim else t
    on = (1 - torch.exp(-tt.clamp_min(0) / tau_t)) / (1 - torch.exp(-duration / tau_t))
    off = torch.exp(-(tt - duration).clamp_min(0) / tau_t)
    out = torch.where(tt < duration, on, off)
    return torch.where(tt < 0, torch.zeros_like(out), out)


@dataclass(frozen=True)
class MilsteinBTSP:
    """Milstein et al. 2021 bidirectional, weight-dependent BTSP (see the module docstring).

    Times in s, rates ``k_pot``/``k_dep`` in 1/s; thresholds and half widths dimensionless
    (they act on ``ET * IS`` in ``[0, 1]``). Weights ``W`` in units of the baseline weight (1),
    bounded to ``[w_min, w_max] = [0, 1 + peak_delta_weight]`` (hard bounds after each lap;
    soft bounds ``(1 - w)`` and ``w`` inside the rule).
    """

    tau_et: Param = 1.664103
    tau_is: Param = 0.4370065
    k_pot: Param = 1.109682
    k_dep: Param = 0.4249387
    pot_th: Param = 0.4150117
    pot_half_width: Param = 0.4541096
    dep_th: Param = 0.02618154
    dep_half_width: Param = 0.09977173
    peak_delta_weight: Param = 3.680311
    name: str = "milstein_btsp"
    source: str = _SOURCE

    _TABLE_NAMES = {
        "tau_et": ("local_signal_decay", 1e-3),
        "tau_is": ("global_signal_decay", 1e-3),
        "k_pot": ("k_pot", 1.0),
        "k_dep": ("k_dep", 1.0),
        "pot_th": ("f_pot_th", 1.0),
        "pot_half_width": ("f_pot_half_width", 1.0),
        "dep_th": ("f_dep_th", 1.0),
        "dep_half_width": ("f_dep_half_width", 1.0),
        "peak_delta_weight": ("peak_delta_weight", 1.0),
    }

    def __post_init__(self) -> None:
        for f in self.param_names():
            check_param(f, getattr(self, f), positive=True)

    @classmethod
    def param_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls) if f.name not in ("name", "source"))

    @classmethod
    def from_table(
        cls, column: str = "population_fit_x0", path: str | Path | None = None
    ) -> MilsteinBTSP:
        """Parameters from the shipped table: ``column`` in ``population_fit_x0`` (default, the
        population fit), ``cell_median``, ``cell_q25``, ``cell_q75``; ms converted to s."""
        check_choice("column", column, _TABLE_COLUMNS)
        rows = read_milstein_table(path)
        kw = {}
        for f, (row, scale) in cls._TABLE_NAMES.items():
            kw[f] = float(rows[row][column]) * scale
        return cls(**kw, source=f"{_SOURCE}; table column {column}")

    @classmethod
    def stack(cls, rules: list[MilsteinBTSP], dtype: torch.dtype = torch.float64) -> MilsteinBTSP:
        """One rule whose parameters are ``(B,)`` tensors, from ``B`` rules (a parameter sweep)."""
        if not rules:
            raise ValueError("rules must be a non-empty list of MilsteinBTSP, got []")
        kw = {
            f: torch.tensor([float(getattr(r, f)) for r in rules], dtype=dtype)
            for f in cls.param_names()
        }
        return cls(**kw)

    def with_params(self, **kw: Param) -> MilsteinBTSP:
        bad = set(kw) - set(self.param_names())
        if bad:
            raise ValueError(f"unknown parameter(s) {sorted(bad)}; allowed: {self.param_names()}")
        return replace(self, **kw)

    @property
    def w_max(self) -> Param:
        """Upper weight bound ``1 + peak_delta_weight`` (baseline weight 1)."""
        return 1.0 + self.peak_delta_weight

    def q_pot(self, x: torch.Tensor) -> torch.Tensor:
        """``q_+(x)``: the potentiation sigmoid; ``x: (B, n_pre, T)`` or without ``B``."""
        return scaled_sigmoid(x, _t(self.pot_th, x, 2), _t(self.pot_half_width, x, 2))

    def q_dep(self, x: torch.Tensor) -> torch.Tensor:
        """``q_-(x)``: the depression sigmoid."""
        return scaled_sigmoid(x, _t(self.dep_th, x, 2), _t(self.dep_half_width, x, 2))

    def lap_update(
        self, W: torch.Tensor, et: torch.Tensor, is_: torch.Tensor, dt: float
    ) -> torch.Tensor:
        """One lap: ``W: (B, n_pre)`` (baseline 1), ``et: (B, n_pre, T)``, ``is_: (B, T)``
        sampled every ``dt`` s (trapezoid integrals). Returns the new ``W`` (new tensor)."""
        check_tensor("W", W, ndim=2)
        check_tensor("et", et, ndim=3)
        check_tensor("is_", is_, ndim=2)
        if et.shape[:2] != W.shape or is_.shape != (et.shape[0], et.shape[2]):
            raise ValueError(
                f"shapes W {tuple(W.shape)}, et {tuple(et.shape)}, is_ {tuple(is_.shape)} must be "
                "(B, n_pre), (B, n_pre, T), (B, T)"
            )
        x = et * is_.unsqueeze(1)
        pot = torch.trapezoid(self.q_pot(x), dx=dt, dim=-1)
        dep = torch.trapezoid(self.q_dep(x), dx=dt, dim=-1)
        wmax = _t(self.w_max, W, 1)
        w = W / wmax
        w = w + _t(self.k_pot, W, 1) * pot * (1 - w) - _t(self.k_dep, W, 1) * dep * w
        return w.clamp(0.0, 1.0) * wmax


@dataclass(frozen=True)
class PrimerBTSP:
    """The Primer's FWP form of BTSP: ``dW/dt = eta IS(t) ET(t)``, per lap ``eta int IS ET dt``.

    ``eta`` in 1/s (``W`` in baseline units); ``tau_et``, ``tau_is`` in s as in
    :class:`MilsteinBTSP`. ``w_max`` (default ``inf``) optionally caps the weight (hard bound).
    """

    eta: Param = 1.0
    tau_et: Param = 1.664103
    tau_is: Param = 0.4370065
    w_max: Param = math.inf
    name: str = "primer_btsp"
    source: str = "Irie & Gershman, Primer, Sec. 4.2 (BTSP as an FWP: key CA3, value EC3 gate)"

    def __post_init__(self) -> None:
        check_param("eta", self.eta, nonneg=True)
        check_param("tau_et", self.tau_et, positive=True)
        check_param("tau_is", self.tau_is, positive=True)
        if not (isinstance(self.w_max, float) and math.isinf(self.w_max)):
            check_param("w_max", self.w_max, positive=True)

    @classmethod
    def param_names(cls) -> tuple[str, ...]:
        return ("eta", "tau_et", "tau_is", "w_max")

    @classmethod
    def stack(cls, rules: list[PrimerBTSP], dtype: torch.dtype = torch.float64) -> PrimerBTSP:
        if not rules:
            raise ValueError("rules must be a non-empty list of PrimerBTSP, got []")
        kw = {
            f: torch.tensor([float(getattr(r, f)) for r in rules], dtype=dtype)
            for f in cls.param_names()
        }
        return cls(**kw)

    def with_params(self, **kw: Param) -> PrimerBTSP:
        bad = set(kw) - set(self.param_names())
        if bad:
            raise ValueError(f"unknown parameter(s) {sorted(bad)}; allowed: {self.param_names()}")
        return replace(self, **kw)

    def lap_update(
        self, W: torch.Tensor, et: torch.Tensor, is_: torch.Tensor, dt: float
    ) -> torch.Tensor:
        """``W + eta * trapz(IS * ET) dt``: the lap's sum of FWP writes ``v (x) k`` (one CA1
        neuron, so ``v`` is the scalar ``IS``). Shapes as :meth:`MilsteinBTSP.lap_update`."""
        check_tensor("W", W, ndim=2)
        check_tensor("et", et, ndim=3)
        check_tensor("is_", is_, ndim=2)
        dw = torch.trapezoid(et * is_.unsqueeze(1), dx=dt, dim=-1)
        out = W + _t(self.eta, W, 1) * dw
        wmax = self.w_max
        if isinstance(wmax, torch.Tensor) or not math.isinf(wmax):
            out = torch.minimum(out, torch.as_tensor(_t(wmax, W, 1), dtype=W.dtype))
        return out
