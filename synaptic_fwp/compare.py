r"""Rule-versus-data comparison: every rule's best fit on every dataset, ranked by AIC.

For each (rule, dataset) :func:`synaptic_fwp.fit.fit` finds the best parameters (SEM-weighted
chi-square); the table reports chi-square, RMSE, AIC, BIC, the AIC difference to the best rule
of the dataset :math:`\Delta_i = \mathrm{AIC}_i - \min_j \mathrm{AIC}_j`, the Akaike weights
:math:`w_i = e^{-\Delta_i/2} / \sum_j e^{-\Delta_j/2}` and the rank (Burnham & Anderson 2002,
*Model Selection and Multimodel Inference*, Sec. 2.9), and for rules given with a published
parameter set the chi-square of that set computed by the same code.

Layer 7 (fit and compare): no matplotlib here; figures are drawn by the analyses/plot layers.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from . import datasets as _datasets
from .fit import Model, evaluate, fit

__all__ = ["FitSpec", "Comparison", "compare"]


@dataclasses.dataclass(frozen=True)
class FitSpec:
    """A rule to compare: its :class:`~synaptic_fwp.fit.Model`, the free parameters' ``bounds``,
    ``fixed`` values, ``log``-scaled parameters (see :func:`~synaptic_fwp.fit.fit`), optionally
    a ``published`` parameter set (evaluated with ``len(bounds)`` free parameters) and
    ``fit_kwargs`` overriding :func:`compare`'s for this rule (e.g. a smaller search for an
    expensive rule). ``start_from_published`` puts the published values of the free parameters
    into the initial population (``fit(x0=...)``). With empty ``bounds`` the rule is not
    fitted: it is evaluated at its ``published`` set (or its defaults) with ``k = 0``."""

    name: str
    model: Model
    bounds: Mapping[str, tuple[float, float]]
    fixed: Mapping[str, float] | None = None
    log: Sequence[str] | None = None
    published: Mapping[str, float] | None = None
    fit_kwargs: Mapping[str, Any] | None = None
    start_from_published: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"name must be a non-empty str, got {self.name!r}")
        if not isinstance(self.model, Model):
            raise TypeError(
                f"model of {self.name!r} must be a synaptic_fwp.fit.Model, got "
                f"{type(self.model).__name__}"
            )


@dataclasses.dataclass
class Comparison:
    """Result of :func:`compare`: ``table`` (xarray, dims ``rule`` x ``dataset`` and
    ``param``) and ``fits[(rule, dataset)]`` (each a :func:`~synaptic_fwp.fit.fit` Dataset)."""

    table: xr.Dataset
    fits: dict[tuple[str, str], xr.Dataset]
    published: dict[tuple[str, str], xr.Dataset]

    def to_pandas(self):
        """One row per (dataset, rule), sorted by dataset then AIC (a pandas DataFrame)."""
        cols = ["objective", "published_objective", "rmse", "aic", "bic", "delta_aic",
                "aic_weight", "rank", "n_free", "seconds", "cpu_seconds", "population",
                "n_model_calls"]
        df = self.table[cols].to_dataframe().reset_index()
        return df.sort_values(["dataset", "aic"]).reset_index(drop=True)


def _resolve_datasets(datasets) -> dict[str, xr.Dataset]:
    if isinstance(datasets, (str, xr.Dataset)):
        datasets = [datasets]
    if isinstance(datasets, Mapping):
        items = list(datasets.items())
    elif isinstance(datasets, Sequence):
        items = []
        for d in datasets:
            if isinstance(d, str):
                items.append((d, _datasets.load(d)))
            elif isinstance(d, xr.Dataset):
                items.append((str(d.attrs.get("name", f"dataset{len(items)}")), d))
            else:
                raise TypeError(
                    f"datasets entries must be names (str) or xarray.Dataset, got "
                    f"{type(d).__name__}"
                )
    else:
        raise TypeError(
            f"datasets must be a name, a Dataset, or a sequence/mapping of them, got "
            f"{type(datasets).__name__}"
        )
    if not items:
        raise ValueError("datasets is empty; give at least one dataset")
    names = [n for n, _ in items]
    if len(set(names)) != len(names):
        raise ValueError(f"dataset names must be distinct, got {names}")
    for n, d in items:
        if not isinstance(d, xr.Dataset):
            raise TypeError(f"dataset {n!r} must be an xarray.Dataset, got {type(d).__name__}")
        if d.attrs.get("kind", "measurements") != "measurements" or "measure" not in d.attrs:
            raise ValueError(
                f"dataset {n!r} is not a measurement dataset (a parameter table?); compare "
                "needs data with means and SEMs, e.g. 'sjostrom2001_frequency'"
            )
    return dict(items)


def compare(
    rules: Sequence[FitSpec] | Mapping[str, FitSpec],
    datasets: Any = "sjostrom2001_frequency",
    *,
    seed: int = 0,
    progress: bool = False,
    **fit_kwargs: Any,
) -> Comparison:
    """Fit every rule to every dataset and rank the rules by AIC within each dataset.

    ``rules``: :class:`FitSpec` objects (or a mapping name -> FitSpec); ``datasets``: names of
    shipped datasets, Datasets from :mod:`synaptic_fwp.datasets`, or a mapping name -> Dataset.
    ``fit_kwargs`` (``popsize``, ``maxiter``, ``n_boot``, ``grid_points``, ...) go to
    :func:`~synaptic_fwp.fit.fit`; every fit uses ``seed``. With ``progress`` a tqdm bar shows
    the fits.

    The ``table`` has dims ``rule``, ``dataset``, ``param`` (the union of all rules'
    parameters; NaN where a parameter is not one of the rule's): ``objective``,
    ``published_objective`` (NaN if no published set), ``rmse``, ``aic``, ``bic``,
    ``delta_aic``, ``aic_weight``, ``rank`` (1 = lowest AIC), ``n_free``, ``value``,
    ``ci_low``, ``ci_high``.
    """
    specs = list(rules.values()) if isinstance(rules, Mapping) else list(rules)
    if not specs:
        raise ValueError("rules is empty; give at least one FitSpec")
    for s in specs:
        if not isinstance(s, FitSpec):
            raise TypeError(f"rules must hold FitSpec objects, got {type(s).__name__}")
    rnames = [s.name for s in specs]
    if len(set(rnames)) != len(rnames):
        raise ValueError(f"rule names must be distinct, got {rnames}")
    data = _resolve_datasets(datasets)
    dnames = list(data)
    params: list[str] = []
    for s in specs:
        params += [p for p in s.model.defaults if p not in params]

    pairs = [(s, dn) for s in specs for dn in dnames]
    if progress:
        from tqdm.auto import tqdm

        pairs = tqdm(pairs, desc="fits")
    fits: dict[tuple[str, str], xr.Dataset] = {}
    pubs: dict[tuple[str, str], xr.Dataset] = {}
    R, D, P = len(specs), len(dnames), len(params)
    scal = {k: np.full((R, D), np.nan) for k in
            ("objective", "published_objective", "rmse", "aic", "bic", "n_free", "seconds",
             "cpu_seconds", "population", "n_model_calls")}
    val = {k: np.full((R, D, P), np.nan) for k in ("value", "ci_low", "ci_high")}
    for s, dn in pairs:
        i, j = rnames.index(s.name), dnames.index(dn)
        kw = {**fit_kwargs, **dict(s.fit_kwargs or {})}
        t0, c0 = time.perf_counter(), time.process_time()
        if s.bounds:
            x0 = ({p: s.published[p] for p in s.bounds}
                  if s.start_from_published and s.published is not None else None)
            res = fit(s.model, data[dn], bounds=s.bounds, fixed=s.fixed, log=s.log, seed=seed,
                      x0=x0, **kw)
        else:  # nothing to fit: evaluate the published set / defaults (k = 0)
            given = {**dict(s.fixed or {}), **dict(s.published or {})}
            res = evaluate(s.model, data[dn], given, n_free=0,
                           grid_points=kw.get("grid_points", 60))
            res.attrs.update(seconds_total=time.perf_counter() - t0, population=1,
                             cpu_seconds_total=time.process_time() - c0, n_model_calls=2)
            for k in ("ci_low", "ci_high"):
                res[k] = ("param", np.full(res.sizes["param"], np.nan),
                          {"units": "see param_units", "long_name": "not fitted"})
        fits[(s.name, dn)] = res
        for k in ("objective", "rmse", "aic", "bic", "n_free"):
            scal[k][i, j] = float(res[k])
        scal["seconds"][i, j] = res.attrs["seconds_total"]
        scal["cpu_seconds"][i, j] = res.attrs["cpu_seconds_total"]
        scal["population"][i, j] = res.attrs["population"]
        scal["n_model_calls"][i, j] = res.attrs["n_model_calls"]
        for pi, p in enumerate(res["param"].values):
            pj = params.index(str(p))
            for k in val:
                val[k][i, j, pj] = float(res[k].values[pi])
        if s.published is not None and not s.bounds:
            pubs[(s.name, dn)] = res
            scal["published_objective"][i, j] = float(res["objective"])
        elif s.published is not None:
            pub = evaluate(s.model, data[dn], {**dict(s.fixed or {}), **dict(s.published)},
                           n_free=len(s.bounds), grid_points=kw.get("grid_points", 60))
            pubs[(s.name, dn)] = pub
            scal["published_objective"][i, j] = float(pub["objective"])
    aic = scal["aic"]
    delta = aic - aic.min(axis=0, keepdims=True)
    wts = np.exp(-delta / 2)
    wts = wts / wts.sum(axis=0, keepdims=True)
    rank = np.argsort(np.argsort(aic, axis=0), axis=0) + 1
    dims2, dims3 = ("rule", "dataset"), ("rule", "dataset", "param")
    units_of = {}
    for s in specs:
        units_of.update({p: s.model.units.get(p, "") for p in s.model.defaults})
    table = xr.Dataset(
        {
            "objective": (dims2, scal["objective"], {"units": "1",
                                                     "long_name": "best chi-square"}),
            "published_objective": (dims2, scal["published_objective"], {
                "units": "1",
                "long_name": "chi-square of the published parameter set (NaN: none given)"}),
            "rmse": (dims2, scal["rmse"], {"units": "1", "long_name": "RMSE of the best fit"}),
            "aic": (dims2, scal["aic"], {"units": "1", "long_name": "AIC"}),
            "bic": (dims2, scal["bic"], {"units": "1", "long_name": "BIC"}),
            "delta_aic": (dims2, delta, {"units": "1", "long_name": "AIC - best AIC"}),
            "aic_weight": (dims2, wts, {"units": "1", "long_name": "Akaike weight"}),
            "rank": (dims2, rank, {"units": "1", "long_name": "rank by AIC (1 = best)"}),
            "n_free": (dims2, scal["n_free"], {"units": "1",
                                               "long_name": "free parameters"}),
            "seconds": (dims2, scal["seconds"], {"units": "s",
                                                 "long_name": "wall time of the whole fit"}),
            "cpu_seconds": (dims2, scal["cpu_seconds"], {
                "units": "s", "long_name": "CPU time of the whole fit (this process)"}),
            "population": (dims2, scal["population"], {
                "units": "1", "long_name": "candidate parameter sets per model (engine) call"}),
            "n_model_calls": (dims2, scal["n_model_calls"], {
                "units": "1", "long_name": "model (engine) calls of the whole fit"}),
            "value": (dims3, val["value"], {"units": "see param_units",
                                            "long_name": "best-fit value (NaN: not in rule)"}),
            "ci_low": (dims3, val["ci_low"], {"units": "see param_units",
                                              "long_name": "bootstrap CI, lower"}),
            "ci_high": (dims3, val["ci_high"], {"units": "see param_units",
                                                "long_name": "bootstrap CI, upper"}),
        },
        coords={
            "rule": ("rule", np.array(rnames, dtype=str), {"long_name": "plasticity rule"}),
            "dataset": ("dataset", np.array(dnames, dtype=str), {"long_name": "dataset"}),
            "param": ("param", np.array(params, dtype=str), {"long_name": "parameter"}),
            "param_units": ("param", np.array([units_of[p] for p in params], dtype=str),
                            {"long_name": "SI unit of each parameter"}),
        },
    )
    from . import __version__

    table.attrs.update(
        seed=int(seed),
        method="synaptic_fwp.fit.fit per (rule, dataset); AIC = chi2 + 2k",
        citations=" | ".join(str(data[d].attrs.get("citation", d)) for d in dnames),
        fit_kwargs=repr(fit_kwargs),
        package_version=__version__,
        figure="rule_comparison",
    )
    return Comparison(table=table, fits=fits, published=pubs)
