"""Shipped datasets (citations, SI units, values traced to the CSV) and the user-data readers
(schema checks: each malformed kind of file is rejected with a message naming what is wrong)."""

from __future__ import annotations

import csv
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from synaptic_fwp import datasets
from synaptic_fwp.datasets.units import UNITS

# shared/ sits beside the repository (as in CI: a clone with ../shared next to it)
SHARED = str(Path(__file__).resolve().parents[2] / "shared" / "data" / "physiology")


def test_list_names_every_shipped_file():
    names = datasets.list()
    assert names == sorted(datasets.CATALOG)
    files = {p.name for p in (resources.files("synaptic_fwp.datasets") / "data").iterdir()
             if p.name.endswith(".csv")}
    assert {datasets.CATALOG[n].file for n in names} == files
    assert len(names) == 5


@pytest.mark.parametrize("name", sorted(datasets.CATALOG))
def test_load_has_citation_and_units(name):
    ds = datasets.load(name)
    assert isinstance(ds, xr.Dataset)
    for key in ("citation", "citation_authors", "citation_year", "citation_journal",
                "citation_doi", "header", "description"):
        assert ds.attrs[key], key
    assert ds.attrs["citation_doi"].startswith("10.")
    assert str(ds.attrs["citation_year"]) in ds.attrs["citation"]
    assert len(ds.data_vars) > 0
    for v in ds.data_vars.values():
        assert "units" in v.attrs and "long_name" in v.attrs, v.name


@pytest.mark.parametrize("name", sorted(datasets.CATALOG))
def test_shipped_file_equals_shared_source(name):
    """The package copy is the published table (same bytes as shared/data/physiology)."""
    import os

    src = os.path.join(SHARED, datasets.CATALOG[name].file)
    if not os.path.exists(src):
        pytest.skip(f"the shared source tables are not beside this checkout ({SHARED})")
    ours = datasets.data_path(name).read_bytes()
    with open(src, "rb") as fh:
        assert ours == fh.read()


def _raw_rows(name):
    text = datasets.data_path(name).read_text().splitlines()
    return list(csv.DictReader([ln for ln in text if not ln.startswith("#")]))


def test_sjostrom_values_and_si_units():
    ds = datasets.load("sjostrom2001_frequency")
    rows = _raw_rows("sjostrom2001_frequency")
    assert ds.sizes["point"] == len(rows) == 10
    np.testing.assert_allclose(ds["freq"], [float(r["freq_Hz"]) for r in rows])
    np.testing.assert_allclose(ds["dt"], [float(r["dt_ms"]) * 1e-3 for r in rows])
    np.testing.assert_allclose(ds["dw"], [float(r["dw_mean"]) for r in rows])
    np.testing.assert_allclose(ds["dw_sem"], [float(r["dw_sem"]) for r in rows])
    assert ds["dt"].attrs["units"] == "s" and ds["freq"].attrs["units"] == "Hz"
    assert ds["dw"].attrs["units"] == "1"
    assert ds.attrs["protocol"].startswith("pairing")
    assert ds.attrs["citation_doi"] == "10.1016/S0896-6273(01)00542-6"
    # published value spot check (Sjostrom et al. 2001 via Pfister & Gerstner 2006): 50 Hz, -10 ms
    sel = (ds["freq"] == 50) & (ds["dt"] < 0)
    assert ds["dw"][sel].item() == pytest.approx(0.75)


def test_parameter_tables_convert_to_si():
    pg = datasets.load("pfister_gerstner2006_triplet_params")
    full = pg.where((pg["model"] == "full") & (pg["pairing"] == "all_to_all")
                    & (pg["dataset"] == "visual_cortex"), drop=True)
    assert full["tau_x"].item() == pytest.approx(0.101)
    assert full["A3_plus"].item() == pytest.approx(6.2e-3)
    assert pg["tau_y"].attrs["units"] == "s"
    assert np.isnan(pg["tau_x"].where(pg["model"] == "minimal", drop=True)).all()
    gb = datasets.load("graupner_brunel2012_params")
    assert float(gb["tau_Ca"].sel(set="DP")) == pytest.approx(0.020)
    assert float(gb["D"].sel(set="DP")) == pytest.approx(0.0137)
    assert float(gb["tau"].sel(set="DP")) == pytest.approx(150.0)
    sh = datasets.load("shouval2002_calcium_control_params")
    assert float(sh["tau_Ca"]) == pytest.approx(0.05) and sh["tau_Ca"].attrs["units"] == "s"
    assert float(sh["Mg"]) == pytest.approx(1000.0) and sh["Mg"].attrs["units"] == "uM"
    assert float(sh["MgBlock_k"]) == pytest.approx(62.0) and sh["MgBlock_k"].attrs["units"] == "1/V"
    ml = datasets.load("milstein2021_btsp_params")
    assert float(ml["local_signal_decay"].sel(estimate="population_fit_x0")) == pytest.approx(
        1.664103)
    assert ml["track_length"].attrs["units"] == "m"


