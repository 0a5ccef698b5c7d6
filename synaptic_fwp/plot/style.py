"""Journal figure style: sizes in millimetres, 7-8 pt fonts, embedded TrueType fonts, Okabe-Ito
colours and panel letters.

Column widths follow the common two-column journal formats (single column ~85-89 mm, double
column ~170-183 mm; e.g. Nature, Cell Press, eLife, J Neurosci author guidelines); the defaults
are 85 mm and 180 mm. The palette is Okabe & Ito (2008), "Color Universal Design", distinguishable
under the common colour-vision deficiencies. PDFs embed TrueType (Type 42) fonts so text stays
editable and journal preflight accepts it.

Figures are built on :class:`matplotlib.figure.Figure` directly (no pyplot state), so they work
headless and never leak open windows.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import matplotlib as mpl
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

__all__ = [
    "MM",
    "WIDTHS",
    "OKABE_ITO",
    "RC",
    "style",
    "color",
    "new_figure",
    "panel_letters",
    "save",
]

MM = 1.0 / 25.4
"""Inches per millimetre."""

WIDTHS: dict[str, float] = {"single": 85.0, "onehalf": 120.0, "double": 180.0}
"""Figure widths in mm by name."""

OKABE_ITO: tuple[str, ...] = (
    "#0072B2",  # blue
    "#D55E00",  # vermillion
    "#009E73",  # bluish green
    "#E69F00",  # orange
    "#CC79A7",  # reddish purple
    "#56B4E9",  # sky blue
    "#F0E442",  # yellow
    "#000000",  # black
)
"""Okabe & Ito (2008) colour-blind-safe palette, ordered for contrast on white (yellow late)."""

RC: dict[str, object] = {
    "font.family": "sans-serif",
    "font.sans-serif": ["Arial", "Helvetica", "DejaVu Sans"],
    "font.size": 7.0,
    "axes.titlesize": 8.0,
    "axes.labelsize": 7.0,
    "xtick.labelsize": 7.0,
    "ytick.labelsize": 7.0,
    "legend.fontsize": 7.0,
    "legend.frameon": False,
    "axes.linewidth": 0.6,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.prop_cycle": mpl.cycler(color=list(OKABE_ITO)),
    "lines.linewidth": 1.0,
    "lines.markersize": 3.0,
    "errorbar.capsize": 1.5,
    "xtick.major.width": 0.6,
    "ytick.major.width": 0.6,
    "xtick.major.size": 2.5,
    "ytick.major.size": 2.5,
    "pdf.fonttype": 42,
    "ps.fonttype": 42,
    "svg.fonttype": "none",
    "savefig.dpi": 300,
    "figure.dpi": 150,
    "image.cmap": "viridis",
}
"""The rcParams every figure of :mod:`synaptic_fwp.plot` is drawn and saved with."""


@contextlib.contextmanager
def style() -> Iterator[None]:
    """Context manager applying :data:`RC` (fonts 7-8 pt, Type 42 fonts, Okabe-Ito cycle)."""
    with mpl.rc_context(RC):
        yield


def color(i: int) -> str:
    """The ``i``-th Okabe-Ito colour (cycling)."""
    return OKABE_ITO[i % len(OKABE_ITO)]


def _width_mm(width: str | float) -> float:
    if isinstance(width, str):
        if width not in WIDTHS:
            raise ValueError(
                f"width must be one of {sorted(WIDTHS)} or a number of mm, got {width!r}"
            )
        return WIDTHS[width]
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not 10 <= width <= 250:
        raise ValueError(f"width must be a number of mm in [10, 250] or a name, got {width!r}")
    return float(width)


def new_figure(
    width: str | float = "single",
    height_mm: float | None = None,
    nrows: int = 1,
    ncols: int = 1,
    **subplot_kw: object,
) -> tuple[Figure, np.ndarray]:
    """A figure ``width`` wide (``"single"`` = 85 mm, ``"double"`` = 180 mm, or mm) and
    ``height_mm`` high (default: 0.75 of the width per row for one column, 55 mm per row
    otherwise), with an ``(nrows, ncols)`` array of axes laid out by constrained layout.

    Build figures inside :func:`style` so the fonts apply (every figure function here does).
    """
    w = _width_mm(width)
    for n, x in (("nrows", nrows), ("ncols", ncols)):
        if isinstance(x, bool) or not isinstance(x, int) or x < 1:
            raise ValueError(f"{n} must be a positive int, got {x!r}")
    if height_mm is None:
        height_mm = min(w * 0.75, 60.0) * nrows if ncols == 1 else 50.0 * nrows
    if (
        isinstance(height_mm, bool)
        or not isinstance(height_mm, (int, float))
        or not 10 <= height_mm <= 250
    ):
        raise ValueError(f"height_mm must be a number of mm in [10, 250], got {height_mm!r}")
    fig = Figure(figsize=(w * MM, height_mm * MM), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, **subplot_kw)
    return fig, axes


def panel_letters(
    axes: Iterable[Axes] | np.ndarray, letters: Sequence[str] | None = None, size: float = 8.0
) -> None:
    """Put bold panel letters (a, b, c, ...) at the top-left corner of each axes."""
    flat = list(np.asarray(axes, dtype=object).ravel())
    letters = (
        list(letters) if letters is not None else [chr(ord("a") + i) for i in range(len(flat))]
    )
    if len(letters) < len(flat):
        raise ValueError(f"letters has {len(letters)} entries for {len(flat)} axes")
    for ax, letter in zip(flat, letters, strict=False):
        ax.text(
            -0.02,
            1.02,
            letter,
            transform=ax.transAxes,
            fontsize=size,
            fontweight="bold",
            ha="right",
            va="bottom",
        )


def save(fig: Figure, path: str | Path, formats: Sequence[str] | None = None) -> list[Path]:
    """Save ``fig`` at its exact size (no tight bbox, so a single-column figure stays 85 mm).

    ``path`` with a suffix saves that format; without one (or with ``formats``) saves each of
    ``formats`` (default ``("pdf", "png")``). Returns the written paths. PDF text uses embedded
    TrueType fonts (``pdf.fonttype = 42``).
    """
    p = Path(path)
    allowed = ("pdf", "png", "svg", "eps")
    if formats is None:
        formats = (p.suffix[1:].lower(),) if p.suffix else ("pdf", "png")
    out = []
    for f in formats:
        if f not in allowed:
            raise ValueError(f"format must be one of {allowed}, got {f!r} (from {str(path)!r})")
        target = p.with_suffix("." + f)
        target.parent.mkdir(parents=True, exist_ok=True)
        with style():
            fig.savefig(target, format=f)
        out.append(target)
    return out
