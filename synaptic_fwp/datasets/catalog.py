"""The shipped physiology datasets and published parameter tables, each traced to its source.

Every file in ``data/`` keeps the header comment of the table it was copied from (the source,
the equations the parameters belong to and any caveat); :func:`load` puts that header in
``attrs['header']`` and the citation (authors, year, title, journal, volume, pages, DOI) in
``attrs['citation_*']``. Values are converted to SI units (seconds, hertz, volts, metres;
concentrations in uM), stated in each variable's ``units`` attribute.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import numpy as np
import xarray as xr

from .schema import from_csv, read_table
from .units import UNITS, convert, split_suffix

__all__ = ["Entry", "CATALOG", "names", "load", "data_path"]


@dataclass(frozen=True)
class Entry:
    file: str
    kind: str  # "measurements" or "parameters"
    title: str
    authors: str
    year: int
    article: str
    journal: str
    doi: str
    description: str
    protocol: str = ""


CATALOG: dict[str, Entry] = {
    "sjostrom2001_frequency": Entry(
        file="sjostrom2001_frequency.csv",
        kind="measurements",
        title="Frequency dependence of STDP in rat visual cortex L5 pairs",
        authors="Sjostrom PJ, Turrigiano GG, Nelson SB",
        year=2001,
        article="Rate, timing, and cooperativity jointly determine cortical synaptic plasticity",
        journal="Neuron 32(6):1149-1164",
        doi="10.1016/S0896-6273(01)00542-6",
        description="Mean and SEM of the fractional weight change after pre-post (+10 ms) and "
        "post-pre (-10 ms) pairings at 0.1-50 Hz; the values fitted by Pfister & Gerstner 2006 "
        "and Clopath et al. 2010.",
        protocol="pairing: n_pairs pre/post spike pairs at frequency freq with lag "
        "dt = t_post - t_pre (in the experiment 50-60 pairings at 0.1 Hz, 15 bursts of 5 "
        "pairings at >= 10 Hz; simulations commonly use 60 pairings at freq)",
    ),
    "pfister_gerstner2006_triplet_params": Entry(
        file="pfister_gerstner2006_triplet_params.csv",
        kind="parameters",
        title="Triplet STDP model parameters (minimal and full; all-to-all and nearest-spike)",
        authors="Pfister JP, Gerstner W",
        year=2006,
        article="Triplets of spikes in a model of spike timing-dependent plasticity",
        journal="J Neurosci 26(38):9673-9682",
        doi="10.1523/JNEUROSCI.1425-06.2006",
        description="Tables 3 (visual cortex, Sjostrom et al. 2001) and 4 (hippocampal "
        "cultures, Wang et al. 2005); tau_x is NaN for the minimal models (no r2 trace, "
        "A3_minus = 0).",
    ),
    "graupner_brunel2012_params": Entry(
        file="graupner_brunel2012_params.csv",
        kind="parameters",
        title="Calcium-based bistable synapse model parameters",
        authors="Graupner M, Brunel N",
        year=2012,
        article="Calcium-based plasticity model explains sensitivity of synaptic changes to "
        "spike pattern, rate, and dendritic location",
        journal="Proc Natl Acad Sci USA 109(10):3991-3996",
        doi="10.1073/pnas.1109359109",
        description="Parameter sets of the calcium-based model (DP, DPD, DPD', P, D, D' and the "
        "fits to hippocampal slices, hippocampal cultures and cortical slices); calcium in "
        "units of theta_d; tau (column tau_s) is the time constant of rho in seconds.",
    ),
    "shouval2002_calcium_control_params": Entry(
        file="shouval2002_calcium_control_params.csv",
        kind="parameters",
        title="Calcium control hypothesis (unified NMDA-dependent plasticity) parameters",
        authors="Shouval HZ, Bear MF, Cooper LN",
        year=2002,
        article="A unified model of NMDA receptor-dependent bidirectional synaptic plasticity",
        journal="Proc Natl Acad Sci USA 99(16):10831-10836",
        doi="10.1073/pnas.152343099",
        description="Omega(Ca), eta(Ca), NMDA current with the Mg2+ block of Jahr & Stevens "
        "1990 (J Neurosci 10(9):3178-3182), back-propagating AP and EPSP shapes; "
        "concentrations in uM (Mg and MgBlock_K converted from mM).",
    ),
    "milstein2021_btsp_params": Entry(
        file="milstein2021_btsp_params.csv",
        kind="parameters",
        title="Weight-dependent BTSP model parameters and induction protocol",
        authors="Milstein AD, Li Y, Bittner KC, Grienberger C, Soltesz I, Magee JC, Romani S",
        year=2021,
        article="Bidirectional synaptic plasticity rapidly modifies hippocampal representations",
        journal="eLife 10:e73046",
        doi="10.7554/eLife.73046",
        description="Population fit (x0) and per-cell median and quartiles of the 22 cells; "
        "protocol and target rows have only the population value (NaN elsewhere).",
    ),
}

# Units the shipped long tables use that are not plain unit strings.
_SPECIAL_UNITS = {"(P1*1e-4)": ("uM^3", 1.0, "P2 = P1 * 1e-4 numerically (units uM^P3, P3 = 3)")}


def names() -> list[str]:
    """Names of the shipped datasets and parameter tables."""
    return sorted(CATALOG)


def data_path(name: str):
    """Path of the shipped CSV file of ``name``."""
    _entry(name)
    return resources.files("synaptic_fwp.datasets") / "data" / CATALOG[name].file


def _entry(name: str) -> Entry:
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    if name not in CATALOG:
        raise ValueError(f"name must be one of {names()}, got {name!r}")
    return CATALOG[name]


def _citation_attrs(name: str, e: Entry, header: list[str]) -> dict[str, object]:
    return {
        "name": name,
        "title": e.title,
        "kind": e.kind,
        "citation": f"{e.authors} ({e.year}). {e.article}. {e.journal}. doi:{e.doi}",
        "citation_authors": e.authors,
        "citation_year": e.year,
        "citation_article": e.article,
        "citation_journal": e.journal,
        "citation_doi": e.doi,
        "description": e.description,
        "protocol": e.protocol,
        "header": " ".join(header),
        "source": f"synaptic_fwp/datasets/data/{e.file} (copied from the published table "
        "named in the header)",
    }


def _maybe_float(s: str) -> float | None:
    if s.strip().upper() in ("NA", ""):
        return np.nan
    try:
        return float(s)
    except ValueError:
        return None


def _wide(path, key: str) -> tuple[list[str], xr.Dataset]:
    """One row per parameter set; numeric columns (unit from the suffix) become variables."""
    header, cols, _ = read_table(path)
    n = len(cols[key])
    coords = {"set": ("set", np.arange(n), {"units": "1", "long_name": "parameter set index"})}
    data_vars = {}
    for col, raw in cols.items():
        nums = [_maybe_float(s) for s in raw]
        base, unit = split_suffix(col)
        if col == key or any(v is None for v in nums):
            attrs = {"long_name": "parameter set name" if col == "set" else col}
            coords[col] = ("set", np.array(raw, dtype=str), attrs)
            continue
        arr = np.array(nums, dtype=np.float64)
        arr, canonical = convert(arr, unit or "1", f"column {col!r}")
        attrs = {"units": canonical, "long_name": base}
        if np.isnan(arr).any():
            attrs["note"] = "NaN where the table says NA (parameter absent from that model)"
        data_vars[base] = ("set", arr, attrs)
    return header, xr.Dataset(data_vars, coords=coords)


def _long(path, value_cols: list[str]) -> tuple[list[str], xr.Dataset]:
    """One row per parameter (columns: parameter, values..., unit[, meaning])."""
    header, cols, _ = read_table(path)
    data_vars = {}
    for i, pname in enumerate(cols["parameter"]):
        var = pname.split(" (")[0].strip()
        unit = cols["unit"][i]
        raw = [cols[c][i] for c in value_cols]
        arr = np.array([_maybe_float(s) for s in raw], dtype=np.float64)
        attrs = {"long_name": cols["meaning"][i] if "meaning" in cols else pname}
        if unit in _SPECIAL_UNITS:
            canonical, factor, note = _SPECIAL_UNITS[unit]
            arr = arr * factor
            attrs["note"] = note
        elif unit in UNITS:
            arr, canonical = convert(arr, unit, f"parameter {pname!r}")
        else:  # pragma: no cover - guarded by test_every_shipped_unit_is_known
            raise ValueError(f"{path}: unknown unit {unit!r} for parameter {pname!r}")
        attrs["units"] = canonical
        attrs["published_name"] = pname
        attrs["published_unit"] = unit
        if np.isnan(arr).any():
            attrs["note"] = "NaN: the source gives only the population value"
        data_vars[var] = (("estimate",), arr, attrs) if len(value_cols) > 1 else ((), arr[0],
                                                                                   attrs)
    coords = {}
    if len(value_cols) > 1:
        coords["estimate"] = ("estimate", np.array(value_cols, dtype=str),
                              {"long_name": "which estimate of the source"})
    return header, xr.Dataset(data_vars, coords=coords)


def load(name: str) -> xr.Dataset:
    """Load a shipped dataset or parameter table as an ``xarray.Dataset``.

    ``attrs`` hold the citation (``citation``, ``citation_authors``, ``citation_year``,
    ``citation_journal``, ``citation_doi``), a description, the protocol (measurements) and the
    original file header; every variable has ``units`` (SI; concentrations in uM) and
    ``long_name``. Measurements follow :data:`synaptic_fwp.datasets.schema.PAIRING`: dimension
    ``point``, conditions ``freq`` (Hz) and ``dt`` (s) as coordinates, mean ``dw`` and ``dw_sem``.
    """
    e = _entry(name)
    path = data_path(name)
    if e.kind == "measurements":
        ds = from_csv(path, schema="pairing", name=name)
        header = [ds.attrs.pop("header", "")]
        ds.attrs.update(_citation_attrs(name, e, header))
        ds.attrs.update(schema="pairing", conditions="freq,dt", measure="dw", x="freq",
                        group="dt")
        return ds
    if name == "pfister_gerstner2006_triplet_params":
        header, ds = _wide(path, "dataset")
    elif name == "graupner_brunel2012_params":
        header, ds = _wide(path, "set")
    elif name == "shouval2002_calcium_control_params":
        header, ds = _long(path, ["value"])
    else:
        header, ds = _long(path, ["population_fit_x0", "cell_median", "cell_q25", "cell_q75"])
    ds.attrs.update(_citation_attrs(name, e, header))
    return ds