def test_every_shipped_unit_is_known():
    for name in ("shouval2002_calcium_control_params", "milstein2021_btsp_params"):
        for r in _raw_rows(name):
            assert r["unit"] in UNITS or r["unit"] == "(P1*1e-4)", (name, r["unit"])


def test_load_rejects_unknown_name():
    with pytest.raises(ValueError, match="name must be one of"):
        datasets.load("sjostrom2002")
    with pytest.raises(TypeError, match="name must be a str"):
        datasets.load(3)


def test_netcdf_round_trip(tmp_path):
    ds = datasets.load("sjostrom2001_frequency")
    p = tmp_path / "d.nc"
    ds.to_netcdf(p)
    back = xr.load_dataset(p)
    xr.testing.assert_identical(ds, back)


# ------------------------------------------------------------------------- users' own data

GOOD = "freq_Hz,dt_ms,dw_mean,dw_sem\n1,10,0.1,0.05\n20,10,0.3,0.1\n1,-10,-0.2,0.05\n"


def _write(tmp_path, text, name="d.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_from_csv_good_file_and_comment_header(tmp_path):
    p = _write(tmp_path, "# my lab, 2025\n# second line\n" + GOOD)
    ds = datasets.from_csv(p)
    assert ds.attrs["header"] == "my lab, 2025 second line"
    np.testing.assert_allclose(ds["dt"], [0.01, 0.01, -0.01])
    np.testing.assert_allclose(ds["dw"], [0.1, 0.3, -0.2])
    assert ds.attrs["name"] == "d" and ds.attrs["measure"] == "dw"


def test_from_csv_units_argument_and_percent(tmp_path):
    p = _write(tmp_path, "freq,dt_s,dw_mean_percent,dw_sem_percent\n1,0.01,10,5\n2,0.01,20,5\n")
    ds = datasets.from_csv(p, units={"freq": "kHz"})
    np.testing.assert_allclose(ds["freq"], [1000.0, 2000.0])
    np.testing.assert_allclose(ds["dw"], [0.1, 0.2])
    np.testing.assert_allclose(ds["dw_sem"], [0.05, 0.05])


BAD_FILES = {
    "empty file": ("", "is empty"),
    "comments only": ("# nothing here\n", "is empty"),
    "header without rows": ("freq_Hz,dt_ms,dw_mean,dw_sem\n", "no data rows"),
    "missing column": ("freq_Hz,dt_ms,dw_mean\n1,10,0.1\n", r"missing column\(s\) \['dw_sem'\]"),
    "unexpected column": ("freq_Hz,dt_ms,dw_mean,dw_sem,cell\n1,10,0.1,0.1,3\n",
                          r"unexpected column\(s\) \['cell'\]"),
    "wrong unit dimension": ("freq_Hz,dt_Hz,dw_mean,dw_sem\n1,10,0.1,0.1\n",
                             r"'dt_Hz' has unit 'Hz' \(frequency\), but 'dt' must be a time"),
    "no unit": ("freq_Hz,dt,dw_mean,dw_sem\n1,10,0.1,0.1\n", "'dt' .* has no unit"),
    "non-numeric": ("freq_Hz,dt_ms,dw_mean,dw_sem\n1,10,abc,0.1\n",
                    r"column 'dw_mean', row 2: non-numeric value 'abc'"),
    "missing value": ("freq_Hz,dt_ms,dw_mean,dw_sem\n1,10,,0.1\n", "missing value"),
    "NaN": ("freq_Hz,dt_ms,dw_mean,dw_sem\n1,10,nan,0.1\n", "missing value 'nan'"),
    "infinite": ("freq_Hz,dt_ms,dw_mean,dw_sem\n1,10,inf,0.1\n", "infinite value"),
    "negative SEM": ("freq_Hz,dt_ms,dw_mean,dw_sem\n1,10,0.1,-0.1\n", r"SEM -0.1 must be > 0"),
    "zero SEM": ("freq_Hz,dt_ms,dw_mean,dw_sem\n1,10,0.1,0\n", r"SEM 0.0 must be > 0"),
    "duplicate rows": ("freq_Hz,dt_ms,dw_mean,dw_sem\n1,10,0.1,0.1\n1,10,0.2,0.1\n",
                       "rows 2 and 3 have the same conditions"),
    "ragged row": ("freq_Hz,dt_ms,dw_mean,dw_sem\n1,10,0.1\n", "3 fields, but the header has 4"),
    "duplicate column": ("freq_Hz,dt_ms,dw_mean,dw_mean\n1,10,0.1,0.1\n",
                         "'dw_mean' appears more than once"),
    "same quantity twice": ("freq_Hz,freq_kHz,dt_ms,dw_mean,dw_sem\n1,1,10,0.1,0.1\n",
                            "both give 'freq'"),
    "comment after header": ("freq_Hz,dt_ms,dw_mean,dw_sem\n# late\n1,10,0.1,0.1\n",
                             "comment lines are allowed only before the header"),
}


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_from_csv_rejects_malformed(tmp_path, kind):
    text, message = BAD_FILES[kind]
    p = _write(tmp_path, text)
    with pytest.raises(ValueError, match=message) as e:
        datasets.from_csv(p)
    assert "d.csv" in str(e.value)  # names the file


def test_from_csv_rejects_unknown_unit_string(tmp_path):
    p = _write(tmp_path, "freq_Hz,dt,dw_mean,dw_sem\n1,10,0.1,0.1\n")
    with pytest.raises(ValueError, match="'fortnights' is not a known unit"):
        datasets.from_csv(p, units={"dt": "fortnights"})
    with pytest.raises(ValueError, match="says unit 'ms' but units"):
        datasets.from_csv(_write(tmp_path, GOOD, "g.csv"), units={"dt": "s"})


def test_from_csv_rejects_missing_path_and_bad_schema(tmp_path):
    with pytest.raises(FileNotFoundError, match="not an existing file"):
        datasets.from_csv(tmp_path / "nope.csv")
    with pytest.raises(ValueError, match="schema must be a Schema or one of"):
        datasets.from_csv(_write(tmp_path, GOOD), schema="btsp")


def test_from_dataframe_matches_from_csv(tmp_path):
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"freq_Hz": [1.0, 20.0, 1.0], "dt_ms": [10, 10, -10],
                       "dw_mean": [0.1, 0.3, -0.2], "dw_sem": [0.05, 0.1, 0.05]})
    a = datasets.from_dataframe(df, name="d")
    b = datasets.from_csv(_write(tmp_path, GOOD))
    xr.testing.assert_allclose(a, b)
    with pytest.raises(ValueError, match="missing column"):
        datasets.from_dataframe(df.drop(columns="dw_sem"))
    with pytest.raises(ValueError, match="NaN"):
        datasets.from_dataframe(df.assign(dw_mean=[0.1, float("nan"), 0.2]))
    with pytest.raises(ValueError, match="non-numeric value 'x'"):
        datasets.from_dataframe(df.assign(dw_mean=["0.1", "x", "0.2"]))
    with pytest.raises(ValueError, match="df is empty"):
        datasets.from_dataframe(df.iloc[:0])
    with pytest.raises(TypeError, match="pandas.DataFrame"):
        datasets.from_dataframe({"freq_Hz": [1.0]})


def test_custom_schema(tmp_path):
    sch = datasets.Schema(name="rate", conditions={"rate": "frequency"}, measure="dw", x="rate")
    p = _write(tmp_path, "rate_Hz,dw_mean,dw_sem\n1,-0.1,0.05\n50,0.2,0.05\n")
    ds = datasets.from_csv(p, schema=sch)
    assert ds.attrs["conditions"] == "rate" and ds.attrs["x"] == "rate"
