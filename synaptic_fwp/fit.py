r"""Batched fitting of plasticity-rule parameters to physiology data (layer 7 of DESIGN.md).

Objective: the SEM-weighted chi-square of the model's prediction :math:`m_i(\theta)` at the
data points against the measured means :math:`y_i` with standard errors :math:`s_i`,

.. math:: \chi^2(\theta) = \sum_{i=1}^{n} \left(\frac{m_i(\theta) - y_i}{s_i}\right)^2 ,

which is :math:`-2 \log L` up to a constant for independent Gaussian errors of known SD
:math:`s_i`. Hence :math:`\mathrm{AIC} = \chi^2 + 2k` and :math:`\mathrm{BIC} = \chi^2 + k\ln n`
(:math:`k` free parameters, :math:`n` points; Akaike 1974, Schwarz 1978; Burnham & Anderson 2002,
*Model Selection and Multimodel Inference*, Sec. 2.2), and
:math:`\mathrm{RMSE} = \sqrt{\tfrac1n\sum_i (m_i - y_i)^2}` in the data's units.

Search (batched: a whole population of candidate parameter sets is ONE model call, i.e. one
engine/protocol run with the candidates on the batch axis):

1. global: :func:`scipy.optimize.differential_evolution` with ``vectorized=True`` and
   ``updating='deferred'`` (Storn & Price 1997), seeded, over the free parameters mapped to the
   unit box (linearly, or in log10 for parameters spanning decades);
2. local polish: :func:`scipy.optimize.least_squares` (trust-region reflective, bounded) on the
   weighted residuals :math:`(m_i - y_i)/s_i`, its finite-difference Jacobian evaluated as one
   batched call of ``k + 1`` candidate sets;
3. confidence intervals: parametric bootstrap (Efron & Tibshirani 1993, Ch. 6): synthetic data
   :math:`y^*_b = m(\hat\theta) + s\,\varepsilon_b`, :math:`\varepsilon_b \sim N(0, I)`, each
   refitted from :math:`\hat\theta` by a Levenberg-Marquardt search run for all replicates at
   once (:func:`batched_least_squares`); percentile intervals.

A *model* (:class:`Model`) maps a batch of parameter sets and the data's conditions to
predictions: ``predict(params, conditions) -> (S, n)`` with ``params[name]`` of shape ``(S,)``.
:func:`pairing_model` builds one from a spiking rule of :mod:`synaptic_fwp.plasticity` and the
pairing protocol :func:`synaptic_fwp.protocols.pairing`.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import xarray as xr
from scipy.optimize import differential_evolution, least_squares

__all__ = [
    "Model",
    "pairing_model",
    "fit",
    "evaluate",
    "fine_grid",
    "batched_least_squares",
    "data_arrays",
]

#: weighted residual given to non-finite predictions during the search (they never win)
_BAD_RESIDUAL = 1e12


@dataclasses.dataclass(frozen=True)
class Model:
    """A batched model of a measurement: ``predict(params, conditions) -> (S, n)`` array.

    ``params`` maps every name of :attr:`defaults` to a float64 array of shape ``(S,)`` (one
    entry per candidate parameter set); ``conditions`` maps each condition of the dataset
    (e.g. ``freq`` in Hz, ``dt`` in s) to a float64 array of shape ``(n,)``. The prediction is
    in the units of the dataset's measure. ``defaults`` give the value of every parameter that
    is neither fitted nor fixed; ``units`` the SI unit of each parameter.
    """

    name: str
    predict: Callable[[dict[str, np.ndarray], dict[str, np.ndarray]], Any]
    defaults: Mapping[str, float]
    units: Mapping[str, str] = dataclasses.field(default_factory=dict)
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"name must be a non-empty str, got {self.name!r}")
        if not callable(self.predict):
            raise TypeError(f"predict must be callable, got {type(self.predict).__name__}")
        for k, v in self.defaults.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"defaults[{k!r}] must be a finite float, got {v!r}")

    def __call__(self, params: Mapping[str, Any], conditions: Mapping[str, Any]) -> np.ndarray:
        """Predictions ``(S, n)`` for ``params`` (each broadcast to ``(S,)``; missing ones take
        :attr:`defaults`)."""
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            raise ValueError(
                f"params {unknown} are not parameters of model {self.name!r}; "
                f"allowed: {sorted(self.defaults)}"
            )
        arrs = {k: np.atleast_1d(np.asarray(v, dtype=np.float64)) for k, v in params.items()}
        S = max([a.shape[0] for a in arrs.values()] + [1])
        full = {k: np.broadcast_to(arrs.get(k, np.float64(v)), (S,)).astype(np.float64)
                for k, v in self.defaults.items()}
        cond = {k: np.asarray(v, dtype=np.float64) for k, v in conditions.items()}
        n = len(next(iter(cond.values()))) if cond else 0
        out = np.asarray(self.predict(full, cond), dtype=np.float64)
        if out.shape != (S, n):
            raise ValueError(
                f"model {self.name!r} returned predictions of shape {out.shape}; expected "
                f"(S, n) = {(S, n)}"
            )
        return out


def pairing_model(
    rule: Any,
    *,
    name: str | None = None,
    n_pairs: int = 60,
    w0: float = 1.0,
    params: list[str] | None = None,
    protocol_kwargs: Mapping[str, Any] | None = None,
) -> Model:
    """A :class:`Model` of a pairing dataset (schema ``pairing``: ``freq``, ``dt`` -> ``dw``)
    from a spiking rule of :mod:`synaptic_fwp.plasticity`, run through
    :func:`synaptic_fwp.protocols.pairing` with the candidate parameter sets on its batch axis
    (per-instance tensor parameters of shape ``(S,)``): ONE protocol call per population.

    ``rule`` is the base rule: its per-instance (``Param``-typed) float fields are the model's
    parameters and defaults (``params`` restricts them; fields shared by the batch, such as
    Graupner-Brunel's delay ``D`` or integration steps, stay as set in ``rule``). Parameters
    whose candidate values are all equal are passed
    as floats (so e.g. the minimal triplet model keeps ``A3_minus = 0`` with ``tau_x=None``).
    The prediction at each data point ``(freq, dt)`` is the protocol's ``dw`` after
    ``n_pairs`` pairings from ``w0`` (the product grid of the distinct frequencies and lags
    is simulated and the data points picked from it). ``protocol_kwargs`` go to ``pairing``
    (e.g. ``n_trials`` and ``seed`` for Graupner-Brunel).
    """
    from .protocols.pairing import pairing as run_pairing  # layer 6; imported on use

    if not dataclasses.is_dataclass(rule) or isinstance(rule, type):
        raise TypeError(
            "rule must be a rule instance of synaptic_fwp.plasticity (e.g. "
            f"TripletSTDP.from_table()), got {rule!r}"
        )
    def per_instance(f: dataclasses.Field) -> bool:
        # fields typed ``Param`` may be tensors of the batch shape (plasticity.base); plain
        # ``float`` fields (delays, integration steps, bounds) are shared by the batch
        t = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
        return "Param" in t

    numeric = {
        f.name: float(getattr(rule, f.name))
        for f in dataclasses.fields(rule)
        if isinstance(getattr(rule, f.name), float) and per_instance(f)
    }
    if params is not None:
        bad = [p for p in params if p not in numeric]
        if bad:
            raise ValueError(
                f"params {bad} are not per-instance float fields of {type(rule).__name__}; "
                f"allowed: {sorted(numeric)}"
            )
        numeric = {p: numeric[p] for p in params}
    if isinstance(n_pairs, bool) or not isinstance(n_pairs, int) or n_pairs < 1:
        raise ValueError(f"n_pairs must be an int >= 1, got {n_pairs!r}")
    units = {p: ("s" if p.lower().startswith("tau") or p == "D" else "1") for p in numeric}
    kw = dict(protocol_kwargs or {})

    def predict(p: dict[str, np.ndarray], cond: dict[str, np.ndarray]) -> np.ndarray:
        import torch

        S = next(iter(p.values())).shape[0]
        fields: dict[str, Any] = {}
        for k, v in p.items():
            if np.all(v == v[0]):
                fields[k] = float(v[0])
            else:
                fields[k] = torch.as_tensor(v, dtype=torch.float64)
        r = dataclasses.replace(rule, **fields)
        fu, fi = np.unique(cond["freq"], return_inverse=True)
        du, di = np.unique(cond["dt"], return_inverse=True)
        ds = run_pairing(r, dt=du, freq=fu, n_pairs=n_pairs, w0=w0, **kw)
        dw = ds["dw"].transpose(..., "freq", "dt_pair").values
        if dw.ndim == 2:
            dw = np.broadcast_to(dw[None], (S,) + dw.shape)
        return dw[:, fi, di]

    return Model(
        name=name or str(getattr(rule, "name", type(rule).__name__)),
        predict=predict,
        defaults=numeric,
        units=units,
        description=f"{type(rule).__name__} through protocols.pairing ({n_pairs} pairings, "
        f"w0={w0})",
    )


# ------------------------------------------------------------------------------------ data


def data_arrays(data: xr.Dataset) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, str]:
    """``(conditions, y, sem, measure)`` of a dataset in the schema of
    :mod:`synaptic_fwp.datasets` (attrs ``conditions`` and ``measure``)."""
    if not isinstance(data, xr.Dataset):
        raise TypeError(f"data must be an xarray.Dataset, got {type(data).__name__}")
    for a in ("conditions", "measure"):
        if a not in data.attrs:
            raise ValueError(
                f"data has no {a!r} attribute; load it with synaptic_fwp.datasets.load / "
                "from_csv / from_dataframe"
            )
    measure = str(data.attrs["measure"])
    conds = [c for c in str(data.attrs["conditions"]).split(",") if c]
    for v in [measure, f"{measure}_sem", *conds]:
        if v not in data.variables:
            raise ValueError(f"data has no variable {v!r}; it has {sorted(data.variables)}")
    cond = {c: np.asarray(data[c].values, dtype=np.float64) for c in conds}
    y = np.asarray(data[measure].values, dtype=np.float64)
    sem = np.asarray(data[f"{measure}_sem"].values, dtype=np.float64)
    if not (np.isfinite(y).all() and np.isfinite(sem).all() and (sem > 0).all()):
        raise ValueError("data must have finite means and finite SEMs > 0")
    return cond, y, sem, measure


def fine_grid(data: xr.Dataset, n: int = 60) -> dict[str, np.ndarray]:
    """Conditions on a fine grid: ``n`` values of the dataset's ``x`` condition between its
    smallest and largest value (log-spaced when both are positive and span >= 10x) for each
    distinct value of every other condition (``group``)."""
    cond, _, _, _ = data_arrays(data)
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ValueError(f"grid_points must be an int >= 2, got {n!r}")
    x = str(data.attrs.get("x") or next(iter(cond)))
    xs = cond[x]
    lo, hi = float(xs.min()), float(xs.max())
    if lo > 0 and hi / lo >= 10:
        xg = np.geomspace(lo, hi, n)
    else:
        xg = np.linspace(lo, hi, n)
    others = [c for c in cond if c != x]
    if not others:
        return {x: xg}
    combos = sorted({tuple(cond[c][i] for c in others) for i in range(len(xs))})
    out = {x: np.tile(xg, len(combos))}
    for j, c in enumerate(others):
        out[c] = np.repeat([cb[j] for cb in combos], n)
    return out


# ------------------------------------------------------------------------------ the search


class _Problem:
    """Free parameters <-> unit box, batched weighted residuals, call counting."""

    def __init__(
        self, model: Model, data: xr.Dataset, bounds, fixed, log, allow_empty: bool = False
    ) -> None:
        if not isinstance(model, Model):
            raise TypeError(
                f"model must be a synaptic_fwp.fit.Model (see pairing_model), got "
                f"{type(model).__name__}"
            )
        self.cond, self.y, self.sem, self.measure = data_arrays(data)
        if not isinstance(bounds, Mapping) or (not bounds and not allow_empty):
            raise ValueError(
                "bounds must be a non-empty mapping {parameter: (low, high)} of the free "
                f"parameters, got {bounds!r}"
            )
        fixed = dict(fixed or {})
        for name in [*bounds, *fixed]:
            if name not in model.defaults:
                raise ValueError(
                    f"{name!r} is not a parameter of model {model.name!r}; allowed: "
                    f"{sorted(model.defaults)}"
                )
        both = sorted(set(bounds) & set(fixed))
        if both:
            raise ValueError(f"parameters {both} are both in bounds (free) and fixed; pick one")
        self.free = list(bounds)
        self.lo = np.empty(len(self.free))
        self.hi = np.empty(len(self.free))
        for j, p in enumerate(self.free):
            b = bounds[p]
            try:
                lo, hi = (float(b[0]), float(b[1]))
                ok = len(b) == 2
            except (TypeError, ValueError, IndexError):
                ok = False
            if not ok or not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
                raise ValueError(
                    f"bounds[{p!r}] must be (low, high) with finite low < high, got {b!r}"
                )
            self.lo[j], self.hi[j] = lo, hi
        for k, v in fixed.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"fixed[{k!r}] must be a finite float, got {v!r}")
        if log is None:  # auto: positive ranges spanning >= 2 decades
            logs = {p for j, p in enumerate(self.free)
                    if self.lo[j] > 0 and self.hi[j] / self.lo[j] >= 100}
        else:
            logs = set(log)
            bad = sorted(logs - set(self.free))
            if bad:
                raise ValueError(f"log names {bad} are not free parameters {self.free}")
            neg = [p for p in logs if self.lo[self.free.index(p)] <= 0]
            if neg:
                raise ValueError(f"log-scaled parameters {neg} need bounds with low > 0")
        self.log = np.array([p in logs for p in self.free])
        self.t_lo = np.where(self.log, np.log10(np.abs(self.lo) + (self.lo <= 0)), self.lo)
        self.t_hi = np.where(self.log, np.log10(np.abs(self.hi) + (self.hi <= 0)), self.hi)
        self.fixed = {k: float(v) for k, v in fixed.items()}
        self.model = model
        self.n_calls = 0
        self.n_sets = 0
        self.max_batch = 0
        self.n_nonfinite = 0

    @property
    def k(self) -> int:
        return len(self.free)

    def to_params(self, U: np.ndarray) -> np.ndarray:
        """Unit-box points ``(S, k)`` -> parameter values ``(S, k)``."""
        t = self.t_lo + np.clip(U, 0.0, 1.0) * (self.t_hi - self.t_lo)
        return np.where(self.log, 10.0 ** t, t)

    def predict(self, P: np.ndarray, cond: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
        """Model at parameter values ``P`` ``(S, k)``: ONE model call -> ``(S, n)``."""
        P = np.atleast_2d(P)
        params = {p: P[:, j] for j, p in enumerate(self.free)}
        params.update({p: np.full(P.shape[0], v) for p, v in self.fixed.items()})
        self.n_calls += 1
        self.n_sets += P.shape[0]
        self.max_batch = max(self.max_batch, P.shape[0])
        return self.model(params, self.cond if cond is None else cond)

    def residuals(self, U: np.ndarray, y: np.ndarray | None = None) -> np.ndarray:
        """Weighted residuals ``(S, n)`` at unit-box points ``U`` ``(S, k)``; ``y`` may be
        ``(n,)`` or one row per point."""
        m = self.predict(self.to_params(U))
        r = (m - (self.y if y is None else y)) / self.sem
        bad = ~np.isfinite(r).all(axis=1)
        if bad.any():
            self.n_nonfinite += int(bad.sum())
            r[bad] = _BAD_RESIDUAL
        return r


def batched_least_squares(
    residuals: Callable[[np.ndarray, np.ndarray], np.ndarray],
    U0: np.ndarray,
    *,
    max_iter: int = 30,
    step: float = 1e-6,
    lam0: float = 1e-3,
    ftol: float = 1e-8,
) -> tuple[np.ndarray, np.ndarray]:
    r"""Levenberg-Marquardt (Marquardt 1963) for ``B`` independent problems at once, in the
    unit box ``[0, 1]^k``.

    ``residuals(U, which)`` takes points ``U`` ``(M, k)`` and the index ``which`` ``(M,)`` of
    the problem each row belongs to, and returns residuals ``(M, n)`` in ONE batched call. Every
    iteration costs two calls: the forward-difference Jacobians of all active problems
    (``b*k`` rows) and all trial steps (``b`` rows). Step:
    :math:`(J^\top J + \lambda\,\mathrm{diag}(J^\top J))\delta = -J^\top r`, projected onto
    the box; accepted if the cost decreases (then :math:`\lambda/3`, else :math:`4\lambda`).
    A problem stops when an accepted step gains less than ``ftol`` relatively, or
    :math:`\lambda > 10^{12}`, or when its step moves less than 1e-9. Returns ``(U, cost)``
    with ``cost = sum(r**2)`` per problem.
    """
    U = np.clip(np.array(U0, dtype=np.float64, ndmin=2), 0.0, 1.0)
    B, k = U.shape
    r = residuals(U, np.arange(B))
    cost = (r ** 2).sum(axis=1)
    lam = np.full(B, lam0)
    active = np.ones(B, dtype=bool)
    eye = np.eye(k)
    for _ in range(max_iter):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        Ua, ra = U[idx], r[idx]
        h = np.where(Ua + step <= 1.0, step, -step)  # stay inside the box
        pts = (Ua[:, None, :] + h[:, :, None] * eye[None]).reshape(-1, k)
        Rj = residuals(pts, np.repeat(idx, k)).reshape(idx.size, k, -1)
        J = (Rj - ra[:, None, :]) / h[:, :, None]  # (b, k, n): row j = d r / d u_j
        A = J @ J.transpose(0, 2, 1)
        g = (J @ ra[:, :, None])[..., 0]
        D = np.diagonal(A, axis1=1, axis2=2)
        M = A + (lam[idx, None] * np.maximum(D, 1e-12))[:, :, None] * eye[None]
        delta = np.linalg.solve(M, -g[:, :, None])[..., 0]
        Ut = np.clip(Ua + delta, 0.0, 1.0)
        rt = residuals(Ut, idx)
        ct = (rt ** 2).sum(axis=1)
        acc = ct < cost[idx]
        gain = cost[idx] - ct
        done = (acc & (gain <= ftol * np.maximum(cost[idx], 1e-300))) | (lam[idx] > 1e12)
        done |= np.abs(Ut - Ua).max(axis=1) < 1e-9
        U[idx[acc]], r[idx[acc]], cost[idx[acc]] = Ut[acc], rt[acc], ct[acc]
        lam[idx] = np.where(acc, lam[idx] / 3.0, lam[idx] * 4.0)
        active[idx[done]] = False
    return U, cost


def _stats(chi2: float, m: np.ndarray, y: np.ndarray, k: int) -> dict[str, float]:
    n = y.size
    return dict(
        objective=float(chi2),
        rmse=float(np.sqrt(np.mean((m - y) ** 2))),
        aic=float(chi2 + 2 * k),
        bic=float(chi2 + k * math.log(n)),
        reduced_chi2=float(chi2 / (n - k)) if n > k else float("nan"),
    )


def _result(
    prob: _Problem,
    data: xr.Dataset,
    best: dict[str, float],
    k: int,
    grid_points: int,
    extra_vars: Mapping[str, Any] | None = None,
    attrs: Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """The fit/evaluation Dataset: parameters, goodness of fit, curves."""
    model = prob.model
    names = list(model.defaults)
    values = np.array([best.get(p, model.defaults[p]) for p in names])
    params = {p: np.array([v]) for p, v in zip(names, values, strict=True)}
    m = model(params, prob.cond)[0]
    grid = fine_grid(data, grid_points)
    mg = model(params, grid)[0]
    prob.n_calls += 2
    if not (np.isfinite(m).all() and np.isfinite(mg).all()):
        raise FloatingPointError(
            f"model {model.name!r} gives non-finite predictions at its parameters {best}"
        )
    chi2 = float((((m - prob.y) / prob.sem) ** 2).sum())
    st = _stats(chi2, m, prob.y, k)
    mu = data[prob.measure].attrs.get("units", "1")
    ml = data[prob.measure].attrs.get("long_name", prob.measure)
    status = ["free" if p in prob.free else "fixed" if p in prob.fixed else "default"
              for p in names]
    coords: dict[str, Any] = {
        "param": ("param", np.array(names, dtype=str), {"long_name": "model parameter"}),
        "param_units": ("param", np.array([model.units.get(p, "") for p in names], dtype=str),
                        {"long_name": "SI unit of each parameter"}),
        "param_status": ("param", np.array(status, dtype=str),
                         {"long_name": "free (fitted), fixed (given) or default (model's)"}),
        "point": ("point", np.arange(prob.y.size), {"units": "1", "long_name": "data point"}),
        "grid": ("grid", np.arange(mg.size), {"units": "1", "long_name": "fine grid point"}),
    }
    for c, v in prob.cond.items():
        coords[c] = ("point", v, dict(data[c].attrs))
        coords[f"grid_{c}"] = ("grid", grid[c], dict(data[c].attrs))
    lo = np.array([prob.lo[prob.free.index(p)] if p in prob.free else np.nan for p in names])
    hi = np.array([prob.hi[prob.free.index(p)] if p in prob.free else np.nan for p in names])
    dv: dict[str, Any] = {
        "value": ("param", values, {"units": "see param_units", "long_name": "parameter value"}),
        "lower_bound": ("param", lo, {"units": "see param_units",
                                      "long_name": "lower search bound (NaN: not fitted)"}),
        "upper_bound": ("param", hi, {"units": "see param_units",
                                      "long_name": "upper search bound (NaN: not fitted)"}),
        "data": ("point", prob.y, {"units": mu, "long_name": f"measured {ml}"}),
        "data_sem": ("point", prob.sem, {"units": mu, "long_name": "SEM of the measurement"}),
        "model": ("point", m, {"units": mu, "long_name": f"model {ml} at the data points"}),
        "residual": ("point", (m - prob.y) / prob.sem,
                     {"units": "1", "long_name": "weighted residual (model - data) / SEM"}),
        "model_grid": ("grid", mg, {"units": mu, "long_name": f"model {ml} on a fine grid"}),
        "objective": ((), st["objective"], {"units": "1",
                                            "long_name": "SEM-weighted chi-square"}),
        "rmse": ((), st["rmse"], {"units": mu, "long_name": "root-mean-square error"}),
        "aic": ((), st["aic"], {"units": "1", "long_name": "AIC = chi2 + 2k"}),
        "bic": ((), st["bic"], {"units": "1", "long_name": "BIC = chi2 + k ln n"}),
        "reduced_chi2": ((), st["reduced_chi2"],
                         {"units": "1", "long_name": "chi2 / (n - k) (NaN if n <= k)"}),
        "n_free": ((), k, {"units": "1", "long_name": "number of free parameters k"}),
        "n_points": ((), prob.y.size, {"units": "1", "long_name": "number of data points n"}),
    }
    dv.update(extra_vars or {})
    ds = xr.Dataset(dv, coords=coords)
    from . import __version__

    ds.attrs.update(
        model=model.name,
        model_description=model.description,
        dataset=str(data.attrs.get("name", "")),
        dataset_citation=str(data.attrs.get("citation", "")),
        x=str(data.attrs.get("x", "")),
        group=str(data.attrs.get("group", "")),
        measure=prob.measure,
        package_version=__version__,
    )
    ds.attrs.update(attrs or {})
    return ds


def evaluate(
    model: Model,
    data: xr.Dataset,
    params: Mapping[str, float] | None = None,
    *,
    n_free: int | None = None,
    grid_points: int = 60,
) -> xr.Dataset:
    """Goodness of fit of one given parameter set (e.g. a published one), computed by the same
    code as :func:`fit`: chi-square, RMSE, AIC/BIC with ``n_free`` parameters counted (default:
    the number given in ``params``), model curve at the data and on a fine grid."""
    params = dict(params or {})
    prob = _Problem(model, data, {}, None, (), allow_empty=True)
    for p, v in params.items():
        if p not in model.defaults:
            raise ValueError(
                f"{p!r} is not a parameter of model {model.name!r}; allowed: "
                f"{sorted(model.defaults)}"
            )
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ValueError(f"params[{p!r}] must be a finite float, got {v!r}")
    prob.fixed = {p: float(v) for p, v in params.items()}
    k = len(params) if n_free is None else int(n_free)
    return _result(prob, data, prob.fixed, k, grid_points, attrs={"method": "evaluate"})


def fit(
    model: Model,
    data: xr.Dataset,
    *,
    bounds: Mapping[str, tuple[float, float]],
    fixed: Mapping[str, float] | None = None,
    log: list[str] | tuple[str, ...] | None = None,
    x0: Mapping[str, float] | None = None,
    seed: int = 0,
    popsize: int = 10,
    maxiter: int = 100,
    tol: float = 1e-2,
    polish: bool = True,
    max_nfev: int = 200,
    n_boot: int = 100,
    boot_iter: int = 30,
    ci: float = 0.95,
    grid_points: int = 60,
) -> xr.Dataset:
    """Fit the ``bounds`` parameters of ``model`` to ``data`` (SEM-weighted chi-square).

    Parameters
    ----------
    model : the :class:`Model` (e.g. ``pairing_model(TripletSTDP.from_table(...))``).
    data : a dataset of :mod:`synaptic_fwp.datasets` (``load``, ``from_csv``, ...).
    bounds : ``{name: (low, high)}`` of the free parameters, in SI units.
    fixed : ``{name: value}`` held fixed; other parameters take the model's defaults.
    log : free parameters searched in log10 (default: those with ``low > 0`` and
        ``high / low >= 100``).
    x0 : optional starting values of the free parameters (e.g. a published set): put into the
        initial population (``differential_evolution(x0=...)``), so the fit is never worse.
    seed : seeds the global search and the bootstrap: same seed, same result.
    popsize : differential-evolution population is ``popsize * k`` candidate sets, each
        generation evaluated as ONE model call.
    maxiter, tol : differential-evolution generations and relative tolerance.
    polish : refine the best candidate with ``scipy.optimize.least_squares``.
    max_nfev : most residual evaluations of the polish (each one model call).
    n_boot : parametric-bootstrap replicates for the confidence intervals (0: none).
    boot_iter : most Levenberg-Marquardt iterations of each bootstrap refit (2 calls each).
    ci : confidence level of the percentile intervals.
    grid_points : points of the fine-grid model curve per group.

    Returns
    -------
    xarray.Dataset with ``value`` (param), ``ci_low``/``ci_high`` (param), ``boot_value``
    (boot, param), ``objective`` (chi-square), ``rmse``, ``aic``, ``bic``, the model curve at the
    data points (``model``, dim ``point``) and on a fine grid (``model_grid``, dim ``grid`` with
    coordinates ``grid_<condition>``), and attrs with the seed, the number of model calls
    (``n_model_calls``), the candidate sets evaluated per call (``population``) and the time.
    """
    for nm, v, lo in (("popsize", popsize, 1), ("maxiter", maxiter, 1), ("n_boot", n_boot, 0),
                      ("seed", seed, 0), ("max_nfev", max_nfev, 1), ("boot_iter", boot_iter, 1)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise ValueError(f"{nm} must be an int >= {lo}, got {v!r}")
    if not (isinstance(ci, float) and 0.0 < ci < 1.0):
        raise ValueError(f"ci must be a float in (0, 1), got {ci!r}")
    if not (isinstance(tol, (int, float)) and tol > 0):
        raise ValueError(f"tol must be a positive float, got {tol!r}")
    prob = _Problem(model, data, bounds, fixed, log)
    if isinstance(grid_points, bool) or not isinstance(grid_points, int) or grid_points < 2:
        raise ValueError(f"grid_points must be an int >= 2, got {grid_points!r}")
    k = prob.k
    u0 = None
    if x0 is not None:
        bad = sorted(set(x0) ^ set(prob.free))
        if bad:
            raise ValueError(f"x0 must give exactly the free parameters {prob.free}; "
                             f"mismatched: {bad}")
        p0 = np.array([float(x0[p]) for p in prob.free])
        if not (np.all(p0 >= prob.lo) and np.all(p0 <= prob.hi)):
            raise ValueError(f"x0 {dict(x0)} must lie within the bounds")
        t = np.where(prob.log, np.log10(np.where(prob.log, p0, 1.0)), p0)
        u0 = np.clip((t - prob.t_lo) / (prob.t_hi - prob.t_lo), 0.0, 1.0)
    t0 = time.perf_counter()
    c0 = time.process_time()

    def chi2(Ut: np.ndarray) -> np.ndarray:  # DE passes (k, S)
        return (prob.residuals(Ut.T) ** 2).sum(axis=1)

    de = differential_evolution(
        chi2,
        [(0.0, 1.0)] * k,
        rng=np.random.default_rng(seed),
        popsize=popsize,
        maxiter=maxiter,
        tol=tol,
        polish=False,
        vectorized=True,
        updating="deferred",
        init="latinhypercube",
        x0=u0,
    )
    t_de = time.perf_counter() - t0
    de_calls = prob.n_calls
    u_best = np.clip(de.x, 0.0, 1.0)
    obj_de = float(de.fun)
    if polish:

        def fun(u: np.ndarray) -> np.ndarray:
            return prob.residuals(u[None])[0]

        def jac(u: np.ndarray) -> np.ndarray:
            h = np.where(u + 1e-7 <= 1.0, 1e-7, -1e-7)
            pts = np.vstack([u[None], u[None] + np.diag(h)])
            R = prob.residuals(pts)
            return ((R[1:] - R[0]) / h[:, None]).T

        ls = least_squares(fun, u_best, jac=jac, bounds=(0.0, 1.0), method="trf",
                           x_scale=1.0, xtol=1e-12, ftol=1e-12, gtol=1e-12,
                           max_nfev=max_nfev)
        if 2 * ls.cost <= obj_de:
            u_best = ls.x
    best_p = prob.to_params(u_best[None])[0]
    best = {p: float(v) for p, v in zip(prob.free, best_p, strict=True)}
    best.update(prob.fixed)
    n_fit_calls = prob.n_calls

    # parametric bootstrap, all replicates refitted together
    extra: dict[str, Any] = {}
    qlo, qhi = (1 - ci) / 2, (1 + ci) / 2
    m_best = prob.predict(best_p[None])[0]
    if n_boot > 0:
        rng = np.random.default_rng([seed, 1])
        Y = m_best[None] + prob.sem[None] * rng.standard_normal((n_boot, prob.y.size))
        Ub, _ = batched_least_squares(
            lambda U, which: prob.residuals(U, Y[which]),
            np.repeat(u_best[None], n_boot, axis=0),
            max_iter=boot_iter,
        )
        Pb = prob.to_params(Ub)
        boot = np.full((n_boot, len(model.defaults)), np.nan)
        names = list(model.defaults)
        for j, p in enumerate(prob.free):
            boot[:, names.index(p)] = Pb[:, j]
        ci_lo = np.full(len(names), np.nan)
        ci_hi = np.full(len(names), np.nan)
        for j, p in enumerate(prob.free):
            ci_lo[names.index(p)], ci_hi[names.index(p)] = np.quantile(Pb[:, j], [qlo, qhi])
        extra["boot_value"] = (("boot", "param"), boot, {
            "units": "see param_units",
            "long_name": "parametric-bootstrap refit (NaN: parameter not fitted)"})
    else:
        ci_lo = ci_hi = np.full(len(model.defaults), np.nan)
    extra["ci_low"] = ("param", ci_lo, {"units": "see param_units",
                                        "long_name": f"{ci:.0%} bootstrap CI, lower"})
    extra["ci_high"] = ("param", ci_hi, {"units": "see param_units",
                                         "long_name": f"{ci:.0%} bootstrap CI, upper"})
    elapsed = time.perf_counter() - t0
    attrs = dict(
        method="differential_evolution(vectorized, deferred) + least_squares(trf) polish; "
        "parametric bootstrap with batched Levenberg-Marquardt",
        seed=int(seed),
        x0="none" if x0 is None else repr({p: float(v) for p, v in x0.items()}),
        population=int(popsize * k),
        de_generations=int(de.nit),
        de_objective=obj_de,
        n_model_calls_fit=int(n_fit_calls),
        n_model_calls_de=int(de_calls),
        n_model_calls=int(prob.n_calls),
        n_candidate_sets=int(prob.n_sets),
        max_sets_per_call=int(prob.max_batch),
        n_nonfinite_candidates=int(prob.n_nonfinite),
        n_boot=int(n_boot),
        ci=float(ci),
        free_params=",".join(prob.free),
        log_params=",".join(p for p, lg in zip(prob.free, prob.log, strict=True) if lg),
        seconds_de=float(t_de),
        seconds_total=float(elapsed),
        cpu_seconds_total=float(time.process_time() - c0),
    )
    return _result(prob, data, best, k, grid_points, extra, attrs)
