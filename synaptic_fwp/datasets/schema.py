"""Reading measured data (yours or shipped) into the dataset schema, with the schema checked.

A *measurement table* has one row per experimental condition: condition columns (e.g. pairing
frequency and spike-timing lag), the measured mean and its standard error of the mean (SEM).
Units are given by a column-name suffix (``freq_Hz``, ``dt_ms``, ``dw_mean_percent``) or by the
``units`` argument, and are converted to SI (DESIGN.md). The result is an ``xarray.Dataset``
with dimension ``point``, the conditions as coordinates on ``point``, the mean as data variable
``<measure>`` and the SEM as ``<measure>_sem``; each variable has ``units`` and ``long_name``.

Checks (each raises ``ValueError`` naming the file/column/row, the value and what is allowed):
empty file, header without data rows, ragged rows, duplicate column names, missing columns,
unexpected columns, unknown unit strings, units of the wrong dimension, non-numeric values,
NaN/missing or infinite values, negative or zero SEM, duplicate conditions.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import xarray as xr

from .units import UNITS, convert, dimension_of, split_suffix

__all__ = ["Schema", "PAIRING", "SCHEMAS", "from_csv", "from_dataframe", "from_columns",
           "read_table"]


@dataclass(frozen=True)
class Schema:
    """What a measurement table must hold.

    ``conditions`` maps each condition name to its physical dimension (see
    :mod:`synaptic_fwp.datasets.units`); ``measure`` is the measured quantity (columns
    ``<measure>_mean`` and ``<measure>_sem``) with dimension ``measure_dimension``; ``x`` is the
    condition a figure puts on its horizontal axis and ``group`` the one that separates curves.
    """

    name: str
    conditions: Mapping[str, str]
    measure: str
    measure_dimension: str = "dimensionless"
    x: str | None = None
    group: str | None = None
    long_names: Mapping[str, str] = field(default_factory=dict)


#: Spike-pairing experiments: weight change by pairing frequency and pre->post lag
#: (``dt = t_post - t_pre``; positive = pre before post).
PAIRING = Schema(
    name="pairing",
    conditions={"freq": "frequency", "dt": "time"},
    measure="dw",
    x="freq",
    group="dt",
    long_names={
        "freq": "pairing frequency",
        "dt": "spike timing lag t_post - t_pre",
        "dw": "fractional weight change (w_after / w_before - 1)",
    },
)

SCHEMAS: dict[str, Schema] = {"pairing": PAIRING}


def _resolve_schema(schema: str | Schema) -> Schema:
    if isinstance(schema, Schema):
        return schema
    if isinstance(schema, str) and schema in SCHEMAS:
        return SCHEMAS[schema]
    raise ValueError(f"schema must be a Schema or one of {sorted(SCHEMAS)}, got {schema!r}")


def read_table(path: str | os.PathLike) -> tuple[list[str], dict[str, list[str]], list[int]]:
    """Read a CSV file whose leading ``#`` lines are comments.

    Returns ``(comment_lines, columns, line_numbers)`` where ``columns`` maps each header name to
    the raw strings of its column and ``line_numbers`` gives each data row's line in the file.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"path {os.fspath(path)!r} is not an existing file")
    with open(path, newline="", encoding="utf-8") as fh:
        lines = fh.read().splitlines()
    comments, body, numbers = [], [], []
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if line.lstrip().startswith("#"):
            if body:
                raise ValueError(
                    f"{os.fspath(path)!r} line {i}: comment lines are allowed only before the "
                    "header"
                )
            comments.append(line.lstrip()[1:].strip())
            continue
        body.append(line)
        numbers.append(i)
    if not body:
        raise ValueError(f"{os.fspath(path)!r} is empty: expected a header row and data rows")
    rows = [[c.strip() for c in r] for r in csv.reader(body)]
    header, data = rows[0], rows[1:]
    if not data:
        raise ValueError(
            f"{os.fspath(path)!r} has a header ({','.join(header)}) but no data rows"
        )
    seen: set[str] = set()
    for h in header:
        if h == "":
            raise ValueError(f"{os.fspath(path)!r}: the header has an empty column name")
        if h in seen:
            raise ValueError(
                f"{os.fspath(path)!r}: column {h!r} appears more than once in the header"
            )
        seen.add(h)
    for r, n in zip(data, numbers[1:], strict=True):
        if len(r) != len(header):
            raise ValueError(
                f"{os.fspath(path)!r} line {n}: {len(r)} fields, but the header has "
                f"{len(header)} ({','.join(header)})"
            )
    columns = {h: [r[j] for r in data] for j, h in enumerate(header)}
    return comments, columns, numbers[1:]


