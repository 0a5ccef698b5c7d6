"""Shared plumbing of the Primer analyses: command line, output files, figure saving.

Each analysis module defines ``run(quick=False, out=None, **kw) -> xarray.Dataset`` and a
``figure(ds) -> matplotlib.figure.Figure``; :func:`main` parses ``[--quick] [--out DIR]`` (plus
the analysis' own options), runs, and writes ``<out>/<name>.nc`` (the numbers),
``<out>/<name>.pdf``, ``<out>/<name>.png`` and, for analyses with a table, ``<out>/<name>.csv``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from synaptic_fwp.plot.style import RC as STYLE

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["main", "write_outputs", "clean_attrs", "new_figure", "STYLE"]

# STYLE: the matplotlib settings of every analysis figure, the same journal style as
# synaptic_fwp.plot (7-8 pt, Okabe-Ito, TrueType fonts in PDF), so studies and figures match.


def clean_attrs(ds: xr.Dataset) -> xr.Dataset:
    """Make every attribute NetCDF-safe (bools and None become strings/ints)."""
    ds = ds.copy()

    def fix(a: dict) -> dict:
        out = {}
        for k, v in a.items():
            if isinstance(v, bool):
                v = int(v)
            elif v is None:
                v = "none"
            elif isinstance(v, (list, tuple)):
                v = np.asarray(v) if all(isinstance(x, (int, float)) for x in v) else str(v)
            elif isinstance(v, dict):
                v = str(v)
            out[k] = v
        return out

    ds.attrs = fix(ds.attrs)
    for name in list(ds.variables):
        ds[name].attrs = fix(ds[name].attrs)
    return ds


def new_figure(nrows: int, ncols: int, width_mm: float = 180.0, height_mm: float = 60.0):
    """A headless figure (no pyplot state) with a grid of axes, sizes in mm."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_mm / 25.4, height_mm / 25.4), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax in axes.flat:
        ax.spines["top"].set_visible(False)
        ax.spines["right"].set_visible(False)
    return fig, axes


def write_outputs(ds: xr.Dataset, fig, out: str | Path, name: str) -> list[Path]:
    """Write ``name.nc``, ``name.pdf`` and ``name.png`` into ``out`` (created)."""
    d = Path(out)
    d.mkdir(parents=True, exist_ok=True)
    paths = [d / f"{name}.nc", d / f"{name}.pdf", d / f"{name}.png"]
    clean_attrs(ds).to_netcdf(paths[0])
    fig.savefig(paths[1])
    fig.savefig(paths[2], dpi=200)
    return paths


def main(
    name: str,
    run: Callable[..., xr.Dataset],
    figure: Callable[[xr.Dataset], object],
    argv: Sequence[str] | None = None,
    summary: Callable[[xr.Dataset], str] | None = None,
    *,
    options: Callable[[argparse.ArgumentParser], None] | None = None,
    run_kwargs: Callable[[argparse.Namespace], dict] | None = None,
    table: Callable[[xr.Dataset], pd.DataFrame] | None = None,
) -> xr.Dataset:
    """Command line of one analysis:
    ``python -m synaptic_fwp.analyses.<name> [--quick] [--out DIR] [options]``.

    ``options(parser)`` adds the analysis' own arguments; ``run_kwargs(args)`` turns the parsed
    arguments into the keywords of ``run`` (default: ``quick`` only); ``table(ds)``, if given, is
    written to ``<out>/<name>.csv``."""
    p = argparse.ArgumentParser(prog=f"python -m synaptic_fwp.analyses.{name}")
    p.add_argument("--quick", action="store_true", help="reduced size (seconds instead of minutes)")
    p.add_argument(
        "--out", default=f"results/{name}", help="output directory (default %(default)s)"
    )
    if options is not None:
        options(p)
    a = p.parse_args(argv)
    ds = run(**(run_kwargs(a) if run_kwargs is not None else {"quick": a.quick}))
    import matplotlib

    with matplotlib.rc_context(STYLE):
        fig = figure(ds)
    paths = write_outputs(ds, fig, a.out, name)
    if table is not None:
        paths.append(Path(a.out) / f"{name}.csv")
        table(ds).to_csv(paths[-1], float_format="%.6g")
    if summary is not None:
        print(summary(ds))
    for path in paths:
        print(f"wrote {path}")
    return ds
