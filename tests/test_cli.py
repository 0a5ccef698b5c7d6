"""The synaptic-fwp command line: help on every command, the run -> plot path of the README,
reruns from a result file, clear errors, the datasets browser and the demo's quick run."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import xarray as xr

from synaptic_fwp import cli

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = ["run", "fit", "plot", "compare", "datasets"]


def test_help_on_every_command(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--help"])
    assert e.value.code == 0
    top = capsys.readouterr().out
    for c in COMMANDS:
        assert c in top
    for c in COMMANDS:
        with pytest.raises(SystemExit) as e:
            cli.main([c, "--help"])
        assert e.value.code == 0
        out = capsys.readouterr().out
        assert f"synaptic-fwp {c}" in out
        assert len(out) > 300  # a description, not just a usage line


def test_run_plot_rerun(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    shutil.copytree(ROOT / "examples", "examples")
    toml = Path("examples/stdp_pairing.toml")
    text = toml.read_text().replace("freq = [0.1, 10, 20, 40, 50]", "freq = [0.1, 20]")
    text = text.replace("maxiter = 30", "maxiter = 2\npopsize = 4").replace(
        "n_boot = 20", "n_boot = 0"
    )
    toml.write_text(text)
    assert cli.main(["run", str(toml), "--check"]) == 0
    assert "OK" in capsys.readouterr().out
    assert cli.main(["run", str(toml), "--no-progress"]) == 0
    res = Path("results/stdp_pairing.nc")
    ds = xr.load_dataset(res)
    assert dict(ds.sizes) == {"freq": 2, "dt_pair": 2}
    assert ds.attrs["experiment"] == "stdp_pairing"
    # plot with the shipped data overlaid: PDF + PNG next to the result
    assert cli.main(["plot", str(res), "--data", "sjostrom2001_frequency"]) == 0
    assert Path("results/stdp_pairing.pdf").stat().st_size > 1000
    assert Path("results/stdp_pairing.png").stat().st_size > 1000
    assert cli.main(["plot", str(res), "-k", "stdp_window", "-o", "w.pdf"]) == 0
    assert Path("w.pdf").exists() and not Path("w.png").exists()
    # fit the file's [fit] parameters to the shipped data, then plot the fit
    assert cli.main(["fit", str(toml)]) == 0
    out = capsys.readouterr().out
    assert "chi2 =" in out and "A3_plus =" in out
    fit = xr.load_dataset("results/stdp_fit.nc")
    assert set(fit["param"].values[fit["param_status"].values == "free"]) == {
        "A3_plus",
        "A2_minus",
        "tau_y",
    }
    assert float(fit["objective"]) < 20.0  # the published set gives 3.6 on these 10 points
    assert cli.main(["plot", "results/stdp_fit.nc"]) == 0
    assert Path("results/stdp_fit.pdf").stat().st_size > 1000
    # compare the two example rules on the data (figure of Delta-AIC bars)
    pair = Path("examples/pair_stdp.toml")
    pair.write_text(
        pair.read_text()
        .replace("maxiter = 30", "maxiter = 2\npopsize = 4")
        .replace("n_boot = 20", "n_boot = 0")
    )
    assert cli.main(["compare", str(toml), str(pair), "--figure", "cmp", "--no-progress"]) == 0
    table = xr.load_dataset("results/compare.nc")
    assert int(table["rank"].sel(rule="stdp_pairing").item()) == 1
    assert Path("cmp.pdf").exists()
    # a result file runs again the same way
    assert cli.main(["run", str(res), "-o", "again.nc", "--no-progress"]) == 0
    xr.testing.assert_identical(xr.load_dataset("again.nc")["dw"], ds["dw"])
    # Zarr output too, and a rerun from it
    assert cli.main(["run", str(toml), "-o", "r.zarr", "--no-progress"]) == 0
    assert cli.main(["run", "r.zarr", "-o", "again2.nc", "--no-progress"]) == 0
    xr.testing.assert_identical(xr.load_dataset("again2.nc")["dw"], ds["dw"])


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "examples").glob("*.toml")))
def test_every_example_file_checks(name, capsys):
    """Each shipped example file passes ``run --check`` (parsed, units and names checked, the
    experiment built; nothing run)."""
    assert cli.main(["run", str(ROOT / "examples" / name), "--check"]) == 0
    assert "OK" in capsys.readouterr().out


def test_errors_are_one_line_messages(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    Path("bad.toml").write_text('[rule]\nname = "nope"\n[protocol]\nname = "pairing"\n')
    assert cli.main(["run", "bad.toml"]) == 2
    err = capsys.readouterr().err
    assert "bad.toml, line 2: [rule.name] unknown rule 'nope'" in err
    assert "Traceback" not in err
    assert cli.main(["plot", "missing.nc"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert cli.main(["datasets", "show", "nope"]) == 2
    assert "nope" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["plot", "x.nc", "--kind", "pie_chart"])


def test_datasets_command(tmp_path, capsys):
    assert cli.main(["datasets"]) == 0
    assert "sjostrom2001_frequency" in capsys.readouterr().out
    assert cli.main(["datasets", "show", "sjostrom2001_frequency"]) == 0
    assert "doi" in capsys.readouterr().out.lower()
    out = tmp_path / "s.csv"
    assert cli.main(["datasets", "export", "sjostrom2001_frequency", "-o", str(out)]) == 0
    assert out.read_text().splitlines()[0].startswith("point")


def test_demo_quick(tmp_path, capsys):
    from synaptic_fwp import demo

    assert demo.main(["--quick", "--out", str(tmp_path), "--no-progress"]) == 0
    for step in demo.STEPS:
        for ext in ("nc", "pdf", "png"):
            assert (tmp_path / f"{step}.{ext}").stat().st_size > 1000, (step, ext)
    assert "BTSP: ramp peak" in capsys.readouterr().out
    # BTSP: the induced field peaks before the plateau (Milstein et al. 2021: -12.5 cm)
    b = xr.load_dataset(tmp_path / "btsp_place_field.nc")
    assert -0.25 < float(b["peak_shift"][0, -1]) < 0.0
    # the fit is at least as good as the published set, computed by the same code
    f = xr.load_dataset(tmp_path / "stdp_fit.nc")
    assert float(f["objective"]) <= float(f["published_objective"]) + 1e-9
    kv = xr.load_dataset(tmp_path / "kv_memory.nc")
    e = kv["recall_error"]
    # the delta rule recalls better than Hebbian at every load, and Hebbian follows the
    # crosstalk theory (P - 1)/(N - 2) within 3 SEM + 10%
    assert bool((e.sel(rule="delta") < e.sel(rule="hebbian")).all())
    heb, sem = e.sel(rule="hebbian"), kv["recall_error_sem"].sel(rule="hebbian")
    assert bool((abs(heb - kv["theory"]) <= 3 * sem + 0.1 * kv["theory"]).all())