def _to_float(where: str, column: str, raw, line: int | None) -> float:
    at = f"row {line}" if line is not None else "a row"
    if isinstance(raw, str):
        s = raw.strip()
        if s == "" or s.lower() in ("na", "nan", "n/a", "null", "none"):
            raise ValueError(
                f"{where}: column {column!r}, {at}: missing value {raw!r}; every entry must be "
                "a finite number"
            )
        try:
            v = float(s)
        except ValueError:
            raise ValueError(
                f"{where}: column {column!r}, {at}: non-numeric value {raw!r}; every entry "
                "must be a finite number"
            ) from None
    elif isinstance(raw, (bool, np.bool_)) or not isinstance(raw, (int, float, np.number)):
        raise ValueError(
            f"{where}: column {column!r}, {at}: non-numeric value {raw!r} "
            f"({type(raw).__name__}); every entry must be a finite number"
        )
    else:
        v = float(raw)
    if math.isnan(v):
        raise ValueError(
            f"{where}: column {column!r}, {at}: NaN; every entry must be a finite number"
        )
    if math.isinf(v):
        raise ValueError(
            f"{where}: column {column!r}, {at}: infinite value {raw!r}; every entry must be "
            "a finite number"
        )
    return v


def from_columns(
    columns: Mapping[str, list],
    *,
    schema: str | Schema = "pairing",
    units: Mapping[str, str] | None = None,
    where: str = "data",
    lines: list[int] | None = None,
    name: str | None = None,
    attrs: Mapping[str, object] | None = None,
) -> xr.Dataset:
    """Check a column table against ``schema`` and build the Dataset (see module docstring).

    ``columns`` maps column names (optionally with a unit suffix) to equal-length lists of
    values (strings or numbers). ``units`` maps a base column name (``'dt'``, ``'dw_mean'``)
    to a unit string for columns without a suffix.
    """
    sch = _resolve_schema(schema)
    units = dict(units or {})
    for k, u in units.items():
        if not isinstance(k, str):
            raise TypeError(f"units keys must be column names (str), got {k!r}")
        if u not in UNITS:
            raise ValueError(f"units[{k!r}] = {u!r} is not a known unit; allowed: {sorted(UNITS)}")
    n_rows = {len(v) for v in columns.values()}
    if not columns or n_rows == {0}:
        raise ValueError(f"{where} is empty: expected columns and at least one data row")
    if len(n_rows) != 1:
        raise ValueError(f"{where}: columns have different lengths {sorted(n_rows)}")
    (n,) = n_rows

    # base name -> (column, unit given or None)
    found: dict[str, tuple[str, str | None]] = {}
    for col in columns:
        if not isinstance(col, str):
            raise TypeError(f"{where}: column names must be strings, got {col!r}")
        base, unit = split_suffix(col)
        if base in found:
            raise ValueError(
                f"{where}: columns {found[base][0]!r} and {col!r} both give {base!r}; keep one"
            )
        found[base] = (col, unit)

    wanted = {c: d for c, d in sch.conditions.items()}
    wanted[f"{sch.measure}_mean"] = sch.measure_dimension
    wanted[f"{sch.measure}_sem"] = sch.measure_dimension
    missing = [w for w in wanted if w not in found]
    if missing:
        raise ValueError(
            f"{where}: missing column(s) {missing} for schema {sch.name!r}; required columns "
            f"are {list(wanted)} (a unit suffix such as _ms or _Hz is allowed), got "
            f"{list(columns)}"
        )
    extra = [found[b][0] for b in found if b not in wanted]
    if extra:
        raise ValueError(
            f"{where}: unexpected column(s) {extra} for schema {sch.name!r}; allowed columns "
            f"are {list(wanted)}"
        )
    values: dict[str, np.ndarray] = {}
    out_units: dict[str, str] = {}
    for base, dim in wanted.items():
        col, unit = found[base]
        if unit is not None and base in units and units[base] != unit:
            raise ValueError(
                f"{where}: column {col!r} says unit {unit!r} but units[{base!r}] = "
                f"{units[base]!r}; give one"
            )
        unit = unit if unit is not None else units.get(base)
        if unit is None:
            if dim == "dimensionless":
                unit = "1"
            else:
                raise ValueError(
                    f"{where}: column {col!r} ({dim}) has no unit; add a suffix (e.g. "
                    f"{base}_{'ms' if dim == 'time' else 'Hz' if dim == 'frequency' else '...'})"
                    f" or pass units={{{base!r}: ...}}"
                )
        got_dim = dimension_of(unit, f"column {col!r}")
        if got_dim != dim:
            raise ValueError(
                f"{where}: column {col!r} has unit {unit!r} ({got_dim}), but {base!r} must be "
                f"a {dim}; allowed units: "
                f"{sorted(u for u, (d, _, _) in UNITS.items() if d == dim)}"
            )
        raw = columns[col]
        arr = np.array(
            [_to_float(where, col, r, None if lines is None else lines[i])
             for i, r in enumerate(raw)],
            dtype=np.float64,
        )
        values[base], out_units[base] = convert(arr, unit, f"column {col!r}")

    sem_name = f"{sch.measure}_sem"
    sem = values[sem_name]
    bad = np.flatnonzero(~(sem > 0))
    if bad.size:
        i = int(bad[0])
        at = f"row {lines[i]}" if lines is not None else f"row {i}"
        raise ValueError(
            f"{where}: column {found[sem_name][0]!r}, {at}: SEM {float(sem[i])!r} must be > 0 "
            "(a zero or negative SEM cannot weight a chi-square)"
        )
    cond_names = list(sch.conditions)
    keys = [tuple(values[c][i] for c in cond_names) for i in range(n)]
    first: dict[tuple, int] = {}
    for i, key in enumerate(keys):
        if key in first:
            j = first[key]
            at = (f"rows {lines[j]} and {lines[i]}" if lines is not None
                  else f"rows {j} and {i}")
            raise ValueError(
                f"{where}: {at} have the same conditions "
                f"{dict(zip(cond_names, key, strict=True))}; each condition must appear once"
            )
        first[key] = i

    ln = dict(sch.long_names)
    coords = {
        c: ("point", values[c], {"units": out_units[c], "long_name": ln.get(c, c)})
        for c in cond_names
    }
    m = sch.measure
    data_vars = {
        m: ("point", values[f"{m}_mean"],
            {"units": out_units[f"{m}_mean"], "long_name": "mean " + ln.get(m, m)}),
        f"{m}_sem": ("point", values[f"{m}_sem"],
                     {"units": out_units[f"{m}_sem"],
                      "long_name": "standard error of the mean of " + ln.get(m, m)}),
    }
    ds = xr.Dataset(data_vars, coords={**coords, "point": np.arange(n)})
    ds["point"].attrs.update(units="1", long_name="data point index")
    ds.attrs.update(
        name=name or "user_data",
        schema=sch.name,
        conditions=",".join(cond_names),
        measure=m,
        x=sch.x or cond_names[0],
        group=sch.group or "",
        source=where,
    )
    if attrs:
        ds.attrs.update(attrs)
    return ds


