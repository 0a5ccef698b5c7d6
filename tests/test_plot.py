"""Every figure type renders headless to PDF + PNG at the journal size, with embedded TrueType
fonts, from a Dataset; bad names give clear errors."""

from __future__ import annotations

import re
import zlib

import numpy as np
import pytest
import xarray as xr

from synaptic_fwp import datasets, plot


def _attrs(units: str, long_name: str) -> dict[str, str]:
    return {"units": units, "long_name": long_name}


@pytest.fixture
def stdp() -> xr.Dataset:
    dt = np.linspace(-0.1, 0.1, 41)
    dw = np.stack(
        [0.5 * np.sign(dt) * np.exp(-np.abs(dt) / 0.02), 0.3 * np.exp(-np.abs(dt) / 0.03)]
    )
    return xr.Dataset(
        {"dw": (("rule", "dt_pair"), dw, _attrs("1", "relative weight change"))},
        coords={
            "dt_pair": ("dt_pair", dt, _attrs("s", "t_post - t_pre")),
            "rule": ["pair", "triplet"],
        },
    )


@pytest.fixture
def freq() -> xr.Dataset:
    f = np.array([0.1, 10, 20, 40, 50.0])
    dt = np.array([-0.01, 0.01])
    dw = np.stack([np.linspace(-0.3, 0.7, 5), np.linspace(0.0, 0.6, 5)], axis=1)
    return xr.Dataset(
        {
            "dw": (("freq", "dt_pair"), dw, _attrs("1", "relative weight change")),
        },
        coords={
            "freq": ("freq", f, _attrs("Hz", "pairing frequency")),
            "dt_pair": ("dt_pair", dt, _attrs("s", "t_post - t_pre")),
        },
    )


@pytest.fixture
def weights() -> xr.Dataset:
    rng = np.random.default_rng(0)
    W = np.cumsum(rng.normal(size=(30, 5, 8)), axis=0) * 0.01
    return xr.Dataset(
        {"W": (("time", "post", "pre"), W, _attrs("1", "weight"))},
        coords={"time": ("time", np.arange(30) * 0.1, _attrs("s", "time"))},
    )


def _pdf_checks(path, width_mm: float) -> None:
    data = path.read_bytes()
    assert data.startswith(b"%PDF")
    m = re.search(rb"/MediaBox \[\s*0 0 ([\d.]+) ([\d.]+)\s*\]", data)
    assert m, "no MediaBox"
    assert float(m.group(1)) == pytest.approx(width_mm / 25.4 * 72, abs=0.5)
    # TrueType (Type 42) embedded: a FontFile2 stream and no Type 3 fonts
    assert b"/FontFile2" in data
    assert b"/Type3" not in data


@pytest.mark.parametrize(
    "kind, fixture, kwargs",
    [
        ("stdp_window", "stdp", {"hue": "rule"}),
        ("frequency_curve", "freq", {"data": "sjostrom"}),
        ("stdp_window", "stdp", {"data": "sjostrom", "data_where": {"freq": 10.0}}),
        ("weight_matrix", "weights", {}),
        ("weight_trajectories", "weights", {}),
    ],
)
def test_figures_render(kind, fixture, kwargs, request, tmp_path):
    ds = request.getfixturevalue(fixture)
    sjostrom = datasets.load("sjostrom2001_frequency")
    kwargs = {k: (sjostrom if v == "sjostrom" else v) for k, v in kwargs.items()}
    fig = plot.FIGURES[kind](ds, **kwargs)
    out = plot.save(fig, tmp_path / kind)
    assert [p.suffix for p in out] == [".pdf", ".png"]
    _pdf_checks(out[0], 85.0)
    assert out[1].stat().st_size > 2000


