"""Paper figures (the only layer besides the faces that imports matplotlib).

Every figure function takes an :class:`xarray.Dataset` (any run of the library, or your own
with the same variable names, passed as arguments) and returns a
:class:`matplotlib.figure.Figure` sized in millimetres for a journal column, drawn with 7-8 pt
fonts and the Okabe-Ito palette; :func:`save` writes vector PDF with embedded TrueType fonts
(and PNG)::

    from synaptic_fwp import plot
    fig = plot.stdp_window(ds, data=sjostrom)      # single column, 85 mm
    plot.save(fig, "out/stdp_window")             # out/stdp_window.pdf + .png

Multi-panel figures: ``fig, axes = plot.new_figure("double", 60, ncols=3)``, pass ``ax=`` to
each figure function, then ``plot.panel_letters(axes)``.
"""

from .figures import (
    FIGURES,
    auto,
    capacity_curve,
    firing_rates,
    fit_result,
    frequency_curve,
    learning_curve,
    membrane_traces,
    place_field,
    plasticity_kernel,
    rule_comparison,
    stdp_window,
    weight_matrix,
    weight_trajectories,
)
from .style import MM, OKABE_ITO, RC, WIDTHS, color, new_figure, panel_letters, save, style

__all__ = [
    "FIGURES",
    "auto",
    "capacity_curve",
    "firing_rates",
    "fit_result",
    "frequency_curve",
    "learning_curve",
    "membrane_traces",
    "place_field",
    "plasticity_kernel",
    "rule_comparison",
    "stdp_window",
    "weight_matrix",
    "weight_trajectories",
    "MM",
    "OKABE_ITO",
    "RC",
    "WIDTHS",
    "color",
    "new_figure",
    "panel_letters",
    "save",
    "style",
]
