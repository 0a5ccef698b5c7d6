"""Figure types for papers; each takes an :class:`xarray.Dataset` and returns a
:class:`matplotlib.figure.Figure` (or draws into ``ax`` when given).

Variable and dimension names are arguments with the defaults the library's protocols and
analyses write, so any run can be plotted: pass the names your Dataset uses. Axis labels come
from each variable's ``long_name`` and ``units`` attrs (DESIGN.md's schema). Times stored in
seconds are shown in ms where that is the natural scale (STDP windows).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping

import numpy as np
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .style import color, new_figure, style

__all__ = [
    "FIGURES",
    "stdp_window",
    "frequency_curve",
    "fit_result",
    "weight_matrix",
    "weight_trajectories",
    "place_field",
    "plasticity_kernel",
    "capacity_curve",
    "learning_curve",
    "rule_comparison",
    "membrane_traces",
    "auto",
]


# ----------------------------------------------------------------------------- helpers


def _check_ds(ds: object, fn: str) -> xr.Dataset:
    if isinstance(ds, xr.DataArray):
        ds = ds.to_dataset(name=ds.name or "value")
    if not isinstance(ds, xr.Dataset):
        raise TypeError(f"{fn}: ds must be an xarray.Dataset, got {type(ds).__name__}")
    return ds


def _get(ds: xr.Dataset, name: str, arg: str, fn: str) -> xr.DataArray:
    """Variable or coordinate ``name`` of ``ds``; a clear error naming ``arg`` otherwise."""
    if not isinstance(name, str):
        raise TypeError(f"{fn}: {arg} must be a variable name (str), got {name!r}")
    if name in ds.variables:
        return ds[name]
    raise ValueError(
        f"{fn}: {arg}={name!r} is not in the Dataset; it has data variables "
        f"{sorted(map(str, ds.data_vars))} and coordinates {sorted(map(str, ds.coords))}"
    )


def _short(name: str, limit: int = 34) -> str:
    """An axis label short enough for a single column: parenthetical remarks and a leading
    "mean"/"measured" go first when ``name`` is long."""
    if len(name) <= limit:
        return name
    name = re.sub(r"\s*\([^)]*\)", "", name).strip()
    name = re.sub(r"^(mean|measured)\s+", "", name)
    return name


def _label(da: xr.DataArray, scale_to_ms: bool = False) -> str:
    name = _short(str(da.attrs.get("long_name", da.name)))
    units = str(da.attrs.get("units", ""))
    if scale_to_ms and units == "s":
        units = "ms"
    if units in ("", "1", "dimensionless"):
        return name
    return f"{name} ({units})"


_PREFIXES = ((1e-12, "p"), (1e-9, "n"), (1e-6, "\u00b5"), (1e-3, "m"), (1.0, ""))


def _si_scale(values: np.ndarray, units: str) -> tuple[float, str]:
    """A factor and unit so SI values read between 1 and 1000 (e.g. 5e-11 S -> 50 pS), for
    the base units S, V, A, F; other units unchanged."""
    if units not in ("S", "V", "A", "F"):
        return 1.0, units
    m = float(np.nanmax(np.abs(values))) if np.size(values) else 0.0
    if not np.isfinite(m) or m == 0.0 or 1.0 <= m < 1000.0:
        return 1.0, units
    for f, p in _PREFIXES:
        if m < 1000.0 * f:
            return 1.0 / f, p + units
    return 1.0, units


def _scaled_label(da: xr.DataArray, unit: str) -> str:
    name = _short(str(da.attrs.get("long_name", da.name)))
    return f"{name} ({unit})" if unit not in ("", "1", "dimensionless") else name


def _ms(da: xr.DataArray) -> tuple[np.ndarray, bool]:
    """Values of a time-like coordinate in ms if stored in s."""
    vals = np.asarray(da.values, dtype=float)
    if da.attrs.get("units") == "s":
        return vals * 1e3, True
    return vals, False


def _reduce_to(
    da: xr.DataArray, keep: tuple[str, ...], select: Mapping[str, object] | None, fn: str
) -> xr.DataArray:
    """Select ``select`` (by label, else index 0 of every extra dim) so only ``keep`` remain."""
    select = dict(select or {})
    for d in select:
        if d not in da.dims:
            raise ValueError(f"{fn}: select has dim {d!r}, not one of {list(da.dims)}")
    by_label = {d: v for d, v in select.items() if d in da.coords}
    by_index = {d: v for d, v in select.items() if d not in da.coords}
    da = da.sel(by_label) if by_label else da
    da = da.isel(by_index) if by_index else da
    extra = [d for d in da.dims if d not in keep]
    if extra:
        da = da.isel({d: 0 for d in extra})
    missing = [d for d in keep if d not in da.dims]
    if missing:
        raise ValueError(f"{fn}: {da.name!r} has dims {list(da.dims)}, needs {list(keep)}")
    return da.transpose(*keep)


def _axes(ax: Axes | None, width: str | float, height_mm: float | None) -> tuple[Figure, Axes]:
    if ax is not None:
        if not isinstance(ax, Axes):
            raise TypeError(f"ax must be a matplotlib Axes or None, got {type(ax).__name__}")
        return ax.figure, ax
    fig, axes = new_figure(width, height_mm)
    return fig, axes[0, 0]


def _lines(
    ax: Axes,
    ds: xr.Dataset,
    y: str,
    x: str,
    hue: str | None,
    sem: str | None,
    fn: str,
    to_ms: bool = False,
    marker: str | None = None,
    label_prefix: str = "",
    style_offset: int = 0,
) -> None:
    """One line per value of ``hue`` (or one line), with an SEM band if ``sem``."""
    da = _get(ds, y, "y", fn)
    xc = _get(ds, x, "x", fn)
    xdim = x
    if x not in da.dims:  # a 1-D variable along one of y's dims (e.g. time_from_plateau(pre))
        if xc.ndim == 1 and xc.dims[0] in da.dims:
            xdim = str(xc.dims[0])
        else:
            raise ValueError(
                f"{fn}: x={x!r} is neither a dim of {y!r} (dims {list(da.dims)}) nor a 1-D "
                "variable along one of them"
            )
    if hue is not None:
        _get(ds, hue, "hue", fn)
        if hue not in da.dims:
            raise ValueError(f"{fn}: hue={hue!r} is not a dim of {y!r} (dims {list(da.dims)})")
    s = _get(ds, sem, "sem", fn) if sem is not None else None
    xv, _ = _ms(xc) if to_ms else (np.asarray(xc.values, dtype=float), False)
    order = np.argsort(xv)
    groups = list(ds[hue].values) if hue is not None else [None]
    for i, g in enumerate(groups):
        sel = {hue: g} if hue is not None else {}
        keep = (xdim,)
        yy = _reduce_to(da.sel(sel) if sel else da, keep, None, fn).values[order]
        lab = None if g is None else f"{label_prefix}{_fmt(g)}"
        c = color(i + style_offset)
        ax.plot(xv[order], yy, color=c, label=lab, marker=marker)
        if s is not None:
            ss = _reduce_to(s.sel(sel) if sel and hue in s.dims else s, keep, None, fn).values[
                order
            ]
            ax.fill_between(xv[order], yy - ss, yy + ss, color=c, alpha=0.25, linewidth=0)


def _fmt(v: object) -> str:
    if isinstance(v, (float, np.floating)):
        return f"{float(v):g}"
    if isinstance(v, bytes):
        return v.decode()
    return str(v)


def _data_names(
    data: xr.Dataset, x: str, y: str | None, sem: str | None, fn: str
) -> tuple[str, str, str | None]:
    """Resolve the data's x, y and SEM names. Datasets of :mod:`synaptic_fwp.datasets` name
    their measure in ``attrs["measure"]`` (SEM: ``<measure>_sem``) and their conditions per
    point; a model's ``dt_pair`` matches a dataset's ``dt``."""
    if y is None:
        y = str(data.attrs.get("measure", "dw"))
    if sem is None and f"{y}_sem" in data.variables:
        sem = f"{y}_sem"
    if x not in data.variables and x == "dt_pair" and "dt" in data.variables:
        x = "dt"
    _get(data, y, "data_y", fn)
    _get(data, x, "data_x", fn)
    return x, y, sem


def _flat(data: xr.Dataset, names: list[str]) -> dict[str, np.ndarray]:
    """The named variables broadcast against each other and flattened."""
    arrs = xr.broadcast(*[data[n] for n in names])
    return {n: np.asarray(a.values).ravel() for n, a in zip(names, arrs, strict=True)}


def _data_points(
    ax: Axes,
    data: xr.Dataset,
    x: str,
    y: str | None,
    sem: str | None,
    fn: str,
    to_ms: bool,
    label: str = "data",
    c: str = "black",
    where: Mapping[str, float] | None = None,
) -> int:
    """Measured points with SEM bars; ``where`` keeps the points whose coordinate equals the
    value (e.g. ``{"dt": 0.01}``), for gridded and per-point datasets alike. Returns the count."""
    x, y, sem = _data_names(data, x, y, sem, fn)
    where = {k: v for k, v in (where or {}).items() if k in data.variables}
    names = [y, x, *where] + ([sem] if sem else [])
    f = _flat(data, list(dict.fromkeys(names)))
    keep = np.ones(f[y].shape, dtype=bool)
    for k, v in where.items():
        keep &= np.isclose(f[k].astype(float), float(v), rtol=1e-9, atol=1e-12)
    xv = f[x].astype(float)[keep] * (1e3 if to_ms and data[x].attrs.get("units", "s") == "s" else 1)
    yy = f[y].astype(float)[keep]
    err = f[sem].astype(float)[keep] if sem else None
    ax.errorbar(
        xv,
        yy,
        yerr=err,
        fmt="o",
        color=c,
        ecolor=c,
        label=label,
        zorder=3,
        markersize=3,
        elinewidth=0.7,
    )
    return int(keep.sum())


# ----------------------------------------------------------------------------- figure types


def _with_labels(fn: Callable[..., Figure]) -> Callable[..., Figure]:
    """Give a figure function ``xlabel``, ``ylabel`` and ``title`` keywords that replace the
    labels taken from the Dataset's attrs (for names too long or too technical for a panel)."""

    @functools.wraps(fn)
    def wrapper(
        *args: object,
        xlabel: str | None = None,
        ylabel: str | None = None,
        title: str | None = None,
        **kwargs: object,
    ) -> Figure:
        fig = fn(*args, **kwargs)
        ax = kwargs.get("ax") or fig.axes[0]
        if xlabel is not None:
            ax.set_xlabel(xlabel)
        if ylabel is not None:
            ax.set_ylabel(ylabel)
        if title is not None:
            ax.set_title(title, fontsize=7)
        return fig

    wrapper.__doc__ = (fn.__doc__ or "") + (
        "\n\n    ``xlabel``, ``ylabel``, ``title`` replace the labels taken from the attrs.\n"
    )
    return wrapper