def test_place_field_kernel_capacity_learning_comparison(tmp_path):
    x = np.linspace(0, 187, 50)
    ramp = np.stack([np.exp(-((x - 90) ** 2) / 800) * k for k in (1, 2, 3)])
    ds = xr.Dataset(
        {"ramp": (("lap", "position"), ramp, _attrs("mV", "ramp"))},
        coords={"position": ("position", x, _attrs("cm", "position")), "lap": [1, 2, 3]},
        attrs={"plateau_position": 100.0},
    )
    fig = plot.place_field(ds, hue="lap")
    assert any(line.get_label() == "plateau" for line in fig.axes[0].lines)
    t = np.linspace(-4, 3, 40)
    kds = xr.Dataset(
        {"kernel": ("time_from_plateau", np.exp(-np.abs(t)), _attrs("mV", "dVm"))},
        coords={"time_from_plateau": ("time_from_plateau", t, _attrs("s", "t"))},
    )
    load = np.array([0.1, 0.5, 1.0])
    cds = xr.Dataset(
        {
            "recall_error": (
                ("rule", "load"),
                [[0.1, 0.4, 0.8], [0.0, 0.0, 0.3]],
                _attrs("1", "err"),
            ),
            "theory": ("load", np.sqrt(load), _attrs("1", "theory")),
        },
        coords={"load": ("load", load, _attrs("1", "P/N")), "rule": ["hebbian", "delta"]},
    )
    lds = xr.Dataset(
        {"loss": (("rule", "step"), np.random.default_rng(1).random((2, 9)))},
        coords={"step": np.arange(9), "rule": ["a", "b"]},
    )
    rds = xr.Dataset(
        {"aic": (("rule", "dataset"), [[10.0, 3.0], [12.0, 1.0]], _attrs("1", "AIC"))},
        coords={"rule": ["pair", "triplet"], "dataset": ["sjostrom", "wang"]},
    )
    # a double-column multi-panel figure, panels drawn into given axes
    fig, axes = plot.new_figure("double", 60, ncols=5)
    plot.place_field(ds, ax=axes[0, 0])
    plot.plasticity_kernel(kds, ax=axes[0, 1])
    plot.capacity_curve(cds, theory="theory", ax=axes[0, 2])
    plot.learning_curve(lds, ax=axes[0, 3])
    plot.rule_comparison(rds, ax=axes[0, 4])
    plot.panel_letters(axes)
    (pdf,) = plot.save(fig, tmp_path / "panels.pdf")
    _pdf_checks(pdf, 180.0)
    # panel letters a..e drawn in bold
    texts = [t for a in axes.ravel() for t in a.texts if t.get_fontweight() == "bold"]
    assert [t.get_text() for t in texts] == list("abcde")
    # rule comparison is relative to the best rule per dataset
    bars = [p.get_width() for p in axes[0, 4].patches]
    assert sorted(bars) == [0.0, 0.0, 2.0, 2.0]
    labels = sorted(t.get_text() for t in axes[0, 4].texts if t.get_fontweight() != "bold")
    assert labels == ["0 (best)", "0 (best)", "2", "2"]


def test_fonts_and_palette():
    fig = plot.stdp_window(
        xr.Dataset({"dw": ("dt_pair", [0.0, 1.0])}, coords={"dt_pair": [0.0, 1.0]})
    )
    ax = fig.axes[0]
    assert 7.0 <= ax.xaxis.label.get_fontsize() <= 8.0
    assert ax.lines[0].get_color().lower() == plot.OKABE_ITO[0].lower()
    w, h = fig.get_size_inches()
    assert w * 25.4 == pytest.approx(85.0)


def test_auto_and_errors(stdp, freq, weights):
    assert plot.auto(freq).axes[0].get_xlabel().startswith("pairing frequency")
    assert "ms" in plot.auto(stdp.sel(rule="pair")).axes[0].get_xlabel()
    assert plot.auto(weights).axes[0].get_xlabel().startswith("time")
    with pytest.raises(ValueError, match=r"y='nope' is not in the Dataset.*dw"):
        plot.stdp_window(stdp, y="nope")
    with pytest.raises(TypeError, match="ds must be an xarray.Dataset"):
        plot.weight_matrix(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="width must be one of"):
        plot.new_figure("triple")
    with pytest.raises(ValueError, match="format must be one of"):
        plot.save(plot.auto(weights), "/tmp/x.jpg")
    with pytest.raises(ValueError, match="no 'time' dim"):
        plot.weight_trajectories(weights.isel(time=0))
    with pytest.raises(ValueError, match="cannot tell which figure"):
        plot.auto(xr.Dataset({"z": ("a", [1.0])}))


def test_pdf_text_is_not_outlined(tmp_path, stdp):
    """Type 42 keeps text as text: the axis label glyphs are a font, not paths."""
    (pdf,) = plot.save(plot.stdp_window(stdp, hue="rule"), tmp_path / "w.pdf")
    data = pdf.read_bytes()
    assert b"/Subtype /TrueType" in data or b"/Subtype /Type0" in data
    streams = re.findall(rb"stream\r?\n(.*?)endstream", data, re.S)
    text = b"".join(zlib.decompress(s) for s in streams if s[:1] == b"x")
    assert b"Tj" in text or b"TJ" in text


