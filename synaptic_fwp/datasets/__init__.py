"""Physiology datasets and published parameter tables shipped with the package, and readers for
your own measurements.

>>> from synaptic_fwp import datasets
>>> datasets.list()                       # shipped names
>>> ds = datasets.load("sjostrom2001_frequency")
>>> ds.attrs["citation_doi"], ds["dt"].attrs["units"]
>>> mine = datasets.from_csv("my_pairing.csv")  # columns freq_Hz, dt_ms, dw_mean, dw_sem

Layer 6 of DESIGN.md (protocols and datasets): imports only numpy, xarray and the standard
library (pandas only inside :func:`from_dataframe`).
"""

from __future__ import annotations

from .catalog import CATALOG, data_path, load, names
from .schema import PAIRING, SCHEMAS, Schema, from_columns, from_csv, from_dataframe
from .units import UNITS

__all__ = ["list", "load", "from_csv", "from_dataframe", "from_columns", "data_path", "Schema",
           "PAIRING", "SCHEMAS", "CATALOG", "UNITS"]


def list() -> list[str]:  # noqa: A001 - the name the issue asks for
    """Names of the shipped datasets and parameter tables (``load`` accepts each)."""
    return names()