@_with_labels
def stdp_window(
    ds: xr.Dataset,
    y: str = "dw",
    x: str = "dt_pair",
    *,
    hue: str | None = None,
    sem: str | None = None,
    data: xr.Dataset | None = None,
    data_y: str | None = None,
    data_sem: str | None = None,
    data_x: str | None = None,
    data_where: Mapping[str, float] | None = None,
    ax: Axes | None = None,
    width: str | float = "single",
    height_mm: float | None = None,
) -> Figure:
    """STDP window: weight change ``y`` vs spike-timing difference ``x`` = t_post - t_pre
    (stored in s, shown in ms), one line per ``hue`` value, an SEM band if ``sem``, and
    measured points with SEM bars from ``data`` (a dataset of :mod:`synaptic_fwp.datasets`, or
    any Dataset with ``data_y``/``data_sem`` over ``data_x``; ``data_where`` selects points,
    e.g. ``{"freq": 1.0}``). Extra dims of ``y`` (e.g. a single ``freq``) take index 0."""
    fn = "stdp_window"
    ds = _check_ds(ds, fn)
    with style():
        fig, ax = _axes(ax, width, height_mm)
        _lines(ax, ds, y, x, hue, sem, fn, to_ms=True)
        if data is not None:
            _data_points(
                ax, _check_ds(data, fn), data_x or x, data_y, data_sem, fn, True, where=data_where
            )
        ax.axhline(0, color="0.6", lw=0.5, zorder=0)
        ax.axvline(0, color="0.6", lw=0.5, zorder=0)
        ax.set_xlabel(_label(ds[x], scale_to_ms=True))
        ax.set_ylabel(_label(ds[y]))
        if hue is not None or data is not None:
            ax.legend()
    return fig


