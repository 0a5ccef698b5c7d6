"""The README's main command: ``python -m synaptic_fwp.demo [--quick] [--out DIR]``.

Runs the package's flagship experiments end to end on the CPU and writes, for each, an
``xarray.Dataset`` (NetCDF) and a journal-sized figure (PDF + PNG) into ``--out``
(default ``out/``, as the README says), with a progress bar:

1. ``btsp_place_field``: one-shot place-field induction by behavioural-timescale synaptic
   plasticity in CA3 -> CA1 (Milstein et al. 2021, eLife 10:e73046; the population-fit
   parameters of the shipped table) through :func:`synaptic_fwp.protocols.btsp.btsp_induction`:
   200 CA3 place inputs on a 187 cm circular track, one EC3 plateau at 93.5 cm. Figure: the
   CA1 ramp before and after the induction lap, and the plasticity kernel (weight change vs
   the time at which each input's field centre passes, relative to the plateau). The new
   field's peak lies before the plateau (the paper: -12.5 cm at 25 cm/s).
2. ``stdp_fit``: the minimal triplet STDP rule (Pfister & Gerstner 2006) fitted to the shipped
   Sjostrom et al. (2001) frequency data through the pairing protocol
   (:func:`synaptic_fwp.fit.fit`: SEM-weighted chi-square, batched differential evolution,
   least-squares polish, bootstrap CIs), and the published parameter set evaluated by the same
   code. Figure: data with SEM bars and the fitted curves.
3. ``kv_memory``: key-value memory in fast weights (Primer Sec. 2 and Box 3). ``P`` random
   key/value pairs (unit keys in ``N`` dims) are written into ``W`` by the Hebbian rule
   ``W_t = W_{t-1} + v_t (x) k_t`` and by the delta rule
   ``W_t = W_{t-1} + eta (v_t - W_{t-1} k_t) (x) k_t`` via :func:`synaptic_fwp.scan`, then
   read back with ``y_i = W_P k_i``. Recall error ``||v_i - y_i||^2 / ||v_i||^2`` vs load
   ``P/N``, against the Hebbian crosstalk theory ``(P - 1)/(N - 2)`` (random unit keys: each
   other pair adds ``E[(k_j . k_i)^2] = 1/N`` times ``E[||v_j||^2 / ||v_i||^2] = N/(N - 2)``
   for Gaussian values).

Each step's Dataset stores the package version, the seed and the step's settings in its attrs.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import xarray as xr

from . import __version__
from .sequence import scan

__all__ = ["kv_memory", "btsp_place_field", "stdp_fit", "STEPS", "main", "run"]


def kv_memory(
    n_dim: int = 64,
    loads: tuple[float, ...] = (0.125, 0.25, 0.5, 0.75, 1.0, 1.5),
    trials: int = 16,
    eta: float = 1.0,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
) -> xr.Dataset:
    """Recall error of Hebbian and delta-rule key-value memories vs load ``P/N``.

    Returns a Dataset with ``recall_error`` (dims ``rule``, ``load``; mean over pairs and
    ``trials``), its SEM over trials ``recall_error_sem`` and the Hebbian ``theory``
    ``(P - 1)/(N - 2)``.
    """
    if isinstance(n_dim, bool) or not isinstance(n_dim, int) or n_dim < 3:
        raise ValueError(f"n_dim must be an int >= 3, got {n_dim!r}")
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 2:
        raise ValueError(f"trials must be an int >= 2, got {trials!r}")
    if not loads or any(not (isinstance(x, (int, float)) and x > 0) for x in loads):
        raise ValueError(f"loads must be positive numbers (P/N), got {loads!r}")
    g = torch.Generator().manual_seed(seed)
    rules = ("hebbian", "delta")
    err = np.zeros((len(rules), len(loads)))
    sem = np.zeros_like(err)
    for j, load in enumerate(loads):
        P = max(1, round(load * n_dim))
        k = torch.randn(trials, P, 1, n_dim, generator=g, dtype=dtype)
        k = k / k.norm(dim=-1, keepdim=True)
        v = torch.randn(trials, P, 1, n_dim, generator=g, dtype=dtype)
        for i, r in enumerate(rules):
            kw = {"eta": eta} if r == "delta" else {}
            _, W = scan(k, k, v, r, backend="recurrent", **kw)  # W: (trials, 1, N, N)
            y = torch.einsum("bhvk,bphk->bphv", W, k)
            e = ((v - y) ** 2).sum(-1) / (v**2).sum(-1)  # (trials, P, 1)
            per_trial = e.mean(dim=(1, 2)).numpy()
            err[i, j] = per_trial.mean()
            sem[i, j] = per_trial.std(ddof=1) / np.sqrt(trials)
    P = np.array([max(1, round(x * n_dim)) for x in loads])
    one = {"units": "1"}
    return xr.Dataset(
        {
            "recall_error": (
                ("rule", "load"),
                err,
                {**one, "long_name": "recall error ||v - W k||^2 / ||v||^2"},
            ),
            "recall_error_sem": (("rule", "load"), sem, {**one, "long_name": "SEM over trials"}),
            "theory": (
                "load",
                (P - 1) / (n_dim - 2),
                {**one, "long_name": "Hebbian crosstalk theory (P - 1)/(N - 2)"},
            ),
        },
        coords={
            "rule": ("rule", list(rules), {"long_name": "learning rule"}),
            "load": ("load", P / n_dim, {**one, "long_name": "load P/N"}),
            "n_pairs": ("load", P, {**one, "long_name": "stored pairs P"}),
        },
        attrs={
            "title": "key-value memory in fast weights: Hebbian vs delta rule",
            "source": "Irie & Gershman, Primer, Sec. 2 and Box 3; Schlag et al. 2021",
            "n_dim": n_dim,
            "trials": trials,
            "eta": eta,
            "seed": seed,
            "package_version": __version__,
            "figure": "capacity_curve",
        },
    )


def _plot_kv(ds: xr.Dataset, out: Path) -> list[Path]:
    from . import plot

    fig = plot.capacity_curve(ds, sem="recall_error_sem", theory="theory")
    return plot.save(fig, out / "kv_memory")


def btsp_place_field(quick: bool = False, seed: int = 0) -> xr.Dataset:
    """One induction lap of Milstein et al.'s (2021) BTSP rule with its population-fit
    parameters (see the module docstring); the Dataset of
    :func:`synaptic_fwp.protocols.btsp.btsp_induction` (deterministic: ``seed`` is recorded
    only). ``quick`` uses a coarser within-lap step (0.02 s instead of 0.01 s)."""
    from .protocols.btsp import btsp_induction

    ds = btsp_induction("milstein", plateau_positions=(0.935,), dt=0.02 if quick else 0.01)
    ds.attrs.update(
        title="one-shot place field by BTSP (Milstein et al. 2021 population fit)",
        package_version=__version__,
        seed=seed,
    )
    return ds


STDP_FREE: dict[str, tuple[float, float]] = {
    "A3_plus": (0.0, 0.05),
    "A2_minus": (0.0, 0.02),
    "tau_y": (0.02, 0.4),
}
"""Free parameters of the demo's triplet fit and their bounds (SI)."""


