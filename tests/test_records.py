"""Records: the schema, NetCDF/Zarr streaming, and kill -> resume giving the uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import xarray as xr

from synaptic_fwp import records
from synaptic_fwp.engine import Network
from synaptic_fwp.neurons import LIFPopulation

BUILD = textwrap.dedent(
    """
    import torch
    from synaptic_fwp.engine import Network
    from synaptic_fwp.inputs import PoissonInput
    from synaptic_fwp.neurons import LIFPopulation
    from synaptic_fwp.plasticity import PairSTDP

    def build():
        net = Network(dt=1e-4, batch=3, seed=11, dtype=torch.float64)
        inp = net.add(PoissonInput(30, rate=torch.tensor([100.0, 200.0, 300.0]), name="inp"))
        lif = net.add(LIFPopulation(1, C=200e-12, g_L=10e-9, E_L=-70e-3, V_th=-52e-3,
                                    V_reset=-60e-3, t_ref=1e-3, tau_ampa=3e-3, name="out"))
        W0 = torch.linspace(0.5e-9, 4e-9, 30, dtype=torch.float64).reshape(1, 30)
        net.connect(inp, lif, W0, PairSTDP.song2000(w_max=5e-9), name="S")
        return net

    RUN = dict(duration=0.06, record=["S.W", "out.V", "out.spikes", "inp.spikes"],
               every=0.001, progress=False, chunk=40)
    """
)


def _build():
    ns: dict = {}
    exec(BUILD, ns)
    return ns["build"](), ns["RUN"]


@pytest.fixture(scope="module")
def reference():
    net, run = _build()
    return net.run(**run)


def test_schema_units_long_names_and_attrs(reference):
    ds = reference
    for name, var in ds.variables.items():
        assert var.attrs.get("units") is not None, name
        assert var.attrs.get("long_name"), name
    assert ds["time"].attrs["units"] == "s"
    assert ds["S_W"].dims == ("batch", "time", "post", "pre")
    assert ds.sizes["time"] == 60
    for k in ("dt", "seed", "version", "S_rule", "S_rule_params"):
        assert k in ds.attrs
    assert "inp_rate" in ds.coords


@pytest.mark.parametrize("ext", [".nc", ".zarr"])
def test_streamed_run_equals_in_memory_run(tmp_path, reference, ext):
    net, run = _build()
    out = str(tmp_path / f"run{ext}")
    ds = net.run(**run, out=out)
    xr.testing.assert_identical(ds, reference)
    again = records.open_records(out)
    xr.testing.assert_identical(again, reference)
    assert os.path.exists(records.checkpoint_path(out))


CHILD = BUILD + textwrap.dedent(
    """
    import sys, time
    out = sys.argv[1]
    net = build()
    def slow(step):
        time.sleep(0.3)  # leave the parent time to kill us between chunks
    net.run(**RUN, out=out, on_chunk=slow)
    """
)


@pytest.mark.parametrize("ext", [".nc", ".zarr"])
def test_sigkill_then_resume_gives_the_uninterrupted_dataset(tmp_path, reference, ext):
    out = str(tmp_path / f"run{ext}")
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    ckpt = records.checkpoint_path(out)
    proc = subprocess.Popen([sys.executable, str(script), out])
    t0 = time.time()
    n_at_kill = 0
    try:
        while time.time() - t0 < 120:
            if os.path.exists(ckpt):
                n_at_kill = records.load_checkpoint(ckpt)["n_records"]
                if n_at_kill >= 2 * 40 * 1e-4 / 1e-3:  # at least two chunks on disk
                    break
            if proc.poll() is not None:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the child finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    n_ckpt = records.load_checkpoint(ckpt)["n_records"]
    assert 8 <= n_ckpt < 60
    # nothing written before the kill is lost: the records on disk equal the reference prefix
    part = records.open_records(out)
    assert part.sizes["time"] >= n_ckpt
    xr.testing.assert_identical(part.isel(time=slice(0, n_ckpt)),
                                reference.isel(time=slice(0, n_ckpt)))
    # resume in a fresh network: bit-identical to the uninterrupted run
    net, run = _build()
    ds = net.run(**run, out=out, resume=True)
    xr.testing.assert_identical(ds, reference)


def test_resume_with_other_arguments_is_refused(tmp_path):
    net, run = _build()
    out = str(tmp_path / "r.nc")
    net.run(**{**run, "duration": 0.008}, out=out)
    net2, _ = _build()
    with pytest.raises(ValueError, match="resume"):
        net2.run(**{**run, "duration": 0.01}, out=out, resume=True)


def test_make_dataset_json_attrs_roundtrip(tmp_path):
    ds = records.make_dataset(
        {"x": np.zeros((2, 3, 4), np.float32)},
        {"x": (("batch", "time", "post"), "V", "a variable")},
        np.array([0.1, 0.2, 0.3]),
        attrs={"rule": "pair_stdp", "params": {"tau": 0.02, "A": [1.0, 2.0]}},
    )
    p = tmp_path / "a.nc"
    ds.to_netcdf(p)
    back = xr.open_dataset(p)
    assert back.attrs["params"] == ds.attrs["params"]
    assert back["x"].attrs["units"] == "V"
    back.close()


def test_unknown_output_format_is_refused(tmp_path):
    net = Network(dt=1e-4)
    net.add(LIFPopulation(1, name="n"))
    with pytest.raises(ValueError, match="out must end in"):
        net.run(0.001, out=str(tmp_path / "x.h5"), progress=False)