def test_membrane_traces_of_an_engine_run(tmp_path):
    """``auto`` draws an engine run's V (and AdEx's w) as membrane traces, one panel per
    instance, each recorded spike a line up to the spike peak; a double-column PDF with
    TrueType fonts; missing variables and short titles are named errors."""
    import torch

    from synaptic_fwp.engine import Network
    from synaptic_fwp.neurons import AdExPopulation

    net = Network(dt=1e-4, batch=3, dtype=torch.float64)
    net.add(AdExPopulation.naud2008(["tonic", "adapting", "regular_bursting"], name="cell"))
    ds = net.run(0.1, record=["cell.V", "cell.w", "cell.spikes"], progress=False)
    fig = plot.auto(ds, titles=["tonic", "adapting", "bursting"])
    v_axes = [ax for ax in fig.axes if ax.get_visible() and ax.get_ylabel() == "V (mV)"]
    assert len(v_axes) == 1  # the first column carries the labels
    titled = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in titled] == ["tonic", "adapting", "bursting"]
    for j, ax in enumerate(titled):  # one vertical line per recorded spike
        (lines,) = ax.collections
        assert len(lines.get_segments()) == int(ds["cell_spikes"][j].sum()) > 0
    assert any(ax.get_ylabel() == "w (pA)" for ax in fig.axes)
    paths = plot.save(fig, tmp_path / "traces")
    _pdf_checks(next(p for p in paths if p.suffix == ".pdf"), 180.0)
    # an experiment file's run: instances along its sweep dim, labelled by its values
    swept = ds.rename({"batch": "drive"}).assign_coords(drive=[0.1, 0.2, 0.3])
    fig = plot.auto(swept)
    assert [ax.get_title() for ax in fig.axes if ax.get_title()] == [
        "drive 0.1", "drive 0.2", "drive 0.3"]
    with pytest.raises(ValueError, match="instance='replica' is not a dim"):
        plot.membrane_traces(ds, instance="replica")
    with pytest.raises(ValueError, match="titles has 1 names for 3 panels"):
        plot.membrane_traces(ds, titles=["x"])
    with pytest.raises(ValueError, match="no '<population>_V' variable"):
        plot.membrane_traces(ds[["cell_spikes"]])


def test_firing_rates_of_a_swept_run():
    """Spike counts per recording interval become rates (Hz) over each interval's own length
    (from the run's t_start), averaged over neurons and replicas: one line per sweep value,
    labelled with its value and units; missing spikes and a wrong hue are named errors."""
    counts = np.array([  # (rho0, replica, time, post)
        [[[1, 3], [2, 2], [4, 0]], [[3, 1], [2, 2], [0, 4]]],
        [[[5, 5], [6, 6], [9, 9]], [[5, 5], [6, 6], [11, 11]]],
    ])
    ds = xr.Dataset(
        {"cell_spikes": (("rho0", "replica", "time", "post"), counts,
                         {"units": "1", "long_name": "cell: spike count"})},
        coords={"rho0": ("rho0", [5.0, 20.0], {"units": "Hz"}), "replica": [0, 1],
                "time": ("time", [0.5, 1.0, 2.0], {"units": "s", "long_name": "time"}),
                "post": [0, 1]},
        attrs={"t_start": 0.0},
    )
    fig = plot.firing_rates(ds)
    ax = fig.axes[0]
    lines = ax.get_lines()
    assert [ln.get_label() for ln in lines] == ["rho0 5 Hz", "rho0 20 Hz"]
    intervals = np.array([0.5, 0.5, 1.0])
    for ln, c in zip(lines, counts, strict=True):
        np.testing.assert_allclose(ln.get_ydata(), c.mean(axis=(0, 2)) / intervals)
    assert ax.get_ylabel() == "firing rate (Hz)" and ax.get_xlabel() == "time (s)"
    assert "firing_rates" in plot.FIGURES
    by_replica = plot.firing_rates(ds, hue="replica").axes[0].get_lines()
    assert [ln.get_label() for ln in by_replica] == ["replica 0", "replica 1"]
    with pytest.raises(ValueError, match="hue='post' is not a dim"):
        plot.firing_rates(ds, hue="post")
    with pytest.raises(ValueError, match="no '<population>_spikes' variable"):
        plot.firing_rates(ds.rename({"cell_spikes": "counts"}))


def test_firing_rates_one_line_per_population():
    """A run with E and I populations (neuron dims post and post_I, as the engine writes them):
    one line per population, averaged over neurons and instances; hue needs var=."""
    E = np.array([[[2, 0, 1], [1, 1, 1]], [[0, 0, 3], [3, 3, 3]]])  # (batch, time, post)
    I = np.array([[[4], [0]], [[2], [2]]])  # (batch, time, post_I)
    ds = xr.Dataset(
        {"E_spikes": (("batch", "time", "post"), E), "I_spikes": (("batch", "time", "post_I"), I)},
        coords={"time": ("time", [0.1, 0.2], {"units": "s"})}, attrs={"t_start": 0.0},
    )
    lines = plot.firing_rates(ds).axes[0].get_lines()
    assert [ln.get_label() for ln in lines] == ["E", "I"]
    auto = plot.auto(ds).axes[0]  # spike counts only: firing rates
    assert auto.get_ylabel() == "firing rate (Hz)" and len(auto.get_lines()) == 2
    np.testing.assert_allclose(lines[0].get_ydata(), E.mean(axis=(0, 2)) / 0.1)
    np.testing.assert_allclose(lines[1].get_ydata(), I.mean(axis=(0, 2)) / 0.1)
    by_batch = plot.firing_rates(ds, var="I_spikes", hue="batch").axes[0].get_lines()
    np.testing.assert_allclose(by_batch[0].get_ydata(), [40.0, 0.0])
    with pytest.raises(ValueError, match="hue='batch' applies to one population; pass var="):
        plot.firing_rates(ds, hue="batch")