def stdp_fit(quick: bool = False, seed: int = 0) -> xr.Dataset:
    """Fit the minimal triplet rule (visual cortex, all-to-all; Pfister & Gerstner 2006) to the
    Sjostrom et al. (2001) data; the published set's chi-square is stored as
    ``published_objective`` (computed by :func:`synaptic_fwp.fit.evaluate`)."""
    from . import datasets
    from . import fit as fitmod
    from .plasticity import TripletSTDP

    data = datasets.load("sjostrom2001_frequency")
    rule = TripletSTDP.from_table("visual_cortex", "all_to_all", "minimal")
    model = fitmod.pairing_model(rule, name="triplet_minimal", n_pairs=60, params=sorted(STDP_FREE))
    kw = {"maxiter": 4, "popsize": 6, "n_boot": 0} if quick else {"maxiter": 30, "n_boot": 20}
    ds = fitmod.fit(model, data, bounds=STDP_FREE, seed=seed, **kw)
    pub = fitmod.evaluate(
        model, data, {k: float(getattr(rule, k)) for k in STDP_FREE}, n_free=len(STDP_FREE)
    )
    ds["published_objective"] = (
        (),
        float(pub["objective"]),
        {"units": "1", "long_name": "chi-square of the published set (Pfister & Gerstner 2006)"},
    )
    ds.attrs.update(
        title="minimal triplet STDP fitted to Sjostrom et al. 2001",
        package_version=__version__,
        seed=seed,
        figure="fit_result",
    )
    return ds


