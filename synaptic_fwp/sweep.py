r"""Parameter sweeps on a Dask cluster, written block by block into one Zarr store.

``sweep(experiment, grid)`` runs ``experiment`` on every point of the Cartesian product of
``grid`` (a dict ``name -> 1-D values``). The grid is cut into rectangular *blocks*; each block
is one batched engine call (``experiment(**{name: 1-D tensor of the block's points})``), one
task on a ``dask.distributed`` cluster, and one region of a single Zarr store. The result opens
as one lazily loaded :class:`xarray.Dataset` whose leading dimensions are the grid's.

How nothing finished is lost (the store layout)
-----------------------------------------------
1. A *template* is written first (``Dataset.to_zarr(compute=False)``): every variable with its
   final shape, dtype, attrs and Zarr chunks equal to the blocks, plus the grid coordinates and
   the variables that do not depend on the batch (e.g. ``time``). Its shapes come from a probe
   run of the experiment on the grid's first point.
2. Each block task writes its region (``Dataset.to_zarr(region=...)``; regions are aligned with
   Zarr chunks, so concurrent writers never touch the same chunk) and *then* sets its completion
   marker (one element per block of the array ``_sweep/done``, in a subgroup that xarray does
   not open). A block whose marker is unset is recomputed whole, so a task killed mid-write is
   simply redone.
3. A worker that dies has its running blocks rescheduled by the Dask scheduler (up to
   ``distributed.scheduler.allowed-failures`` deaths per task); a block whose experiment raises
   is retried ``retries`` times. A sweep stopped or failed and started again on the same store
   computes only the blocks whose markers are unset; the store records the grid, the block shape
   and the experiment's name and refuses to resume a different sweep.

Results do not depend on the blocking as long as the experiment keeps the batch convention of
DESIGN.md ("instance ``b`` of a batch gets the same result whatever else is in the batch"): a
sweep on a cluster then equals, value for value, a single-process run of the whole grid.

``dask`` and ``zarr`` are imported only when a sweep runs (this is the "faces" layer).
"""

from __future__ import annotations

import importlib
import json
import math
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

__all__ = ["sweep", "open_sweep", "sweep_status", "SweepIncompleteError"]

_DONE = "_sweep/done"  # completion markers: int8 array, one element (and one chunk) per block
_FORMAT = "synaptic_fwp.sweep/1"
# Run by each worker of the default LocalCluster before it registers with the scheduler (also
# when its nanny restarts it after a crash), so no block waits for these imports.
_WORKER_PRELOAD = "import torch, xarray, zarr, dask.array, synaptic_fwp"


class SweepIncompleteError(RuntimeError):
    """Some blocks of a sweep are not finished; the finished ones are kept in the store."""


# --------------------------------------------------------------------------------------------
# Input checks and the block layout
# --------------------------------------------------------------------------------------------


def _check_grid(grid: object, batch_dim: str) -> dict[str, np.ndarray]:
    if not isinstance(grid, Mapping) or len(grid) == 0:
        raise TypeError(
            "grid must be a non-empty dict mapping parameter names to 1-D sequences of values, "
            f"got {type(grid).__name__} ({grid!r:.80})"
        )
    out: dict[str, np.ndarray] = {}
    for name, values in grid.items():
        if not isinstance(name, str) or not name.isidentifier() or name == batch_dim:
            raise ValueError(
                f"grid keys must be Python identifiers other than batch_dim={batch_dim!r} (they "
                f"become keyword arguments and dimension names), got {name!r}"
            )
        arr = values.detach().cpu().numpy() if hasattr(values, "detach") else np.asarray(values)
        if arr.ndim != 1 or arr.size == 0:
            raise ValueError(
                f"grid[{name!r}] must be a non-empty 1-D sequence, got shape {arr.shape}"
            )
        if arr.dtype.kind not in "biuf":
            raise TypeError(
                f"grid[{name!r}] must hold numbers (bool, int or float), got dtype {arr.dtype}"
            )
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            raise ValueError(f"grid[{name!r}] must be finite, got {arr.tolist()!r:.80}")
        if np.unique(arr).size != arr.size:
            raise ValueError(f"grid[{name!r}] has repeated values: {arr.tolist()!r:.80}")
        out[name] = arr
    return out