def from_csv(
    path: str | os.PathLike,
    *,
    schema: str | Schema = "pairing",
    units: Mapping[str, str] | None = None,
    name: str | None = None,
    attrs: Mapping[str, object] | None = None,
) -> xr.Dataset:
    """Load your own measurements from a CSV file, checked against ``schema``.

    The file may start with ``#`` comment lines (kept in ``attrs['header']``). For the default
    ``'pairing'`` schema the columns are ``freq_<unit>``, ``dt_<unit>``, ``dw_mean`` and
    ``dw_sem`` (dimensionless fractional change; ``dw_mean_percent``/``dw_sem_percent`` for
    percent), e.g. the shipped ``sjostrom2001_frequency.csv``::

        freq_Hz,dt_ms,dw_mean,dw_sem
        0.1,10,-0.04,0.05

    Any malformed file raises ``ValueError`` saying which column/line is wrong and what is
    allowed (see the module docstring for the list of checks).
    """
    comments, columns, lines = read_table(path)
    a = {"header": " ".join(comments)} if comments else {}
    a.update(attrs or {})
    return from_columns(columns, schema=schema, units=units, where=repr(os.fspath(path)),
                        lines=lines, name=name or os.path.splitext(os.path.basename(path))[0],
                        attrs=a)


def from_dataframe(
    df,
    *,
    schema: str | Schema = "pairing",
    units: Mapping[str, str] | None = None,
    name: str | None = None,
    attrs: Mapping[str, object] | None = None,
) -> xr.Dataset:
    """Load your own measurements from a pandas DataFrame (same columns as :func:`from_csv`).

    pandas is optional for this package: it is imported only here (it comes with xarray).
    """
    try:
        import pandas as pd
    except ImportError as e:  # pragma: no cover - xarray depends on pandas
        raise ImportError("from_dataframe needs pandas; use from_csv instead") from e
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"df must be a pandas.DataFrame, got {type(df).__name__}")
    if df.shape[0] == 0:
        raise ValueError("df is empty: expected at least one data row")
    if df.columns.duplicated().any():
        dup = list(df.columns[df.columns.duplicated()])
        raise ValueError(f"df: column(s) {dup} appear more than once")
    columns = {str(c): df[c].tolist() for c in df.columns}
    return from_columns(columns, schema=schema, units=units, where="df", name=name,
                        lines=list(range(df.shape[0])), attrs=attrs)