@_with_labels
def frequency_curve(
    ds: xr.Dataset,
    y: str = "dw",
    x: str = "freq",
    *,
    by: str | None = "dt_pair",
    sem: str | None = None,
    data: xr.Dataset | None = None,
    data_y: str | None = None,
    data_sem: str | None = None,
    data_by: str | None = None,
    logx: bool = False,
    ax: Axes | None = None,
    width: str | float = "single",
    height_mm: float | None = None,
) -> Figure:
    """Weight change ``y`` vs pairing frequency ``x`` (Hz), one line per value of ``by`` (the
    pairing delay: +10 ms, -10 ms as in Sjostrom et al. 2001), with measured points and SEM
    bars from ``data`` (its ``data_by`` coordinate, default ``by`` or ``dt``, selects the points
    of each line)."""
    fn = "frequency_curve"
    ds = _check_ds(ds, fn)
    if by is not None and by not in ds.dims:
        by = None
    dd = _check_ds(data, fn) if data is not None else None
    if dd is not None and by is not None and data_by is None:
        data_by = by if by in dd.variables else ("dt" if "dt" in dd.variables else None)
    with style():
        fig, ax = _axes(ax, width, height_mm)
        groups = list(ds[by].values) if by is not None else [None]
        for i, g in enumerate(groups):
            sub = ds.sel({by: g}) if by is not None else ds
            glab = "" if g is None else _by_label(ds, by, g)
            _lines(ax, sub, y, x, None, sem, fn, marker=None, style_offset=i)
            ax.lines[-1].set_label(f"model {glab}".strip())
            if dd is not None:
                where = {data_by: float(g)} if data_by is not None and g is not None else None
                _data_points(
                    ax,
                    dd,
                    x,
                    data_y,
                    data_sem,
                    fn,
                    False,
                    label=f"data {glab}".strip(),
                    c=color(i),
                    where=where,
                )
        ax.axhline(0, color="0.6", lw=0.5, zorder=0)
        if logx:
            ax.set_xscale("log")
        ax.set_xlabel(_label(ds[x]))
        ax.set_ylabel(_label(ds[y]))
        ax.legend()
    return fig


def _by_label(ds: xr.Dataset, by: str, g: object) -> str:
    c = ds[by]
    v = float(g) if np.issubdtype(np.asarray(g).dtype, np.number) else g
    name = "\u0394t" if by in ("dt", "dt_pair") else by
    if isinstance(v, float) and c.attrs.get("units") == "s":
        return f"{name} = {v * 1e3:+g} ms"
    units = c.attrs.get("units", "")
    return f"{name} = {_fmt(v)} {units}".strip()