def _block_shape(chunk: object, sizes: tuple[int, ...], names: tuple[str, ...]) -> tuple[int, ...]:
    """Block shape from ``chunk``: None (1 along the first grid dim, whole along the others),
    an int (at most that many points per block, filled from the last grid dim) or a dict."""
    if chunk is None:
        return (1, *sizes[1:])
    if isinstance(chunk, bool) or not isinstance(chunk, (int, Mapping)):
        raise TypeError(
            "chunk must be None, a positive int (grid points per block) or a dict "
            f"{{grid name: block size}}, got {type(chunk).__name__} ({chunk!r})"
        )
    if isinstance(chunk, int):
        if chunk < 1:
            raise ValueError(f"chunk must be a positive number of grid points, got {chunk}")
        shape, left = [], chunk
        for n in reversed(sizes):
            s = max(1, min(n, left))
            shape.append(s)
            left //= s
        return tuple(reversed(shape))
    unknown = sorted(set(chunk) - set(names))
    if unknown:
        raise ValueError(f"chunk names {unknown} are not grid names; allowed: {list(names)}")
    shape = []
    for name, n in zip(names, sizes, strict=True):
        s = chunk.get(name, n)
        if isinstance(s, bool) or not isinstance(s, int) or s < 1:
            raise ValueError(f"chunk[{name!r}] must be a positive int, got {s!r}")
        shape.append(min(s, n))
    return tuple(shape)


@dataclass(frozen=True)
class _Layout:
    names: tuple[str, ...]
    values: tuple[np.ndarray, ...]
    block: tuple[int, ...]
    batch_dim: str = "batch"

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(v.size for v in self.values)

    @property
    def nblocks(self) -> tuple[int, ...]:
        return tuple(math.ceil(n / b) for n, b in zip(self.sizes, self.block, strict=True))

    @property
    def n_blocks(self) -> int:
        return math.prod(self.nblocks)

    def slices(self, i: int) -> tuple[slice, ...]:
        idx = np.unravel_index(i, self.nblocks)
        return tuple(
            slice(int(j) * b, min((int(j) + 1) * b, n))
            for j, b, n in zip(idx, self.block, self.sizes, strict=True)
        )

    def params(self, i: int) -> dict[str, np.ndarray]:
        """The block's points, flattened in C order (the last grid name varies fastest)."""
        vals = [v[s] for v, s in zip(self.values, self.slices(i), strict=True)]
        mesh = np.meshgrid(*vals, indexing="ij")
        return {n: m.reshape(-1) for n, m in zip(self.names, mesh, strict=True)}


# --------------------------------------------------------------------------------------------
# Running one block (executed on the workers)
# --------------------------------------------------------------------------------------------


def _resolve(experiment: Callable[..., xr.Dataset] | str) -> Callable[..., xr.Dataset]:
    """A callable, a protocol name of :mod:`synaptic_fwp.protocols` or ``"module:function"``."""
    if callable(experiment):
        return experiment
    if ":" in experiment:
        mod, _, attr = experiment.partition(":")
        return getattr(importlib.import_module(mod), attr)
    from . import protocols

    return getattr(protocols, experiment)


def _call(
    experiment: Callable[..., xr.Dataset] | str,
    fixed: Mapping[str, Any],
    params: Mapping[str, np.ndarray],
    batch_dim: str = "batch",
) -> xr.Dataset:
    import torch

    fn = _resolve(experiment)
    n = next(iter(params.values())).size
    kwargs = {k: torch.as_tensor(v) for k, v in params.items()}
    ds = fn(**fixed, **kwargs)
    if not isinstance(ds, xr.Dataset):
        raise TypeError(
            f"experiment must return an xarray.Dataset with a {batch_dim!r} dimension, got "
            f"{type(ds).__name__}"
        )
    if ds.sizes.get(batch_dim) != n:
        raise ValueError(
            f"experiment must return a Dataset whose {batch_dim!r} dimension (batch_dim) has one "
            f"entry per grid "
            f"point of the call ({n}), got dims {dict(ds.sizes)}"
        )
    return ds


def _to_block(
    ds: xr.Dataset, names: tuple[str, ...], shape: tuple[int, ...], batch: str
) -> xr.Dataset:
    """Replace the batch dim by the grid dims (first), keep only batch-dependent variables."""
    out = {}
    for name, var in ds.variables.items():
        if batch not in var.dims or name == batch or name in names:
            continue
        rest = tuple(d for d in var.dims if d != batch)
        data = np.asarray(var.transpose(batch, *rest).values)
        out[name] = xr.Variable(names + rest, data.reshape(shape + data.shape[1:]), var.attrs)
    coords = [n for n in out if n in ds.coords]
    return xr.Dataset(
        {k: v for k, v in out.items() if k not in coords}, coords={k: out[k] for k in coords}
    )


