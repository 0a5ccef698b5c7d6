"""Frequency dependence of STDP: the triplet rule's published visual-cortex fits against
Sjostrom, Turrigiano & Nelson 2001.

Protocol and readout as Pfister & Gerstner 2006 (Fig. 4 / Table 3): 60 pre/post pairings at
0.1-50 Hz with ``dt = t_post - t_pre = +10 ms`` and ``-10 ms``; the weight starts at ``w0 = 1``
and the model's change is the relative change ``(w_end - w0)/w0`` (additive rule, so this is the
sum of the increments), compared with the measured fractional change (after/before - 1, mean and
SEM) of the shipped table. Four parameter sets: all-to-all and nearest-spike interactions, full
and minimal models. Goodness of fit per set: ``chi2 = sum_i ((model_i - mean_i) / sem_i)^2`` over
the 10 data points and the normalised error ``E = chi2 / 10`` (Pfister & Gerstner's measure).

Run::

    python -m synaptic_fwp.analyses.sjostrom_frequency [--quick] [--out DIR]

writes ``sjostrom_frequency.nc`` and ``.csv`` (the table: model vs data at the measured
frequencies, plus chi-square per set), ``.pdf`` and ``.png`` (the figure) into ``DIR``
(default ``results/sjostrom_frequency``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from synaptic_fwp.plasticity.params import read_table
from synaptic_fwp.plasticity.stdp import TripletSTDP, pairing_closed_form
from synaptic_fwp.protocols.pairing import pairing

from ._study import main as study_main
from ._study import new_figure

if TYPE_CHECKING:
    import pandas as pd

NAME = "sjostrom_frequency"
SETS = [
    ("visual_cortex", "all_to_all", "full"),
    ("visual_cortex", "all_to_all", "minimal"),
    ("visual_cortex", "nearest_spike", "full"),
    ("visual_cortex", "nearest_spike", "minimal"),
]
DATA = "sjostrom2001_frequency.csv"


def load_data() -> xr.Dataset:
    """The shipped Sjostrom 2001 table as a Dataset over (freq, dt_pair)."""
    rows, attrs = read_table(DATA)
    freqs = sorted({float(r["freq_Hz"]) for r in rows})
    delays = sorted({float(r["dt_ms"]) * 1e-3 for r in rows})
    mean = np.full((len(freqs), len(delays)), np.nan)
    sem = np.full_like(mean, np.nan)
    for r in rows:
        i, j = freqs.index(float(r["freq_Hz"])), delays.index(float(r["dt_ms"]) * 1e-3)
        mean[i, j], sem[i, j] = float(r["dw_mean"]), float(r["dw_sem"])
    return xr.Dataset(
        {
            "dw_data": (("freq", "dt_pair"), mean,
                        {"units": "1", "long_name": "measured fractional weight change (mean)"}),
            "dw_sem": (("freq", "dt_pair"), sem, {"units": "1", "long_name": "SEM"}),
        },
        coords={"freq": ("freq", np.array(freqs), {"units": "Hz", "long_name": "frequency"}),
                "dt_pair": ("dt_pair", np.array(delays),
                            {"units": "s", "long_name": "t_post - t_pre"})},
        attrs={"data_source": attrs["source"]},
    )


def run(quick: bool = False) -> xr.Dataset:
    data = load_data()
    curve_f = np.linspace(0.1, 50.0, 12 if quick else 100)
    names, model, curve, closed = [], [], [], []
    for key in SETS:
        rule = TripletSTDP.from_table(*key)
        names.append("/".join(key[1:]))
        ds = pairing(rule, dt=data.dt_pair.values, freq=data.freq.values, n_pairs=60)
        model.append(ds.dw.values)
        closed.append(pairing_closed_form(rule, data.dt_pair.values[None, :],
                                          data.freq.values[:, None], 60))
        curve.append(pairing(rule, dt=data.dt_pair.values, freq=curve_f, n_pairs=60).dw.values)
    model = np.stack(model)
    resid = (model - data.dw_data.values) / data.dw_sem.values
    chi2 = (resid**2).sum(axis=(1, 2))
    n = int(np.isfinite(data.dw_data.values).sum())
    out = xr.Dataset(
        {
            "dw_model": (("set", "freq", "dt_pair"), model,
                         {"units": "1", "long_name": "model relative weight change (w0 = 1)"}),
            "dw_closed_form": (("set", "freq", "dt_pair"), np.stack(closed),
                               {"units": "1", "long_name": "closed-form weight change"}),
            "dw_data": data.dw_data,
            "dw_sem": data.dw_sem,
            "residual": (("set", "freq", "dt_pair"), resid,
                         {"units": "1", "long_name": "(model - mean) / SEM"}),
            "chi2": (("set",), chi2, {"units": "1", "long_name": f"chi-square over {n} points"}),
            "E": (("set",), chi2 / n,
                  {"units": "1", "long_name": "normalised error chi2 / n (Pfister & Gerstner)"}),
            "dw_curve": (("set", "freq_curve", "dt_pair"), np.stack(curve),
                         {"units": "1", "long_name": "model relative weight change"}),
        },
        coords={
            "set": ("set", np.array(names), {"long_name": "triplet set (pairing/model)"}),
            "freq": data.freq, "dt_pair": data.dt_pair,
            "freq_curve": ("freq_curve", curve_f, {"units": "Hz", "long_name": "frequency"}),
        },
        attrs={
            "analysis": NAME,
            "n_pairs": 60,
            "w0": 1.0,
            "readout": "relative change (w_end - w0)/w0 with w0 = 1 (Pfister & Gerstner 2006)",
            "model_source": "Pfister & Gerstner 2006, J Neurosci 26:9673, Table 3",
            "data_source": data.attrs["data_source"],
        },
    )
    return out


def figure(ds: xr.Dataset):
    fig, axes = new_figure(1, 2, width_mm=150.0, height_mm=60.0)
    colors = {0.01: "#0072B2", -0.01: "#D55E00"}
    for ax, pairing_kind in zip(axes[0], ("all_to_all", "nearest_spike"), strict=True):
        for d in ds.dt_pair.values:
            c = colors.get(round(float(d), 3), "k")
            ax.errorbar(ds.freq, ds.dw_data.sel(dt_pair=d), ds.dw_sem.sel(dt_pair=d), fmt="o",
                        color=c, capsize=2, label=f"data {d * 1e3:+.0f} ms")
            for model, ls in (("full", "-"), ("minimal", "--")):
                name = f"{pairing_kind}/{model}"
                chi2 = float(ds.chi2.sel(set=name))
                ax.plot(ds.freq_curve, ds.dw_curve.sel(set=name, dt_pair=d), ls, color=c,
                        label=f"{model} {d * 1e3:+.0f} ms (chi2 {chi2:.1f})")
        ax.axhline(0, color="0.6", lw=0.5)
        ax.set_title(pairing_kind.replace("_", " ") + " triplet STDP vs Sjostrom 2001")
        ax.set_xlabel("pairing frequency (Hz)")
        ax.set_ylabel("weight change (after/before - 1)")
        ax.legend(frameon=False, ncol=1)
    return fig


def summary(ds: xr.Dataset) -> str:
    lines = ["set                     chi2     E      "
             "model (+10 ms | -10 ms) at 0.1,10,20,40,50 Hz"]
    for s in ds.set.values:
        m = ds.dw_model.sel(set=s)
        p = " ".join(f"{v:+.2f}" for v in m.sel(dt_pair=0.01, method="nearest").values)
        n = " ".join(f"{v:+.2f}" for v in m.sel(dt_pair=-0.01, method="nearest").values)
        lines.append(f"{s:22s} {float(ds.chi2.sel(set=s)):6.2f} {float(ds.E.sel(set=s)):6.3f}"
                     f"   {p} | {n}")
    d = ds.dw_data
    lines.append("data                                 "
                 + " ".join(f"{v:+.2f}" for v in d.sel(dt_pair=0.01, method="nearest").values)
                 + " | " + " ".join(f"{v:+.2f}" for v in d.sel(dt_pair=-0.01,
                                                               method="nearest").values))
    return "\n".join(lines)


def table(ds: xr.Dataset) -> pd.DataFrame:
    """Model, closed form and data per frequency and set, with each set's chi2 and E."""
    df = ds[["dw_model", "dw_closed_form", "dw_data", "dw_sem", "residual"]].to_dataframe()
    return df.join(ds[["chi2", "E"]].to_dataframe(), on="set")


def main(argv: Sequence[str] | None = None) -> xr.Dataset:
    """``python -m synaptic_fwp.analyses.sjostrom_frequency [--quick] [--out DIR]``: the
    Dataset, figure and a CSV of model against data."""
    return study_main(NAME, run, figure, argv, summary, table=table)


if __name__ == "__main__":
    main()