@_with_labels
def fit_result(
    ds: xr.Dataset,
    *,
    x: str | None = None,
    group: str | None = None,
    logx: bool | None = None,
    ax: Axes | None = None,
    width: str | float = "single",
    height_mm: float | None = None,
) -> Figure:
    """A fit of :func:`synaptic_fwp.fit.fit` (or :func:`~synaptic_fwp.fit.evaluate`): the data
    with SEM bars and the fitted model curve on its fine grid, one colour per ``group`` value
    (default: the dataset's ``x`` and ``group`` conditions stored in the fit's attrs, e.g.
    frequency, grouped by pairing delay), with the fit's chi-square and AIC in the title."""
    fn = "fit_result"
    ds = _check_ds(ds, fn)
    for v in ("data", "model_grid"):
        _get(ds, v, "ds", fn)
    x = x or str(ds.attrs.get("x") or "") or None
    if x is None:
        raise ValueError(f"{fn}: the fit has no 'x' attr; pass x (one of its point coordinates)")
    group = group if group is not None else (str(ds.attrs.get("group") or "") or None)
    _get(ds, x, "x", fn)
    gx = _get(ds, f"grid_{x}", "x", fn)
    groups = [None]
    if group is not None:
        _get(ds, group, "group", fn)
        groups = list(np.unique(np.asarray(ds[group].values)))
    to_ms = ds[x].attrs.get("units") == "s"
    scale = 1e3 if to_ms else 1.0
    with style():
        fig, ax = _axes(ax, width, height_mm)
        for i, g in enumerate(groups):
            glab = "" if g is None else _by_label(ds, group, g)
            pm = np.ones(ds.sizes["point"], bool) if g is None else np.isclose(ds[group].values, g)
            gm = (
                np.ones(ds.sizes["grid"], bool)
                if g is None
                else np.isclose(ds[f"grid_{group}"].values, g)
            )
            xs = np.asarray(gx.values, float)[gm]
            o = np.argsort(xs)
            ax.plot(
                xs[o] * scale,
                np.asarray(ds["model_grid"].values)[gm][o],
                color=color(i),
                label=f"fit {glab}".strip(),
            )
            ax.errorbar(
                np.asarray(ds[x].values, float)[pm] * scale,
                np.asarray(ds["data"].values)[pm],
                yerr=np.asarray(ds["data_sem"].values)[pm] if "data_sem" in ds else None,
                fmt="o",
                color=color(i),
                markersize=3,
                elinewidth=0.7,
                label=f"data {glab}".strip(),
                zorder=3,
            )
        ax.axhline(0, color="0.6", lw=0.5, zorder=0)
        xs_all = np.asarray(gx.values, float)
        if logx is None:
            logx = bool(xs_all.min() > 0 and xs_all.max() / xs_all.min() >= 100)
        if logx:
            ax.set_xscale("log")
        ax.set_xlabel(_label(ds[x], scale_to_ms=to_ms))
        ax.set_ylabel(_label(ds["data"]))
        title = str(ds.attrs.get("model", ""))
        if "objective" in ds:
            title += f"  \u03c7\u00b2 = {float(ds['objective']):.3g}"
        if "aic" in ds:
            title += f", AIC = {float(ds['aic']):.3g}"
        ax.set_title(title.strip(), fontsize=7)
        ax.legend()
    return fig


def _weight_var(ds: xr.Dataset, var: str | None, fn: str) -> str:
    """``var``, or the Dataset's weight variable (``W``, or the one variable with dims ``post``
    and ``pre``, e.g. an engine run's ``S_W``)."""
    if var is not None:
        return var
    cands = [str(v) for v in ds.data_vars if {"post", "pre"} <= set(ds[v].dims)]
    if "W" in cands:
        return "W"
    if len(cands) == 1:
        return cands[0]
    raise ValueError(
        f"{fn}: pass var, the weight variable; candidates with dims (post, pre): {cands}"
    )


@_with_labels
def weight_matrix(
    ds: xr.Dataset,
    var: str | None = None,
    *,
    post: str = "post",
    pre: str = "pre",
    time: str = "time",
    at: float | None = None,
    select: Mapping[str, object] | None = None,
    cmap: str = "viridis",
    ax: Axes | None = None,
    width: str | float = "single",
    height_mm: float | None = None,
) -> Figure:
    """Weight matrix ``var`` (default: the weight variable, ``W`` or ``<projection>_W``) as an
    image (rows = postsynaptic, columns = presynaptic neurons;
    DESIGN.md's ``(..., n_post, n_pre)``) with a colour bar. With a ``time`` dim, shows the
    state nearest to ``at`` seconds (default: the last); other dims by ``select`` or index 0."""
    fn = "weight_matrix"
    ds = _check_ds(ds, fn)
    var = _weight_var(ds, var, fn)
    da = _get(ds, var, "var", fn)
    if time in da.dims:
        da = da.isel({time: -1}) if at is None else da.sel({time: at}, method="nearest")
    da = _reduce_to(da, (post, pre), select, fn)
    with style():
        fig, ax = _axes(ax, width, height_mm)
        vals = np.asarray(da.values, dtype=float)
        f, unit = _si_scale(vals, str(ds[var].attrs.get("units", "")))
        im = ax.imshow(
            vals * f,
            cmap=cmap,
            aspect="auto",
            interpolation="nearest",
            origin="upper",
        )
        ax.set_xlabel(f"presynaptic neuron ({pre})")
        ax.set_ylabel(f"postsynaptic neuron ({post})")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        cb = fig.colorbar(im, ax=ax, shrink=0.9)
        cb.set_label(_scaled_label(ds[var], unit))
        cb.outline.set_linewidth(0.5)
    return fig


@_with_labels
def weight_trajectories(
    ds: xr.Dataset,
    var: str | None = None,
    *,
    time: str = "time",
    max_lines: int = 12,
    select: Mapping[str, object] | None = None,
    ax: Axes | None = None,
    width: str | float = "single",
    height_mm: float | None = None,
) -> Figure:
    """Weights over time: up to ``max_lines`` individual synapses (thin) and the mean over all
    synapses (thick black). The dims other than ``time`` and the synapse dims (``post``,
    ``pre``) are chosen by ``select`` or index 0."""
    fn = "weight_trajectories"
    ds = _check_ds(ds, fn)
    var = _weight_var(ds, var, fn)
    da = _get(ds, var, "var", fn)
    if time not in da.dims:
        raise ValueError(
            f"{fn}: {var!r} has no {time!r} dim (dims {list(da.dims)}); record "
            "the weights over time to plot trajectories"
        )
    if isinstance(max_lines, bool) or not isinstance(max_lines, int) or max_lines < 0:
        raise ValueError(f"{fn}: max_lines must be a non-negative int, got {max_lines!r}")
    syn = tuple(d for d in ("post", "pre") if d in da.dims)
    da = _reduce_to(da, (time, *syn), select, fn)
    t = np.asarray(ds[time].values, dtype=float)
    flat = np.asarray(da.values, dtype=float).reshape(len(t), -1)
    f, unit = _si_scale(flat, str(ds[var].attrs.get("units", "")))
    flat = flat * f
    with style():
        fig, ax = _axes(ax, width, height_mm)
        idx = np.linspace(0, flat.shape[1] - 1, min(max_lines, flat.shape[1])).astype(int)
        for j, i in enumerate(np.unique(idx)):
            ax.plot(t, flat[:, i], color=color(j), lw=0.5, alpha=0.8)
        ax.plot(t, flat.mean(axis=1), color="black", lw=1.5, label="mean")
        ax.set_xlabel(_label(ds[time]))
        ax.set_ylabel(_scaled_label(ds[var], unit))
        ax.legend()
    return fig