def _run_block(
    experiment: Callable[..., xr.Dataset] | str,
    fixed: Mapping[str, Any],
    layout: _Layout,
    i: int,
    store: str,
    spec: Mapping[str, tuple],
) -> int:
    """Compute block ``i``, write its region, then set its completion marker."""
    import zarr

    sl = layout.slices(i)
    shape = tuple(s.stop - s.start for s in sl)
    ds = _call(experiment, fixed, layout.params(i), layout.batch_dim)
    block = _to_block(ds, layout.names, shape, layout.batch_dim)
    got = {k: (v.dims, v.shape[len(shape) :], v.dtype.str) for k, v in block.variables.items()}
    if got != dict(spec):
        raise ValueError(
            f"experiment returned variables {got} for block {i}, but the sweep's template "
            f"(from its first grid point) has {dict(spec)}; every call must return the same "
            "variables, dims and dtypes"
        )
    block.to_zarr(
        store, region=dict(zip(layout.names, sl, strict=True)), mode="r+", consolidated=False
    )
    zarr.open_array(store=store, path=_DONE, mode="r+")[i] = 1
    return i


# --------------------------------------------------------------------------------------------
# Template and resume
# --------------------------------------------------------------------------------------------


def _template(probe: xr.Dataset, layout: _Layout) -> xr.Dataset:
    import dask.array as da

    grid_dims = dict(zip(layout.names, layout.sizes, strict=True))
    data_vars, coords = {}, {}
    for name, var in probe.variables.items():
        if name == layout.batch_dim or name in layout.names:
            continue
        if layout.batch_dim in var.dims:
            rest = tuple(d for d in var.dims if d != layout.batch_dim)
            rest_shape = tuple(probe.sizes[d] for d in rest)
            arr = da.zeros(
                layout.sizes + rest_shape, dtype=var.dtype, chunks=layout.block + rest_shape
            )
            new = xr.Variable(layout.names + rest, arr, var.attrs)
        else:
            if set(var.dims) & set(grid_dims):
                raise ValueError(
                    f"experiment output variable {name!r} has dims {var.dims} that clash with "
                    f"grid names {layout.names}"
                )
            new = var
        (coords if name in probe.coords else data_vars)[name] = new
    for n, v in zip(layout.names, layout.values, strict=True):
        coords[n] = xr.Variable((n,), v, {"long_name": f"swept parameter {n}"})
    ds = xr.Dataset(data_vars, coords=coords, attrs=dict(probe.attrs))
    for k in ("units", "long_name"):  # keep the experiment's own description of swept params
        for n in layout.names:
            if n in probe.variables and k in probe[n].attrs:
                ds[n].attrs[k] = probe[n].attrs[k]
    return ds


def _fingerprint(experiment: object, fixed: Mapping[str, Any], layout: _Layout) -> dict:
    name = (
        experiment
        if isinstance(experiment, str)
        else (
            f"{getattr(experiment, '__module__', '?')}:"
            f"{getattr(experiment, '__qualname__', type(experiment).__qualname__)}"
        )
    )
    return {
        "format": _FORMAT,
        "experiment": name,
        "fixed": sorted(fixed),
        "grid": list(layout.names),
        "block": list(layout.block),
        "batch_dim": layout.batch_dim,
    }


def _exists(store: str) -> bool:
    import zarr

    try:
        zarr.open_group(store, mode="r")
    except (FileNotFoundError, KeyError, ValueError, zarr.errors.GroupNotFoundError):
        return False
    return True


def _check_resume(store: str, fp: dict, layout: _Layout) -> None:
    import zarr

    attrs = dict(zarr.open_group(store, mode="r").attrs)
    old = attrs.get("sweep")
    if old is None:
        raise ValueError(
            f"store {store!r} exists and is not a synaptic_fwp sweep; pass overwrite=True to "
            "replace it or choose another store"
        )
    old = json.loads(old) if isinstance(old, str) else old
    ds = xr.open_zarr(store, consolidated=False)
    diff = [f"{k}: stored {old.get(k)!r}, now {v!r}" for k, v in fp.items() if old.get(k) != v]
    for n, v in zip(layout.names, layout.values, strict=True):
        if n in ds.coords and not (ds[n].shape == v.shape and np.array_equal(ds[n].values, v)):
            diff.append(
                f"grid values of {n!r}: stored {ds[n].values.tolist()!r:.60}, now "
                f"{v.tolist()!r:.60}"
            )
    if diff:
        raise ValueError(
            f"store {store!r} holds a different sweep ({'; '.join(diff)}); pass overwrite=True "
            "to start it afresh, or use another store"
        )


