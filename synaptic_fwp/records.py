"""The one xarray schema of every run, streaming to NetCDF/Zarr, and checkpoints.

Schema (DESIGN.md, "Records"): dims ``batch``, ``time``, and per recorded object its neuron dims
(``post``, ``pre``, or ``<dim>_<object>`` when two objects of different sizes are recorded);
``time`` is a coordinate in seconds; swept parameters are coordinates on ``batch``; every variable
carries ``units`` and ``long_name``; the Dataset carries ``dt``, ``seed``, the package version and,
per plastic projection, the rule name and parameters (JSON strings, so that the attrs survive
NetCDF).

Streaming: :class:`RecordWriter` appends chunk by chunk along ``time``, to NetCDF4 (``.nc``;
``time`` is an unlimited dimension; the file is closed between chunks, so an interrupted run
keeps every chunk written before) or Zarr (``.zarr``; append along ``time``). Checkpoints
(:func:`save_checkpoint` / :func:`load_checkpoint`) hold the complete simulation state (including
the counters of the counter-based random streams) and the number of records already on disk, and
are replaced atomically (write, fsync, rename).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import torch
import xarray as xr

__all__ = [
    "make_dataset",
    "RecordWriter",
    "open_records",
    "save_checkpoint",
    "load_checkpoint",
    "checkpoint_path",
    "FORMATS",
]

FORMATS = ("netcdf", "zarr")


def _jsonable(x: object) -> object:
    if isinstance(x, torch.Tensor):
        return x.tolist()
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.generic,)):
        return x.item()
    if x is None or isinstance(x, (int, float, str, bool)):
        return x
    return repr(x)


def make_dataset(
    data: dict[str, np.ndarray],
    specs: dict[str, tuple[tuple[str, ...], str, str]],
    time: np.ndarray,
    coords: dict[str, tuple[tuple[str, ...], np.ndarray, dict]] | None = None,
    attrs: dict[str, object] | None = None,
) -> xr.Dataset:
    """Build a Dataset in the schema: ``data[name]`` has dims ``specs[name][0]`` and attrs
    ``units = specs[name][1]``, ``long_name = specs[name][2]``. Non-scalar attrs become JSON."""
    dvars = {}
    for name, arr in data.items():
        dims, units, long_name = specs[name]
        dvars[name] = xr.Variable(dims, arr, {"units": units, "long_name": long_name})
    c = {"time": xr.Variable(("time",), np.asarray(time, dtype=np.float64),
                             {"units": "s", "long_name": "time"})}
    for name, (dims, val, a) in (coords or {}).items():
        c[name] = xr.Variable(dims, val, a)
    ds = xr.Dataset(dvars, coords=c)
    for k, v in (attrs or {}).items():
        ds.attrs[k] = v if isinstance(v, (int, float, str)) else json.dumps(_jsonable(v))
    return ds


def _fmt(path: str | os.PathLike) -> str:
    p = str(path)
    if p.endswith(".zarr") or p.endswith(".zarr/"):
        return "zarr"
    if p.endswith(".nc") or p.endswith(".nc4") or p.endswith(".netcdf"):
        return "netcdf"
    raise ValueError(
        f"out must end in .nc (NetCDF4) or .zarr (Zarr), got {p!r}"
    )


class RecordWriter:
    """Append Datasets of the schema along ``time`` to a NetCDF4 file or a Zarr store."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = str(path)
        self.format = _fmt(self.path)
        self.n = 0  # time records on disk that belong to this run

    def start(self, n_existing: int = 0) -> None:
        """Begin writing. ``n_existing = 0`` starts a new file (an old one is removed);
        ``n_existing > 0`` resumes after that many records (later ones are overwritten)."""
        if n_existing == 0:
            if os.path.isdir(self.path):
                shutil.rmtree(self.path)
            elif os.path.exists(self.path):
                os.remove(self.path)
        elif self.format == "zarr":
            self._truncate_zarr(n_existing)
        self.n = n_existing

    def _truncate_zarr(self, n: int) -> None:
        import zarr

        g = zarr.open_group(self.path, mode="r+")
        for _, arr in g.arrays():
            dims = _zarr_dims(arr)
            if dims and "time" in dims:
                ax = dims.index("time")
                if arr.shape[ax] > n:
                    shape = list(arr.shape)
                    shape[ax] = n
                    arr.resize(tuple(shape))

    def append(self, ds: xr.Dataset) -> None:
        """Write one chunk (a Dataset in the schema) after the records already written."""
        k = ds.sizes.get("time", 0)
        if k == 0:
            return
        if self.format == "zarr":
            if self.n == 0:
                ds.to_zarr(self.path, mode="w", consolidated=False)
            else:
                ds.to_zarr(self.path, append_dim="time", consolidated=False)
        else:
            if self.n == 0:
                ds.to_netcdf(self.path, engine="netcdf4", unlimited_dims=["time"])
            else:
                import netCDF4

                with netCDF4.Dataset(self.path, "a") as f:
                    sl = slice(self.n, self.n + k)
                    f.variables["time"][sl] = ds["time"].values
                    for name, var in ds.data_vars.items():
                        if "time" not in var.dims:
                            continue
                        ax = var.dims.index("time")
                        idx = tuple(sl if d == ax else slice(None) for d in range(var.ndim))
                        f.variables[name][idx] = var.values
                    f.sync()
        self.n += k


def _zarr_dims(arr) -> list[str] | None:  # noqa: ANN001 - zarr.Array
    dn = getattr(getattr(arr, "metadata", None), "dimension_names", None)
    if dn:
        return list(dn)
    d = arr.attrs.get("_ARRAY_DIMENSIONS")
    return list(d) if d else None


def open_records(path: str | os.PathLike, n: int | None = None) -> xr.Dataset:
    """Load a streamed run (NetCDF or Zarr) into memory; ``n`` keeps the first ``n`` records."""
    fmt = _fmt(path)
    if fmt == "zarr":
        with xr.open_zarr(str(path), consolidated=False) as ds:
            out = ds.load()
    else:
        with xr.open_dataset(str(path), engine="netcdf4") as ds:
            out = ds.load()
    if n is not None:
        out = out.isel(time=slice(0, n))
    for v in out.variables.values():
        v.encoding = {}
    return out


def checkpoint_path(out: str | os.PathLike) -> str:
    """Default checkpoint file next to the streamed records: ``<out>.ckpt.pt``."""
    return str(out).rstrip("/") + ".ckpt.pt"


def save_checkpoint(path: str | os.PathLike, payload: dict) -> None:
    """Atomically replace ``path`` with ``payload`` (torch.save; tensors cloned by the caller)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(payload, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_checkpoint(path: str | os.PathLike) -> dict:
    if not os.path.exists(path):
        raise ValueError(f"resume: no checkpoint at {str(path)!r}")
    return torch.load(path, weights_only=False)