@_with_labels
def place_field(
    ds: xr.Dataset,
    var: str = "ramp",
    x: str = "position",
    *,
    hue: str | None = None,
    plateau: float | str | None = "plateau_position",
    ax: Axes | None = None,
    width: str | float = "single",
    height_mm: float | None = None,
) -> Figure:
    """Place-field ramp ``var`` (e.g. depolarisation in mV, or the summed weighted input) vs
    track position ``x``, one line per ``hue`` (e.g. lap or parameter set), with the plateau
    position marked (a number, or the name of a Dataset attr or variable holding it)."""
    fn = "place_field"
    ds = _check_ds(ds, fn)
    with style():
        fig, ax = _axes(ax, width, height_mm)
        _lines(ax, ds, var, x, hue, None, fn, label_prefix=f"{hue} " if hue else "")
        p = _scalar(ds, plateau)
        if p is not None:
            ax.axvline(p, color="0.3", ls="--", lw=0.7, label="plateau")
        ax.set_xlabel(_label(ds[x]))
        ax.set_ylabel(_label(ds[var]))
        if hue is not None or p is not None:
            ax.legend()
    return fig


def _scalar(ds: xr.Dataset, v: float | str | None) -> float | None:
    if v is None:
        return None
    if isinstance(v, str):
        if v in ds.attrs:
            return float(np.asarray(ds.attrs[v]).ravel()[0])
        if v in ds.variables and ds[v].size >= 1:
            return float(np.asarray(ds[v].values).ravel()[0])
        return None
    return float(v)


@_with_labels
def plasticity_kernel(
    ds: xr.Dataset,
    var: str = "kernel",
    x: str = "time_from_plateau",
    *,
    hue: str | None = None,
    ax: Axes | None = None,
    width: str | float = "single",
    height_mm: float | None = None,
) -> Figure:
    """Plasticity kernel: the change ``var`` vs time ``x`` of presynaptic activity relative to
    the plateau (negative = before), as in Bittner et al. 2017 / Milstein et al. 2021."""
    fn = "plasticity_kernel"
    ds = _check_ds(ds, fn)
    with style():
        fig, ax = _axes(ax, width, height_mm)
        _lines(ax, ds, var, x, hue, None, fn, label_prefix=f"{hue} " if hue else "")
        ax.axhline(0, color="0.6", lw=0.5, zorder=0)
        ax.axvline(0, color="0.3", ls="--", lw=0.7)
        ax.set_xlabel(_label(ds[x]))
        ax.set_ylabel(_label(ds[var]))
        if hue is not None:
            ax.legend()
    return fig


@_with_labels
def capacity_curve(
    ds: xr.Dataset,
    var: str = "recall_error",
    x: str = "load",
    *,
    hue: str | None = "rule",
    sem: str | None = None,
    theory: str | None = None,
    logy: bool = False,
    ax: Axes | None = None,
    width: str | float = "single",
    height_mm: float | None = None,
) -> Figure:
    """Memory capacity: recall error ``var`` vs load ``x`` (stored pairs per dimension, P/N),
    one line per rule (``hue``), optional SEM band and a dashed theory curve (variable
    ``theory``, e.g. the Hebbian crosstalk prediction)."""
    return _curve(ds, var, x, hue, sem, logy, ax, width, height_mm, "capacity_curve",
                  marker="o", theory=theory)


def _curve(
    ds: xr.Dataset,
    var: str,
    x: str,
    hue: str | None,
    sem: str | None,
    logy: bool,
    ax: Axes | None,
    width: str | float,
    height_mm: float | None,
    fn: str,
    *,
    marker: str | None = None,
    theory: str | None = None,
) -> Figure:
    """``var`` against ``x``, one line per ``hue`` value, optional SEM band and theory curve:
    the body shared by :func:`capacity_curve` and :func:`learning_curve`."""
    ds = _check_ds(ds, fn)
    if hue is not None and hue not in ds.dims:
        hue = None
    with style():
        fig, ax = _axes(ax, width, height_mm)
        if marker is None:
            _lines(ax, ds, var, x, hue, sem, fn)
        else:
            _lines(ax, ds, var, x, hue, sem, fn, marker=marker)
        if theory is not None:
            th = _get(ds, theory, "theory", fn)
            th = _reduce_to(th, (x,), None, fn)
            ax.plot(ds[x].values, th.values, color="black", ls="--", lw=0.8, label="theory")
        if logy:
            ax.set_yscale("log")
        ax.set_xlabel(_label(ds[x]))
        ax.set_ylabel(_label(ds[var]))
        if hue is not None or theory is not None:
            ax.legend()
    return fig


