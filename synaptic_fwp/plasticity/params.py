"""Read the published parameter tables shipped in ``synaptic_fwp/datasets/data/``.

Each CSV starts with ``#`` comment lines giving its source and the model's formulation; they are
kept in :func:`read_table`'s ``attrs["source"]``. Values are converted to SI here (ms -> s).
"""

from __future__ import annotations

import csv
import math
from functools import cache
from importlib import resources

from .._validation import check_choice

__all__ = ["read_table", "triplet_params", "graupner_brunel_params", "shouval_params",
           "TRIPLET_FILE", "GB_FILE", "SHOUVAL_FILE"]

TRIPLET_FILE = "pfister_gerstner2006_triplet_params.csv"
GB_FILE = "graupner_brunel2012_params.csv"
SHOUVAL_FILE = "shouval2002_calcium_control_params.csv"


@cache
def _read(name: str) -> tuple[str, tuple[dict[str, str], ...]]:
    path = resources.files("synaptic_fwp.datasets").joinpath("data", name)
    if not path.is_file():
        raise FileNotFoundError(
            f"published table {name!r} not found at {path}; it ships in "
            "synaptic_fwp/datasets/data/"
        )
    text = path.read_text(encoding="utf-8").splitlines()
    comments = [ln.lstrip("#").strip() for ln in text if ln.startswith("#")]
    body = [ln for ln in text if ln.strip() and not ln.startswith("#")]
    rows = tuple(dict(r) for r in csv.DictReader(body))
    return "\n".join(comments), rows


def read_table(name: str) -> tuple[list[dict[str, str]], dict[str, str]]:
    """Rows (as string dicts) of a shipped table and ``{"source": header comment}``."""
    src, rows = _read(name)
    return [dict(r) for r in rows], {"source": src}


def _f(x: str) -> float | None:
    x = x.strip()
    return None if x in ("", "NA") else float(x)


def triplet_params(dataset: str, pairing: str, model: str) -> dict[str, object]:
    """Pfister & Gerstner 2006 triplet parameters in SI, as ``TripletSTDP`` keyword args."""
    rows, _ = read_table(TRIPLET_FILE)
    pairing = {"nearest": "nearest_spike"}.get(pairing, pairing)
    keys = sorted({(r["dataset"], r["pairing"], r["model"]) for r in rows})
    hit = [r for r in rows if (r["dataset"], r["pairing"], r["model"]) == (dataset, pairing, model)]
    if not hit:
        raise ValueError(
            f"(dataset, pairing, model) must be one of {keys}, got {(dataset, pairing, model)!r}"
        )
    r = hit[0]
    tau_x = _f(r["tau_x_ms"])
    return dict(
        tau_plus=_f(r["tau_plus_ms"]) * 1e-3,
        tau_minus=_f(r["tau_minus_ms"]) * 1e-3,
        tau_x=None if tau_x is None else tau_x * 1e-3,
        tau_y=_f(r["tau_y_ms"]) * 1e-3,
        A2_plus=_f(r["A2_plus"]),
        A3_plus=_f(r["A3_plus"]),
        A2_minus=_f(r["A2_minus"]),
        A3_minus=_f(r["A3_minus"]),
        pairing="all_to_all" if r["pairing"] == "all_to_all" else "nearest",
    )


def triplet_sets() -> list[tuple[str, str, str]]:
    """All (dataset, pairing, model) keys of the triplet table, in table order."""
    rows, _ = read_table(TRIPLET_FILE)
    return [(r["dataset"], r["pairing"], r["model"]) for r in rows]


def graupner_brunel_params(name: str) -> dict[str, float]:
    """One of the nine Graupner & Brunel 2012 sets, SI (s), as ``GraupnerBrunel`` kwargs."""
    rows, _ = read_table(GB_FILE)
    names = [r["set"] for r in rows]
    check_choice("name", name, names)
    r = next(r for r in rows if r["set"] == name)
    return dict(
        tau_ca=float(r["tau_Ca_ms"]) * 1e-3,
        C_pre=float(r["C_pre"]),
        C_post=float(r["C_post"]),
        theta_d=float(r["theta_d"]),
        theta_p=float(r["theta_p"]),
        gamma_d=float(r["gamma_d"]),
        gamma_p=float(r["gamma_p"]),
        sigma=float(r["sigma"]),
        tau=float(r["tau_s"]),
        rho_star=float(r["rho_star"]),
        D=float(r["D_ms"]) * 1e-3,
        beta=float(r["beta"]),
        b=float(r["b"]),
    )


def graupner_brunel_sets() -> list[str]:
    rows, _ = read_table(GB_FILE)
    return [r["set"] for r in rows]


def shouval_params() -> dict[str, float]:
    """Shouval, Bear & Cooper 2002 table as ``{short name: value in SI}``.

    Conversions: ms -> s; ``G_NMDA`` uM/(ms mV) -> uM/(s mV); voltages stay in mV and calcium in
    uM (the units the model's sigmoids and Mg block are written in); ``P2`` is dimensionless.
    """
    rows, _ = read_table(SHOUVAL_FILE)
    out: dict[str, float] = {}
    for r in rows:
        key = r["parameter"].split(" ")[0]
        v = float(r["value"])
        unit = r["unit"].strip()
        if unit == "ms":
            v *= 1e-3
        elif unit == "uM/(ms*mV)":
            v *= 1e3
        if not math.isfinite(v):
            raise ValueError(f"non-finite value for {key} in {SHOUVAL_FILE}")
        out[key] = v
    return out