def _init_store(store: str, probe: xr.Dataset, fp: dict, layout: _Layout) -> None:
    import zarr

    tmpl = _template(probe, layout)
    tmpl.attrs["sweep"] = json.dumps(fp)
    tmpl.to_zarr(store, mode="w", compute=False, consolidated=False)
    zarr.create_array(
        store=store,
        name=_DONE,
        shape=(layout.n_blocks,),
        chunks=(1,),
        dtype="int8",
        fill_value=0,
        overwrite=True,
    )


def _done(store: str) -> np.ndarray:
    import zarr

    return np.asarray(zarr.open_array(store=store, path=_DONE, mode="r")[:]).astype(bool)


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def sweep_status(store: str | os.PathLike) -> dict[str, int]:
    """``{"blocks": total, "done": finished}`` of the sweep in ``store``."""
    done = _done(os.fspath(store))
    return {"blocks": int(done.size), "done": int(done.sum())}


def open_sweep(store: str | os.PathLike, *, allow_incomplete: bool = False) -> xr.Dataset:
    """Open a sweep store as one lazily loaded Dataset (grid names as leading dims).

    Raises :class:`SweepIncompleteError` when blocks are missing unless ``allow_incomplete``
    (missing blocks then read as the Zarr fill value: NaN for floats)."""
    store = os.fspath(store)
    st = sweep_status(store)
    if st["done"] < st["blocks"] and not allow_incomplete:
        raise SweepIncompleteError(
            f"sweep store {store!r} has {st['done']} of {st['blocks']} blocks finished; run the "
            "same sweep again to compute the missing ones, or pass allow_incomplete=True"
        )
    ds = xr.open_zarr(store, consolidated=False)
    ds.attrs["sweep_store"] = store
    return ds