@_with_labels
def learning_curve(
    ds: xr.Dataset,
    var: str = "loss",
    x: str = "step",
    *,
    hue: str | None = "rule",
    sem: str | None = None,
    logy: bool = False,
    ax: Axes | None = None,
    width: str | float = "single",
    height_mm: float | None = None,
) -> Figure:
    """Learning curve: ``var`` (loss, accuracy) vs training step or epoch ``x``, one line per
    ``hue`` value (e.g. rule), with an optional SEM band over seeds."""
    return _curve(ds, var, x, hue, sem, logy, ax, width, height_mm, "learning_curve")


@_with_labels
def rule_comparison(
    ds: xr.Dataset,
    metric: str = "aic",
    *,
    rule: str = "rule",
    dataset: str | None = "dataset",
    relative: bool = True,
    ax: Axes | None = None,
    width: str | float = "single",
    height_mm: float | None = None,
) -> Figure:
    """Rule comparison: horizontal bars of ``metric`` (e.g. AIC, BIC, RMSE) for each rule (dim
    ``rule``), one colour per dataset (dim ``dataset``), each bar labelled with its value. With
    ``relative`` the best (lowest) rule of each dataset is subtracted, so bars show Delta-AIC
    and the best rule of each dataset reads "0 (best)"."""
    fn = "rule_comparison"
    ds = _check_ds(ds, fn)
    da = _get(ds, metric, "metric", fn)
    if rule not in da.dims:
        raise ValueError(f"{fn}: rule={rule!r} is not a dim of {metric!r} (dims {list(da.dims)})")
    keep = (rule, dataset) if dataset is not None and dataset in da.dims else (rule,)
    da = _reduce_to(da, keep, None, fn)
    vals = np.asarray(da.values, dtype=float).reshape(da.sizes[rule], -1)
    if relative:
        vals = vals - np.nanmin(vals, axis=0, keepdims=True)
    rules = [_fmt(r) for r in ds[rule].values]
    groups = [_fmt(g) for g in ds[keep[1]].values] if len(keep) == 2 else [""]
    if height_mm is None and ax is None:
        height_mm = min(20.0 + 7.0 * len(rules) * len(groups), 200.0)
    with style():
        fig, ax = _axes(ax, width, height_mm)
        m = len(groups)
        h = 0.8 / m
        y = np.arange(len(rules))
        top = np.nanmax(vals) if np.isfinite(vals).any() else 1.0
        for j, g in enumerate(groups):
            yy = y + (j - (m - 1) / 2) * h
            ax.barh(yy, vals[:, j], height=h, color=color(j), label=g or None)
            for yi, v in zip(yy, vals[:, j], strict=True):
                txt = "0 (best)" if relative and v == 0 else f"{v:.3g}"
                ax.text(v + 0.01 * (top or 1.0), yi, txt, va="center", ha="left", fontsize=6)
        ax.set_yticks(y, rules)
        ax.invert_yaxis()
        ax.set_xlim(0, (top or 1.0) * 1.25)
        name = str(da.attrs.get("long_name", metric))
        ax.set_xlabel(f"\u0394 {name} (vs best)" if relative else _label(ds[metric]))
        if m > 1:
            ax.legend(loc="lower right")
        elif groups[0]:
            ax.set_title(groups[0], fontsize=7)
    return fig


def _pop_var(ds: xr.Dataset, var: str | None, suffix: str, arg: str, fn: str) -> str | None:
    """``var``, or the one ``<population>_<suffix>`` variable of an engine run (``None`` if
    there is none and ``var`` was not given; an error naming ``arg`` if several)."""
    if var is not None:
        _get(ds, var, arg, fn)
        return var
    found = sorted(v for v in map(str, ds.data_vars) if v.endswith(f"_{suffix}"))
    if len(found) > 1:
        raise ValueError(f"{fn}: several {suffix!r} variables {found}; pass {arg}=")
    return found[0] if found else None