def _kv_step(quick: bool, seed: int) -> xr.Dataset:
    return kv_memory(n_dim=32 if quick else 64, trials=8 if quick else 16, seed=seed)


STEPS: dict[str, Callable[..., xr.Dataset]] = {
    "btsp_place_field": btsp_place_field,
    "stdp_fit": stdp_fit,
    "kv_memory": _kv_step,
}
"""The demo's steps: name -> ``run(quick, seed) -> Dataset``."""


def run(
    out: str | Path = "out",
    quick: bool = False,
    seed: int = 0,
    progress: bool = True,
    steps: list[str] | None = None,
) -> dict[str, xr.Dataset]:
    """Run the ``steps`` (default: all of :data:`STEPS`), write ``<out>/<step>.nc`` and
    ``<out>/<step>.pdf/.png``, and return the Datasets by step name."""
    from tqdm.auto import tqdm

    todo = list(STEPS) if steps is None else list(steps)
    bad = [n for n in todo if n not in STEPS]
    if bad:
        raise ValueError(f"steps {bad} are not demo steps; allowed: {list(STEPS)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, xr.Dataset] = {}
    bar = tqdm(todo, desc="demo", unit="step", disable=not progress)
    for name in bar:
        bar.set_postfix_str(name)
        ds = STEPS[name](quick=quick, seed=seed)
        ds.to_netcdf(out / f"{name}.nc")
        _figure(name, ds, out)
        results[name] = ds
    return results


def _figure(name: str, ds: xr.Dataset, out: Path) -> list[Path]:
    from . import plot

    if name == "kv_memory":
        return _plot_kv(ds, out)
    if name == "btsp_place_field":
        fig_ds = ds.assign(ramp_mV=ds["ramp"] * 1e3, position_cm=ds["position"] * 100)
        fig_ds = fig_ds.swap_dims(position="position_cm")
        fig_ds.attrs["plateau_cm"] = float(ds["plateau_position"].values[-1]) * 100
        fig, axes = plot.new_figure("double", 55, ncols=2)
        plot.place_field(
            fig_ds,
            "ramp_mV",
            "position_cm",
            hue="lap",
            plateau="plateau_cm",
            ax=axes[0, 0],
            xlabel="position (cm)",
            ylabel="CA1 ramp (mV)",
        )
        plot.plasticity_kernel(
            fig_ds,
            "delta_weight",
            "time_from_plateau",
            ax=axes[0, 1],
            xlabel="time of input field centre from plateau (s)",
            ylabel="weight change",
        )
        plot.panel_letters(axes)
        return plot.save(fig, out / name)
    return plot.save(plot.auto(ds), out / name)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m synaptic_fwp.demo",
        description="Run the flagship experiments end to end and write their Datasets (NetCDF) "
        "and figures (PDF + PNG).",
    )
    p.add_argument("--quick", action="store_true", help="small sizes (seconds, for a check)")
    p.add_argument("--out", default="out", help="output directory (default: out)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--steps", nargs="+", choices=list(STEPS), help="run only these steps")
    a = p.parse_args(argv)
    t0 = time.perf_counter()
    res = run(a.out, quick=a.quick, seed=a.seed, progress=not a.no_progress, steps=a.steps)
    for name, ds in res.items():
        print(f"{name}: {Path(a.out) / (name + '.nc')} + .pdf/.png  ({ds.attrs.get('title', '')})")
    if "btsp_place_field" in res:
        b = res["btsp_place_field"]
        print(
            f"  BTSP: ramp peak {float(b['peak_val'][0, -1]) * 1e3:.2f} mV, "
            f"{float(b['peak_shift'][0, -1]) * 100:+.1f} cm from the plateau "
            "(Milstein et al. 2021: 8 mV, -12.5 cm)"
        )
    if "stdp_fit" in res:
        f = res["stdp_fit"]
        print(
            f"  STDP fit: chi2 {float(f['objective']):.3g} (published set "
            f"{float(f['published_objective']):.3g}), AIC {float(f['aic']):.3g}"
        )
    if "kv_memory" in res:
        e = res["kv_memory"]["recall_error"]
        print(
            "  key-value memory, recall error at P/N = 0.5: hebbian "
            f"{float(e.sel(rule='hebbian').sel(load=0.5, method='nearest')):.3f}, delta "
            f"{float(e.sel(rule='delta').sel(load=0.5, method='nearest')):.3f}"
        )
    print(f"done in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
