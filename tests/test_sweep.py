"""Dask-distributed sweeps into one Zarr store (issue 8): a 4 x 8 x 8 grid of pair-STDP
parameter sets, each block one batched event-driven pairing run, on a LocalCluster of 2 process
workers; one worker is killed midway; a failed sweep restarted computes only the missing blocks;
results equal a single-process run value for value."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

distributed = pytest.importorskip("distributed")
pytest.importorskip("zarr")
cloudpickle = pytest.importorskip("cloudpickle")

from synaptic_fwp.plasticity import PairSTDP  # noqa: E402
from synaptic_fwp.protocols.pairing import pairing  # noqa: E402
from synaptic_fwp.sweep import SweepIncompleteError, open_sweep, sweep, sweep_status  # noqa: E402

# the experiments below travel to the worker processes by value (tests/ is not a package)
cloudpickle.register_pickle_by_value(sys.modules[__name__])

GRID = {
    "A_plus": np.linspace(2e-3, 8e-3, 4),
    "tau_plus": np.linspace(10e-3, 30e-3, 8),
    "tau_minus": np.linspace(15e-3, 45e-3, 8),
}
CHUNK = 8  # 256 grid points -> 32 blocks of 8 parameter sets (one pairing call each)
N_BLOCKS = 32


def experiment(A_plus, tau_plus, tau_minus, log_dir=None, delay=0.0):
    """Pair STDP (all-to-all, additive) under 10 pairings at 1 and 20 Hz, +-10 ms and +5 ms.

    ``log_dir``: each call leaves a file there (to count calls across processes); while a file
    ``fail`` exists there, calls whose block holds the 6th ``tau_plus`` value raise. ``delay``
    (s) slows each call down so that a worker can be killed while it holds blocks."""
    if log_dir is not None:
        d = Path(log_dir)
        (d / f"call-{os.getpid()}-{time.monotonic_ns()}").touch()
        if (d / "fail").exists() and bool((tau_plus == GRID["tau_plus"][5]).any()):
            raise RuntimeError("simulated failure of this block")
    time.sleep(delay)
    rule = PairSTDP(
        A_plus=A_plus, A_minus=torch.full_like(A_plus, 5e-3), tau_plus=tau_plus, tau_minus=tau_minus
    )
    return pairing(rule, dt=[-0.01, 0.005, 0.01], freq=[1.0, 20.0], n_pairs=10)


def _flat_grid() -> dict[str, torch.Tensor]:
    mesh = np.meshgrid(*GRID.values(), indexing="ij")
    return {k: torch.as_tensor(m.reshape(-1)) for k, m in zip(GRID, mesh, strict=True)}


@pytest.fixture(scope="module")
def reference():
    """Single-process reference: the whole grid in ONE batched call, reshaped to the grid."""
    ds = experiment(**_flat_grid())
    return {k: ds[k].values.reshape(4, 8, 8, *ds[k].shape[1:]) for k in ("dw", "w_final")}


# Run by every worker process before it registers with the scheduler, including the one the
# nanny restarts after the kill, so that no block waits for a cold start (imports, lazy
# dask.array import of xarray, first torch calls).
WARM = """
from synaptic_fwp.plasticity import PairSTDP
from synaptic_fwp.protocols.pairing import pairing
pairing(PairSTDP(), dt=[0.01], freq=[1.0], n_pairs=2)
"""


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, preload=[WARM]
    )
    c = Client(cluster)
    yield c
    c.close()
    cluster.close()


def _check_equal(ds, reference) -> None:
    # read the store here (a Client in this process would otherwise make the cluster load it)
    ds = ds.compute(scheduler="synchronous")
    assert tuple(ds["dw"].dims) == ("A_plus", "tau_plus", "tau_minus", "freq", "dt_pair")
    for k, ref in reference.items():
        np.testing.assert_array_equal(ds[k].values, ref)
    for k, v in GRID.items():
        np.testing.assert_array_equal(ds[k].values, v)
    # per-instance coordinates that are not swept are kept, expanded over the grid
    assert ds["A_minus"].dims == ("A_plus", "tau_plus", "tau_minus")
    assert ds["dw"].attrs["units"] == "1" and ds["dt_pair"].attrs["units"] == "s"
    assert ds.attrs["rule"] == "pair_stdp"


def test_sweep_survives_a_killed_worker(client, reference, tmp_path):
    store = tmp_path / "sweep.zarr"
    out: dict[str, object] = {}

    def run():
        try:
            out["ds"] = sweep(
                experiment,
                GRID,
                client=client,
                chunk=CHUNK,
                store=store,
                fixed={"delay": 0.1},
                batch_dim="param",
            )
        except BaseException as e:  # reported by the main thread
            out["error"] = e

    thread = threading.Thread(target=run)
    thread.start()
    victim, done_at_kill, deadline = None, None, time.monotonic() + 60
    while victim is None and time.monotonic() < deadline and thread.is_alive():
        time.sleep(0.1)
        try:
            done = sweep_status(store)["done"]
        except Exception:  # store or markers not created yet
            continue
        busy = [w for w, keys in client.processing().items() if keys]
        if done >= 4 and busy:
            victim, done_at_kill = busy[0], done
            pid = client.run(os.getpid, workers=[victim])[victim]
            os.kill(pid, signal.SIGKILL)  # the worker process dies holding a block
    thread.join(timeout=90)
    assert not thread.is_alive()
    assert "error" not in out, out.get("error")
    assert victim is not None and done_at_kill < N_BLOCKS, "the kill did not happen midway"
    assert victim not in client.scheduler_info()["workers"]  # it really died (nanny restarts)
    assert sweep_status(store) == {"blocks": N_BLOCKS, "done": N_BLOCKS}
    ds = out["ds"]
    assert ds["dw"].chunks is not None  # lazily loaded from the store
    _check_equal(ds, reference)
    # equal, value for value, to the single-process run; the store reopens the same
    _check_equal(open_sweep(store), reference)


def test_restart_computes_only_missing_blocks(client, reference, tmp_path):
    store, log = tmp_path / "sweep.zarr", tmp_path / "log"
    log.mkdir()
    (log / "fail").touch()
    kw = dict(
        client=client,
        chunk={"A_plus": 2, "tau_plus": 2},
        store=store,
        fixed={"log_dir": str(log)},
        batch_dim="param",
        retries=0,
    )
    with pytest.raises(SweepIncompleteError, match="computes only the missing"):
        sweep(experiment, GRID, **kw)
    # blocks of (A_plus 2, tau_plus 2, tau_minus 8): 2 x 4 = 8; tau_plus[5] is in 2 of them
    assert sweep_status(store) == {"blocks": 8, "done": 6}
    with pytest.raises(SweepIncompleteError):
        open_sweep(store)
    partial = open_sweep(store, allow_incomplete=True)["dw"].compute(scheduler="synchronous")
    # the 2 failed blocks, each 2 A_plus x 2 tau_plus values, read as NaN
    assert int(np.isnan(partial.values).any(axis=(2, 3, 4)).sum()) == 2 * 2 * 2
    calls_before = len(list(log.glob("call-*")))
    (log / "fail").unlink()
    ds = sweep(experiment, GRID, **kw)
    assert len(list(log.glob("call-*"))) - calls_before == 2  # only the missing blocks ran
    _check_equal(ds, reference)
    # a finished sweep started again computes nothing
    ds = sweep(experiment, GRID, **kw)
    assert len(list(log.glob("call-*"))) - calls_before == 2
    _check_equal(ds, reference)
    # the store refuses a different sweep
    with pytest.raises(ValueError, match="different sweep"):
        sweep(experiment, {**GRID, "A_plus": GRID["A_plus"] * 2}, **kw)


def test_bad_arguments_fail_before_any_work(tmp_path):
    store = tmp_path / "never.zarr"
    cases = [
        (dict(grid={}), TypeError, "grid"),
        (dict(grid={"A_plus": [1.0, 1.0]}), ValueError, "repeated"),
        (dict(grid={"A_plus": [[1.0]]}), ValueError, "1-D"),
        (dict(grid={"batch": [1.0]}), ValueError, "batch_dim"),
        (dict(grid={"A_plus": ["a"]}), TypeError, "numbers"),
        (dict(grid=GRID, chunk=0), ValueError, "chunk"),
        (dict(grid=GRID, chunk={"nope": 2}), ValueError, "not grid names"),
        (dict(grid=GRID, client=3.0), TypeError, "client"),
        (dict(grid=GRID, fixed={"A_plus": 1.0}), ValueError, "swept or fixed"),
        (dict(grid=GRID, retries=-1), ValueError, "retries"),
    ]
    for kw, exc, msg in cases:
        with pytest.raises(exc, match=msg):
            sweep(experiment, store=store, **kw)
    with pytest.raises(TypeError, match="experiment"):
        sweep(42, GRID, store=store)
    assert not store.exists()


def test_serial_sweep_matches_blocks_of_any_shape(reference, tmp_path):
    ds = sweep(
        experiment,
        GRID,
        client="serial",
        chunk={"A_plus": 3, "tau_minus": 5},
        store=tmp_path / "a.zarr",
        batch_dim="param",
    )
    _check_equal(ds, reference)
    assert ds["dw"].chunks[:3] == ((3, 1), (8,), (5, 3))  # Zarr chunks = blocks (ragged tails)
