"""The ``synaptic-fwp`` command line (entry point :func:`main`).

::

    synaptic-fwp run examples/stdp_pairing.toml      # run an experiment file -> NetCDF
    synaptic-fwp run results/stdp_pairing.nc         # run again what produced a result file
    synaptic-fwp fit examples/stdp_pairing.toml      # fit the rule to the file's [fit] data
    synaptic-fwp plot results/stdp_fit.nc            # figure (PDF + PNG) of any result file
    synaptic-fwp compare a.toml b.toml --figure f    # rank the files' rules on data by AIC
    synaptic-fwp datasets                            # list / show / export shipped data

``synaptic-fwp <command> --help`` explains each command. Errors in files or arguments are
printed as one clear message (exit status 2) rather than a traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["main", "build_parser"]

_EPILOG = 'Numbers in experiment files are SI (s, Hz); strings may carry a unit, e.g. "10 ms".'


def _experiment_from(path: str):
    from . import experiment

    p = Path(path)
    if p.suffix in (".nc", ".zarr"):
        import xarray as xr

        if not p.exists():
            raise FileNotFoundError(f"result file {path!r} does not exist")
        ds = xr.open_zarr(p, consolidated=False) if p.suffix == ".zarr" else xr.load_dataset(p)
        return experiment.from_dataset(ds)
    return experiment.load(p)


def _cmd_run(a: argparse.Namespace) -> int:
    ex = _experiment_from(a.experiment)
    if a.check:
        cfg = ex.config
        if "network" in cfg:
            what = (
                f"network of {len(cfg['inputs'])} input(s), {len(cfg['populations'])} "
                f"population(s), {len(cfg['projections'])} projection(s)"
            )
        else:
            what = f"{cfg['rule']['name']} x {cfg['protocol']['name']}"
        print(f"{ex.source}: OK ({what}, {_grid_size(ex)} parameter set(s))")
        return 0
    out = Path(a.out) if a.out else ex.output
    ds = ex.run(progress=not a.no_progress, out=out)
    dims = ", ".join(f"{k}: {v}" for k, v in ds.sizes.items())
    print(f"wrote {out}  ({dims}; variables {', '.join(map(str, ds.data_vars))})")
    return 0


def _grid_size(ex) -> int:
    n = 1
    for v in (ex.config.get("sweep") or {}).values():
        n *= len(v)
    return n


def _cmd_fit(a: argparse.Namespace) -> int:
    ex = _experiment_from(a.experiment)
    out = Path(a.out) if a.out else Path(ex.config.get("fit", {}).get("output", "fit.nc"))
    ds = ex.fit(progress=not a.no_progress, out=out)
    names = [str(p) for p in ds["param"].values]
    status = [str(s) for s in ds["param_status"].values]
    print(f"wrote {out}")
    print(
        f"  chi2 = {float(ds['objective']):.4g}, RMSE = {float(ds['rmse']):.4g}, "
        f"AIC = {float(ds['aic']):.4g} ({int(ds['n_points'])} points, "
        f"{int(ds['n_free'])} free)"
    )
    for i, (n, s) in enumerate(zip(names, status, strict=True)):
        if s == "free":
            lo, hi = float(ds["ci_low"][i]), float(ds["ci_high"][i])
            ci = f"  [{lo:.4g}, {hi:.4g}]" if lo == lo else ""
            u = str(ds["param_units"].values[i])
            u = "" if u in ("", "1") else f" {u}"
            print(
                f"  {n} = {float(ds['value'][i]):.4g}{u}{ci} (bootstrap CI)"
                if ci
                else f"  {n} = {float(ds['value'][i]):.4g}{u}"
            )
    return 0


def _cmd_plot(a: argparse.Namespace) -> int:
    import xarray as xr

    from . import plot

    p = Path(a.result)
    if not p.exists():
        raise FileNotFoundError(f"result file {a.result!r} does not exist")
    ds = xr.open_zarr(p, consolidated=False) if p.suffix == ".zarr" else xr.load_dataset(p)
    kw: dict[str, object] = {"width": a.width}
    if a.data:
        kw["data"] = _load_data(a.data)
    if a.kind is None:
        fig = plot.auto(ds, **kw)
    else:
        fig = plot.FIGURES[a.kind](ds, **kw)
    out = Path(a.out) if a.out else p.with_suffix("")
    formats = a.format or None
    written = plot.save(fig, out, formats=formats if formats or out.suffix else ("pdf", "png"))
    print("wrote " + ", ".join(map(str, written)))
    return 0


def _load_data(name: str):
    from . import datasets

    if name in datasets.list():
        return datasets.load(name)
    return datasets.from_csv(name)


def _cmd_datasets(a: argparse.Namespace) -> int:
    from . import datasets

    if a.action == "list" or a.action is None:
        for n in datasets.list():
            e = datasets.CATALOG[n]
            print(f"{n:40s} {e.kind:13s} {e.authors.split(',')[0]} {e.year}: {e.title}")
        return 0
    if not a.name:
        raise ValueError(f"datasets {a.action} needs a NAME; one of {', '.join(datasets.list())}")
    ds = _load_data(a.name)
    if a.action == "show":
        print(ds)
        for k in ("citation", "description", "protocol"):
            if ds.attrs.get(k):
                print(f"\n{k}: {ds.attrs[k]}")
        return 0
    out = Path(a.out or f"{a.name}.nc")
    if out.suffix == ".csv":
        ds.to_dataframe().to_csv(out)
    elif out.suffix == ".nc":
        ds.to_netcdf(out)
    else:
        raise ValueError(f"--out must end in .nc or .csv, got {str(out)!r}")
    print(f"wrote {out}")
    return 0


def _cmd_compare(a: argparse.Namespace) -> int:
    from . import compare
    from .experiment import save

    exps = [_experiment_from(x) for x in a.experiments]
    specs = [e.fit_spec() for e in exps]
    if a.data:
        data = {d: _load_data(d) for d in a.data}
    else:  # the [fit] data of the files
        names = list(dict.fromkeys(e.config["fit"]["data"] for e in exps))
        data = {d: _load_data(d) for d in names}
    opts = exps[0].fit_options()
    if a.seed is not None:
        opts["seed"] = a.seed
    res = compare.compare(specs, data, progress=not a.no_progress, **opts)
    out = Path(a.out)
    save(res.table, out)
    cols = ["objective", "published_objective", "aic", "delta_aic", "aic_weight", "rank"]
    df = res.table[cols].to_dataframe()
    print(df.sort_values(["dataset", "rank"]).to_string(float_format=lambda v: f"{v:.4g}"))
    print(f"wrote {out}")
    if a.figure:
        from . import plot

        written = plot.save(plot.rule_comparison(res.table), Path(a.figure))
        print("wrote " + ", ".join(map(str, written)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (sub-commands run, fit, plot, compare, datasets)."""
    from . import __version__

    p = argparse.ArgumentParser(
        prog="synaptic-fwp",
        description="Synaptic plasticity as fast weight programming: run experiment files, fit "
        "rules to data, compare rules, plot results and browse the shipped datasets.",
        epilog="Run 'synaptic-fwp <command> --help' for each command's options.",
    )
    p.add_argument("--version", action="version", version=f"synaptic_fwp {__version__}")
    sub = p.add_subparsers(dest="command", metavar="<command>")

    r = sub.add_parser(
        "run",
        help="run an experiment file (TOML) and write its Dataset",
        description="Validate and run an experiment file: build the rule (and the parameter "
        "grid of [sweep]), run the protocol in one batched call per chunk with a progress bar, "
        "and write the Dataset (NetCDF .nc or Zarr .zarr) with the resolved configuration, the "
        "package version and the seed in its attributes. Given a result file (.nc/.zarr) "
        "instead, runs again the experiment stored in it. See examples/*.toml.",
        epilog=_EPILOG,
    )
    r.add_argument("experiment", help="experiment file (.toml) or a result file (.nc/.zarr)")
    r.add_argument("-o", "--out", help="output path (default: [experiment] output)")
    r.add_argument("--check", action="store_true", help="only validate the file, run nothing")
    r.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    r.set_defaults(func=_cmd_run)

    f = sub.add_parser(
        "fit",
        help="fit the rule of an experiment file to data",
        description="Fit the parameters listed in the file's [fit] free table (bounds in SI) to "
        "[fit] data (a shipped dataset or your CSV) through the file's protocol: "
        "SEM-weighted chi-square, batched differential evolution with a least-squares polish "
        "and parametric-bootstrap confidence intervals (synaptic_fwp.fit). Writes the fit "
        "Dataset (best values, CIs, chi2, RMSE, AIC/BIC, model curves) and prints a summary.",
        epilog=_EPILOG,
    )
    f.add_argument("experiment", help="experiment file (.toml) with a [fit] table")
    f.add_argument("-o", "--out", help="output path (default: [fit] output)")
    f.add_argument("--no-progress", action="store_true", help="hide progress output")
    f.set_defaults(func=_cmd_fit)

    from .plot import FIGURES, WIDTHS

    pl = sub.add_parser(
        "plot",
        help="make a journal figure (PDF + PNG) from a result file",
        description="Plot a result file (.nc/.zarr) written by 'run', 'fit', 'compare' or any "
        "analysis. Without --kind the figure type is chosen from the file's contents (a fit: "
        "data with SEM bars and the fitted curve; a pairing run: frequency curve or STDP "
        "window; weights: matrix or trajectories; ...). Figures are 85 mm (single column) or "
        "180 mm (double) wide, 7-8 pt fonts, Okabe-Ito colours, vector PDF with embedded "
        "TrueType fonts.",
    )
    pl.add_argument("result", help="result file (.nc or .zarr)")
    pl.add_argument("-k", "--kind", choices=sorted(FIGURES), help="figure type (default: auto)")
    pl.add_argument(
        "-o",
        "--out",
        help="output path; without a suffix writes .pdf and .png "
        "(default: the result path without its suffix)",
    )
    pl.add_argument(
        "--format",
        action="append",
        choices=["pdf", "png", "svg", "eps"],
        help="format(s) to write (repeatable; default pdf and png)",
    )
    pl.add_argument(
        "--width",
        default="single",
        choices=sorted(WIDTHS),
        help="figure width: single (85 mm), onehalf (120 mm), double (180 mm)",
    )
    pl.add_argument(
        "--data",
        help="overlay measured points: a shipped dataset name or a CSV "
        "(pairing runs: stdp_window, frequency_curve)",
    )
    pl.set_defaults(func=_cmd_plot)

    c = sub.add_parser(
        "compare",
        help="compare rules on data: fit each, rank by AIC",
        description="Fit the rule of each experiment file (its [fit] free parameters and "
        "bounds) to each dataset (the files' [fit] data, or --data) with synaptic_fwp.compare, "
        "and write the table (chi-square, chi-square of the published set, AIC, Delta-AIC, "
        "Akaike weight, rank, best values and CIs) ranked by AIC; optionally a figure of "
        "Delta-AIC bars. Fit options (seed, popsize, maxiter, n_boot) come from the first file.",
    )
    c.add_argument("experiments", nargs="+", help="experiment files (.toml) with [fit] tables")
    c.add_argument(
        "--data",
        nargs="+",
        help="shipped dataset names or CSV paths (default: the files' [fit] data)",
    )
    c.add_argument("--seed", type=int, help="random seed of the fits (default: the file's)")
    c.add_argument("-o", "--out", default="results/compare.nc", help="table output (.nc)")
    c.add_argument("--figure", help="also write a figure here (.pdf/.png, or no suffix: both)")
    c.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    c.set_defaults(func=_cmd_compare)

    d = sub.add_parser(
        "datasets",
        help="list, show or export the shipped physiology datasets",
        description="Browse the physiology data and published parameter tables shipped with "
        "the package: 'list' (default), 'show NAME' (contents, units, citation), 'export NAME "
        "-o file.csv|.nc'.",
    )
    d.add_argument("action", nargs="?", choices=["list", "show", "export"], default="list")
    d.add_argument("name", nargs="?", help="dataset name (see 'synaptic-fwp datasets list')")
    d.add_argument("-o", "--out", help="export path (.csv or .nc)")
    d.set_defaults(func=_cmd_datasets)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 2 bad input)."""
    parser = build_parser()
    a = parser.parse_args(argv)
    if not getattr(a, "func", None):
        parser.print_help()
        return 2
    try:
        return int(a.func(a))
    except (ValueError, TypeError, FileNotFoundError, KeyError) as e:
        msg = str(e) if not isinstance(e, KeyError) else f"unknown name {e}"
        print(f"synaptic-fwp {a.command}: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