def sweep(
    experiment: Callable[..., xr.Dataset] | str,
    grid: Mapping[str, Sequence[float] | np.ndarray],
    client: Any = None,
    chunk: int | Mapping[str, int] | None = None,
    store: str | os.PathLike | None = None,
    *,
    fixed: Mapping[str, Any] | None = None,
    retries: int = 2,
    overwrite: bool = False,
    n_workers: int | None = None,
    batch_dim: str = "batch",
    progress: bool = False,
) -> xr.Dataset:
    r"""Run ``experiment`` on every point of ``grid``, in batched blocks on a Dask cluster.

    Parameters
    ----------
    experiment
        ``f(**params) -> xarray.Dataset`` where each swept parameter arrives as a 1-D torch
        tensor (one entry per grid point of the block; float64 for float grids) and the Dataset
        has a ``batch`` dimension of that length (DESIGN.md's record schema). Or a string: the
        name of a protocol in :mod:`synaptic_fwp.protocols` (e.g. ``"pairing"``) or
        ``"package.module:function"``, resolved on the workers. It must be picklable
        (cloudpickle) for process workers.
    grid
        ``{name: 1-D values}``; the result has dims ``(*grid, *other dims of the experiment)``
        and the values as coordinates. Names are passed as keyword arguments.
    client
        ``None``: a ``LocalCluster`` (processes, one thread per worker, ``n_workers``) started
        and closed here. A ``distributed.Client``, or a scheduler address string
        (``"tcp://host:8786"``). ``"serial"``: run the blocks one after another in this process
        without Dask (for debugging and single-process reference runs).
    chunk
        Block size: ``None`` (one block per value of the first grid name), an int (at most that
        many grid points per block, filled from the last grid name) or ``{name: size}``
        (missing names: whole). Each block is ONE call of ``experiment`` (one batched run).
    store
        Path or URL of the Zarr store; every worker writes its blocks there, so on a
        multi-machine cluster it must be reachable from the workers (a shared filesystem or an
        object-store URL understood by zarr/fsspec). ``None``: a new temporary directory (not
        resumable).
        An existing sweep store with the same experiment name, fixed keys, grid and blocks is
        resumed: only blocks without a completion marker are computed.
    fixed
        Keyword arguments passed unchanged to every call (not swept).
    retries
        Retries of a block whose experiment raises (worker deaths are handled by the scheduler).
    overwrite
        Replace an existing store instead of resuming it.
    n_workers
        Workers of the default ``LocalCluster`` (Dask's default when ``None``).
    batch_dim
        The experiment's dimension with one entry per grid point (``"batch"`` by DESIGN.md;
        e.g. ``"param"`` for :func:`synaptic_fwp.protocols.pairing` with per-instance rule
        parameters). Its coordinates are dropped (the grid coordinates replace them).
    progress
        Show a tqdm progress bar over blocks.

    Returns
    -------
    xarray.Dataset
        Lazily loaded from the store (``attrs["sweep_store"]`` gives its path).

    Raises
    ------
    SweepIncompleteError
        When blocks still fail after their retries; finished blocks stay in the store and a
        second call with the same arguments computes only the missing ones.
    """
    if not isinstance(batch_dim, str) or not batch_dim:
        raise TypeError(f"batch_dim must be a non-empty str (a dimension name), got {batch_dim!r}")
    layout_values = _check_grid(grid, batch_dim)
    names = tuple(layout_values)
    sizes = tuple(v.size for v in layout_values.values())
    block = _block_shape(chunk, sizes, names)
    layout = _Layout(names, tuple(layout_values.values()), block, batch_dim)
    if not (callable(experiment) or isinstance(experiment, str)):
        raise TypeError(
            "experiment must be a callable f(**params) -> xarray.Dataset, a protocol name or "
            f"'module:function', got {type(experiment).__name__}"
        )
    fixed = dict(fixed or {})
    clash = sorted(set(fixed) & set(names))
    if clash:
        raise ValueError(f"fixed and grid both set {clash}; a parameter is either swept or fixed")
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ValueError(f"retries must be a non-negative int, got {retries!r}")
    serial = isinstance(client, str) and client == "serial"
    if not (client is None or isinstance(client, str) or hasattr(client, "submit")):
        raise TypeError(
            "client must be None (a LocalCluster), 'serial', a scheduler address or a "
            f"distributed.Client, got {type(client).__name__}"
        )
    if store is None:
        store = str(Path(tempfile.mkdtemp(prefix="synaptic_fwp_sweep_")) / "sweep.zarr")
    store = os.fspath(store)
    fp = _fingerprint(experiment, fixed, layout)
    resume = not overwrite and _exists(store)
    if resume:
        _check_resume(store, fp, layout)

    own: list[Any] = []  # client/cluster started here, closed at the end
    try:
        if serial:
            run = None
        else:
            from distributed import Client, LocalCluster

            if client is None:
                cluster = LocalCluster(
                    n_workers=n_workers,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=None,
                    preload=[_WORKER_PRELOAD],
                )
                own.append(cluster)
                client = Client(cluster)
                own.insert(0, client)
            elif isinstance(client, str):
                client = Client(client)
                own.append(client)
            run = client

        if not resume:
            first = {n: v[:1] for n, v in zip(names, layout.values, strict=True)}
            if run is None:
                probe = _call(experiment, fixed, first, batch_dim)
            else:
                probe = run.submit(_call, experiment, fixed, first, batch_dim, pure=False).result()
            _init_store(store, probe, fp, layout)
        spec = {
            k: (v.dims, v.shape[len(names) :], v.dtype.str)
            for k, v in _template_vars(store, names).items()
        }
        todo = [int(i) for i in np.flatnonzero(~_done(store))]
        errors: list[tuple[int, BaseException]] = []
        bar = None
        if progress and todo:
            from tqdm.auto import tqdm

            bar = tqdm(total=layout.n_blocks, initial=layout.n_blocks - len(todo), unit="block")
        if run is None:
            for i in todo:
                _run_block(experiment, fixed, layout, i, store, spec)
                if bar is not None:
                    bar.update()
        else:
            from distributed import as_completed

            futures = [
                run.submit(
                    _run_block,
                    experiment,
                    fixed,
                    layout,
                    i,
                    store,
                    spec,
                    retries=retries,
                    pure=False,
                )
                for i in todo
            ]
            for fut in as_completed(futures):
                if fut.status == "error":
                    errors.append((futures.index(fut), fut.exception()))
                if bar is not None:
                    bar.update()
            del futures
        if bar is not None:
            bar.close()
    finally:
        for obj in own:
            obj.close()
    st = sweep_status(store)
    if errors or st["done"] < st["blocks"]:
        k, exc = errors[0] if errors else (None, None)
        raise SweepIncompleteError(
            f"{st['blocks'] - st['done']} of {st['blocks']} blocks of the sweep in {store!r} "
            f"are not finished (first failure: block {todo[k] if k is not None else '?'}: "
            f"{exc!r}); the {st['done']} finished blocks are kept, and calling sweep again with "
            "the same arguments computes only the missing ones"
        ) from exc
    return open_sweep(store)


def _template_vars(store: str, names: tuple[str, ...]) -> dict[str, xr.Variable]:
    """The batch-dependent variables recorded in the store (dims start with the grid names)."""
    ds = xr.open_zarr(store, consolidated=False)
    return {
        k: v for k, v in ds.variables.items() if k not in names and v.dims[: len(names)] == names
    }
