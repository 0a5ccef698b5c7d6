"""The README's main command: ``python -m synaptic_fwp.demo [--quick] [--out DIR]``.

Runs the package's flagship experiments end to end on the CPU and writes, for each, an
``xarray.Dataset`` (NetCDF) and a journal-sized figure (PDF + PNG) into ``--out``
(default ``demo_out/``), with a progress bar:

1. ``kv_memory``: key-value memory in fast weights (Primer Sec. 2 and Box 3). ``P`` random
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
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import xarray as xr

from . import __version__
from .scan import scan

__all__ = ["kv_memory", "STEPS", "main", "run"]


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


STEPS: dict[str, tuple[Callable[..., xr.Dataset], Callable[[], bool]]] = {
    "kv_memory": (
        lambda quick, seed: kv_memory(
            n_dim=32 if quick else 64, trials=8 if quick else 16, seed=seed
        ),
        lambda: True,
    ),
}
"""The demo's steps: name -> (run(quick, seed) -> Dataset, is_available())."""


def run(
    out: str | Path = "demo_out", quick: bool = False, seed: int = 0, progress: bool = True
) -> dict[str, xr.Dataset]:
    """Run every available step, write ``<out>/<step>.nc`` and ``<out>/<step>.pdf/.png``,
    and return the Datasets by step name."""
    from tqdm.auto import tqdm

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    todo = [n for n, (_, ok) in STEPS.items() if ok()]
    skipped = [n for n in STEPS if n not in todo]
    results: dict[str, xr.Dataset] = {}
    bar = tqdm(todo, desc="demo", unit="step", disable=not progress)
    for name in bar:
        bar.set_postfix_str(name)
        fn, _ = STEPS[name]
        ds = fn(quick=quick, seed=seed)
        ds.to_netcdf(out / f"{name}.nc")
        _figure(name, ds, out)
        results[name] = ds
    if skipped:
        print(
            f"skipped (their modules are not installed yet): {', '.join(skipped)}", file=sys.stderr
        )
    return results


def _figure(name: str, ds: xr.Dataset, out: Path) -> list[Path]:
    from . import plot

    if name == "kv_memory":
        return _plot_kv(ds, out)
    return plot.save(plot.auto(ds), out / name)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m synaptic_fwp.demo",
        description="Run the flagship experiments end to end and write their Datasets (NetCDF) "
        "and figures (PDF + PNG).",
    )
    p.add_argument("--quick", action="store_true", help="small sizes (seconds, for a check)")
    p.add_argument("--out", default="demo_out", help="output directory (default: demo_out)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    a = p.parse_args(argv)
    t0 = time.perf_counter()
    res = run(a.out, quick=a.quick, seed=a.seed, progress=not a.no_progress)
    for name, ds in res.items():
        print(f"{name}: {Path(a.out) / (name + '.nc')} + .pdf/.png  ({ds.attrs.get('title', '')})")
    if "kv_memory" in res:
        e = res["kv_memory"]["recall_error"]
        print(
            "  recall error at P/N = 0.5: hebbian "
            f"{float(e.sel(rule='hebbian').sel(load=0.5, method='nearest')):.3f}, delta "
            f"{float(e.sel(rule='delta').sel(load=0.5, method='nearest')):.3f}"
        )
    print(f"done in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