def membrane_traces(
    ds: xr.Dataset,
    var: str | None = None,
    *,
    spikes: str | None = None,
    adaptation: str | None = None,
    time: str = "time",
    instance: str | None = None,
    neuron: int = 0,
    max_panels: int = 8,
    titles: list[str] | None = None,
    spike_peak: float = 0.02,
    width: str | float = "double",
    height_mm: float | None = None,
) -> Figure:
    """Membrane potential of one neuron over time, one panel per instance of a network run
    (up to ``max_panels``, along ``instance``: by default ``V``'s first dim other than ``time``
    and ``neuron``, e.g. ``batch`` or an experiment file's first sweep; other dims are taken at
    index 0): ``V`` in mV against time in ms, each spike
    drawn as a line up to ``spike_peak`` (V; the model's cut-off is not the spike's peak), and,
    for AdEx runs, the adaptation current in pA below. ``var``, ``spikes`` and ``adaptation``
    default to the run's ``<population>_V``, ``_spikes`` and ``_w`` variables (record them with
    ``net.run(record=["pop.V", "pop.spikes", "pop.w"])``); ``titles`` name the panels (e.g. the
    firing patterns of :meth:`synaptic_fwp.neurons.AdExPopulation.naud2008`), else the swept
    parameters label them."""
    fn = "membrane_traces"
    ds = _check_ds(ds, fn)
    var = _pop_var(ds, var, "V", "var", fn)
    if var is None:
        raise ValueError(f"{fn}: no '<population>_V' variable in the Dataset; record 'pop.V' or "
                         f"pass var= (it has {sorted(map(str, ds.data_vars))})")
    spikes = _pop_var(ds, spikes, "spikes", "spikes", fn)
    adaptation = _pop_var(ds, adaptation, "w", "adaptation", fn)
    for n, x, lo in (("max_panels", max_panels, 1), ("neuron", neuron, 0)):
        if isinstance(x, bool) or not isinstance(x, int) or x < lo:
            raise ValueError(f"{fn}: {n} must be an int >= {lo}, got {x!r}")
    da = ds[var]
    if time not in da.dims:
        raise ValueError(f"{fn}: {var!r} has no {time!r} dim (dims {list(da.dims)})")
    if instance is None:
        instance = next((d for d in map(str, da.dims) if d not in (time, "neuron")), "batch")
    elif instance not in da.dims:
        raise ValueError(f"{fn}: instance={instance!r} is not a dim of {var!r} "
                         f"({list(da.dims)})")
    n_inst = ds.sizes[instance] if instance in da.dims else 1
    n = min(n_inst, max_panels)
    if titles is not None and len(titles) < n:
        raise ValueError(f"{fn}: titles has {len(titles)} names for {n} panels")
    t, in_ms = _ms(ds[time])

    def trace(name: str, i: int) -> np.ndarray:
        x = ds[name]
        if instance in x.dims:
            x = x.isel({instance: i})
        if "neuron" in x.dims:
            x = x.isel(neuron=neuron)
        return np.asarray(_reduce_to(x, (time,), None, fn).values, dtype=float)

    def label(i: int) -> str:
        if titles is not None:
            return str(titles[i])
        if instance in ds.coords and instance != "batch":  # a sweep dim: its values
            return f"{instance} {_fmt(ds[instance].values[i])}"
        swept = [c for c in ds.coords if ds[c].dims == (instance,) and c != instance
                 and c != "seed"]
        return ", ".join(f"{c} {_fmt(ds[c].values[i])}" for c in swept[:2]) or f"instance {i}"

    rows = 2 if adaptation is not None else 1
    ncols = min(n, 4)
    nrows = -(-n // ncols)
    with style():
        fig, axes = new_figure(width, height_mm or min(250.0, 32.0 * rows * nrows),
                               nrows=rows * nrows, ncols=ncols, sharex=True)
        for i in range(nrows * ncols):
            r, c = divmod(i, ncols)
            ax_v = axes[r * rows, c]
            if i >= n:
                for k in range(rows):
                    axes[r * rows + k, c].set_visible(False)
                continue
            v = trace(var, i) * 1e3
            ax_v.plot(t, v, color=color(0), lw=0.6)
            if spikes is not None:
                ts = t[trace(spikes, i) > 0]
                ax_v.vlines(ts, np.interp(ts, t, v), spike_peak * 1e3, color=color(0), lw=0.6)
            ax_v.set_title(label(i), fontsize=7)
            if c == 0:
                ax_v.set_ylabel("V (mV)")
            if adaptation is not None:
                ax_w = axes[r * rows + 1, c]
                ax_w.plot(t, trace(adaptation, i) * 1e12, color=color(1), lw=0.6)
                if c == 0:
                    ax_w.set_ylabel("w (pA)")
            bottom = axes[r * rows + rows - 1, c]
            bottom.set_xlabel(_label(ds[time], scale_to_ms=in_ms))
    return fig


@_with_labels
def firing_rates(
    ds: xr.Dataset,
    var: str | None = None,
    *,
    time: str = "time",
    hue: str | None = None,
    ax: Axes | None = None,
    width: str | float = "single",
    height_mm: float | None = None,
) -> Figure:
    """Firing rate of a network run's population over time, in Hz: its spike counts per
    recording interval (``var``: by default the run's ``<population>_spikes``; record
    ``pop.spikes``) divided by each interval's length (from the ``time`` coords and the run's
    ``t_start`` attr), averaged over the population's neurons and over every dim but ``time`` and
    ``hue``; one line per ``hue`` value (default: the first other dim, e.g. an experiment
    file's sweep, labelled with its values). A run with several populations (e.g. E and I) and
    no ``var`` gives one line per population, averaged over everything else."""
    fn = "firing_rates"
    ds = _check_ds(ds, fn)
    if var is None:
        found = sorted(v for v in map(str, ds.data_vars) if v.endswith("_spikes"))
        if len(found) > 1:
            if hue is not None:
                raise ValueError(f"{fn}: hue={hue!r} applies to one population; pass var= (one "
                                 f"of {found}) too")
            return _population_rates(ds, found, time, ax, width, height_mm, fn)
    var = _pop_var(ds, var, "spikes", "var", fn)
    if var is None:
        raise ValueError(f"{fn}: no '<population>_spikes' variable in the Dataset; record "
                         f"'pop.spikes' or pass var= (it has {sorted(map(str, ds.data_vars))})")
    rate, t = _rate(ds, var, time, fn)
    others = [str(d) for d in rate.dims if d != time]
    if hue is None:
        hue = others[0] if others else None
    elif hue not in others:
        raise ValueError(f"{fn}: hue={hue!r} is not a dim of {var!r} other than {time!r} "
                         f"({others})")
    rest = [d for d in others if d != hue]
    if rest:
        rate = rate.mean(rest)
    with style():
        fig, ax = _axes(ax, width, height_mm)
        if hue is None:
            ax.plot(t, rate.values, "o-", ms=2, color=color(0))
        else:
            units = str(ds[hue].attrs.get("units", "")) if hue in ds.coords else ""
            for i in range(rate.sizes[hue]):
                val = _fmt(ds[hue].values[i]) if hue in ds.coords else str(i)
                lab = f"{hue} {val}" + (f" {units}" if units not in ("", "1") else "")
                ax.plot(t, rate.isel({hue: i}).values, "o-", ms=2, color=color(i), label=lab)
            ax.legend()
        ax.set_xlabel(_label(ds[time]))
        ax.set_ylabel("firing rate (Hz)")
    return fig


def _neuron_dims(da: xr.DataArray) -> list[str]:
    """The neuron dims of an engine record: ``post`` (or ``post_<population>``), ``neuron``."""
    return [str(d) for d in da.dims if d in ("post", "neuron") or str(d).startswith("post_")]


def _rate(ds: xr.Dataset, var: str, time: str, fn: str) -> tuple[xr.DataArray, np.ndarray]:
    """Spike counts ``var`` over each recording interval (Hz), averaged over the neurons."""
    da = ds[var]
    if time not in da.dims or ds.sizes[time] == 0:
        raise ValueError(f"{fn}: {var!r} has no records along {time!r} (dims {list(da.dims)})")
    t = np.asarray(ds[time].values, dtype=float)
    interval = np.diff(np.concatenate([[float(ds.attrs.get("t_start", 0.0))], t]))
    if not (interval > 0).all():
        raise ValueError(f"{fn}: the {time!r} coords must increase from the run's t_start, got "
                         f"intervals {interval[:5].tolist()}")
    rate = da / xr.DataArray(interval, dims=(time,))
    return rate.mean(_neuron_dims(rate)), t


def _population_rates(ds: xr.Dataset, names: list[str], time: str, ax: Axes | None,
                      width: str | float, height_mm: float | None, fn: str) -> Figure:
    """:func:`firing_rates` with one line per population (every other dim averaged)."""
    with style():
        fig, ax = _axes(ax, width, height_mm)
        for i, var in enumerate(names):
            rate, t = _rate(ds, var, time, fn)
            rate = rate.mean([d for d in rate.dims if d != time])
            ax.plot(t, rate.values, "o-", ms=2, color=color(i), label=var[: -len("_spikes")])
        ax.legend()
        ax.set_xlabel(_label(ds[time]))
        ax.set_ylabel("firing rate (Hz)")
    return fig


FIGURES: dict[str, Callable[..., Figure]] = {
    "stdp_window": stdp_window,
    "fit_result": fit_result,
    "frequency_curve": frequency_curve,
    "weight_matrix": weight_matrix,
    "weight_trajectories": weight_trajectories,
    "place_field": place_field,
    "plasticity_kernel": plasticity_kernel,
    "capacity_curve": capacity_curve,
    "learning_curve": learning_curve,
    "rule_comparison": rule_comparison,
    "membrane_traces": membrane_traces,
    "firing_rates": firing_rates,
}
"""Figure types by name (the ``synaptic-fwp plot --kind`` choices)."""


def auto(ds: xr.Dataset, **kwargs: object) -> Figure:
    """Pick a figure type for ``ds``: its ``figure`` attr if set (a key of :data:`FIGURES`),
    else by its contents (a fit -> data and fitted curve; a pairing run with several
    ``freq`` -> frequency curve, else with a ``dt_pair`` dim -> STDP window; ``aic`` over
    ``rule`` -> rule comparison; weights (``W`` or an engine run's ``<projection>_W``, dims
    ``post``, ``pre``) over ``time`` -> weight trajectories, else -> weight matrix; ``ramp`` ->
    place field; an engine run's ``<population>_V`` over ``time`` -> membrane traces, else its
    ``<population>_spikes`` -> firing rates)."""
    ds = _check_ds(ds, "auto")
    kind = ds.attrs.get("figure")
    if kind is not None:
        if kind not in FIGURES:
            raise ValueError(
                f"auto: the Dataset's figure attr {kind!r} is not one of {sorted(FIGURES)}"
            )
        return FIGURES[str(kind)](ds, **kwargs)
    dv = set(map(str, ds.data_vars))
    if {"model_grid", "data"} <= dv:
        return fit_result(ds, **kwargs)
    if "dw" in dv and "freq" in ds.dims and ds.sizes["freq"] > 1:
        return frequency_curve(ds, **kwargs)
    if "dw" in dv and "dt_pair" in ds.dims:
        return stdp_window(ds, **kwargs)
    if "aic" in dv and "rule" in ds.dims:
        return rule_comparison(ds, **kwargs)
    weights = [v for v in sorted(dv) if {"post", "pre"} <= set(ds[v].dims)]
    if weights:  # W, or an engine run's <projection>_W
        w = "W" if "W" in weights else weights[0]
        if "time" in ds[w].dims and ds.sizes["time"] > 1:
            return weight_trajectories(ds, w, **kwargs)
        return weight_matrix(ds, w, **kwargs)
    if "ramp" in dv:
        return place_field(ds, **kwargs)
    if "recall_error" in dv:
        return capacity_curve(ds, **kwargs)
    if "loss" in dv:
        return learning_curve(ds, **kwargs)
    if any(v.endswith("_V") and "time" in ds[v].dims for v in dv):  # an engine run's V
        return membrane_traces(ds, **kwargs)
    if any(v.endswith("_spikes") and "time" in ds[v].dims for v in dv):  # spike counts only
        return firing_rates(ds, **kwargs)
    raise ValueError(
        f"auto: cannot tell which figure fits a Dataset with variables {sorted(dv)}; "
        f"pass a kind, one of {sorted(FIGURES)}"
    )
