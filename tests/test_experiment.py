"""Experiment files: a valid file runs and runs again the same way; malformed files are rejected
before any work with a message naming the line, the key and what is allowed."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
import xarray as xr

from synaptic_fwp import experiment as E
from synaptic_fwp.plasticity import TripletSTDP
from synaptic_fwp.protocols.pairing import pairing

GOOD = """\
[experiment]
name = "t"
seed = 3
output = "out.nc"

[rule]
name = "triplet_stdp"
table = { dataset = "visual_cortex", pairing = "all_to_all", model = "minimal" }

[protocol]
name = "pairing"
dt = ["-10 ms", 0.01]
freq = [1, 20]
n_pairs = 10

[sweep]
A3_plus = [0.005, 0.0065]

[record]
variables = ["dw"]
"""


def test_good_file_runs_reproducibly(tmp_path):
    path = tmp_path / "exp.toml"
    path.write_text(GOOD)
    ex = E.load(path)
    assert ex.config["protocol"]["dt"] == [-0.01, 0.01]
    assert ex.config["rule_resolved"]["tau_y"] == pytest.approx(0.114)
    ds = ex.run(progress=False, out=tmp_path / "out.nc")
    assert set(ds.dims) == {"A3_plus", "freq", "dt_pair"}
    assert list(ds.data_vars) == ["dw"]
    # the sweep equals separate calls of the protocol with the published set changed
    for a3 in (0.005, 0.0065):
        rule = TripletSTDP.from_table("visual_cortex", "all_to_all", "minimal")
        ref = pairing(
            rule.__class__(**{**_fields(rule), "A3_plus": a3}),
            dt=[-0.01, 0.01],
            freq=[1.0, 20.0],
            n_pairs=10,
        )
        np.testing.assert_allclose(ds["dw"].sel(A3_plus=a3).values, ref["dw"].values, rtol=1e-12)
    back = xr.load_dataset(tmp_path / "out.nc")
    assert back.attrs["seed"] == 3
    assert back.attrs["package_version"]
    assert json.loads(back.attrs["experiment_config"])["sweep"] == {"A3_plus": [0.005, 0.0065]}
    again = E.from_dataset(back).run(progress=False, write=False)
    xr.testing.assert_identical(again["dw"], back["dw"])


def _fields(rule):
    import dataclasses

    return {f.name: getattr(rule, f.name) for f in dataclasses.fields(rule)}


def test_units_and_ranges():
    assert E.quantity("16.8 ms") == pytest.approx(0.0168)
    assert E.quantity("2 kHz") == 2000.0
    assert E.quantity(3) == 3.0
    with pytest.raises(ValueError, match="is a frequency, but tau is a time"):
        E.quantity("10 Hz", expect="time", key="tau")
    text = GOOD.replace(
        "A3_plus = [0.005, 0.0065]", "A3_plus = { start = 1e-3, stop = 1e-2, num = 3, log = true }"
    )
    ex = E.loads(text)
    np.testing.assert_allclose(ex.config["sweep"]["A3_plus"], [1e-3, 10**-2.5, 1e-2])


def _line(text: str, needle: str) -> int:
    for i, ln in enumerate(text.splitlines(), start=1):
        if needle in ln:
            return i
    raise AssertionError(needle)


# (replace old -> new in GOOD, expected message fragments, line-locating needle or None)
BAD = [
    ("[record]", "[recrod]", ["unknown table 'recrod'", "allowed: experiment"], "[recrod]"),
    (
        'name = "triplet_stdp"',
        'name = "tripplet"',
        ["unknown rule 'tripplet'", "pair_stdp"],
        'name = "tripplet"',
    ),
    (
        "n_pairs = 10",
        "n_pairs = 10\nrate = 3",
        ["unknown protocol argument 'rate'", "n_pairs"],
        "rate = 3",
    ),
    ("n_pairs = 10", "n_pairs = 0", ["[protocol.n_pairs]", "integer >= 1"], "n_pairs = 0"),
    ("n_pairs = 10", "n_pairs = 2.5", ["[protocol.n_pairs]", "integer >= 1"], "n_pairs = 2.5"),
    ("freq = [1, 20]", "freq = [1, -20]", ["[protocol.freq]", "> 0 Hz"], "freq = [1, -20]"),
    (
        "freq = [1, 20]",
        'freq = ["1 ms"]',
        ["[protocol.freq]", "is a time, but freq is a frequency"],
        'freq = ["1 ms"]',
    ),
    ('dt = ["-10 ms", 0.01]', "dt = []", ["[protocol.dt]", "empty"], "dt = []"),
    (
        'dt = ["-10 ms", 0.01]',
        'dt = ["ten ms"]',
        ["[protocol.dt]", "not a number with a unit"],
        'dt = ["ten ms"]',
    ),
    (
        'name = "pairing"',
        'name = "pearing"',
        ["unknown protocol 'pearing'", "pairing"],
        'name = "pearing"',
    ),
    (
        "A3_plus = [0.005, 0.0065]",
        "A3_pluss = [0.005]",
        ["[sweep.A3_pluss]", "not a numeric parameter", "A3_plus"],
        "A3_pluss",
    ),
    (
        "A3_plus = [0.005, 0.0065]",
        "A3_plus = []",
        ["[sweep.A3_plus]", "non-empty list"],
        "A3_plus = []",
    ),
    (
        "A3_plus = [0.005, 0.0065]",
        "A3_plus = { start = 0.1, stop = 1 }",
        ["[sweep.A3_plus]", "missing 'num'"],
        "A3_plus = {",
    ),
    (
        'model = "minimal" }',
        'model = "minimal" }\nA3_plus = 0.006',
        ["[sweep.A3_plus]", "also set in [rule]"],
        "A3_plus = [0.005",
    ),
    (
        'model = "minimal" }',
        'model = "minimal" }\ntau_plus = "-5 ms"',
        ["[rule.tau_plus]", "tau_plus must lie in (0.0, inf]"],
        'tau_plus = "-5 ms"',
    ),
    (
        'model = "minimal" }',
        'model = "minimal" }\ntau_plus = "5 Hz"',
        ["[rule.tau_plus]", "is a frequency, but tau_plus is a time"],
        'tau_plus = "5 Hz"',
    ),
    (
        'model = "minimal" }',
        'model = "minimal" }\ntau_pluss = 0.01',
        ["unknown rule key or parameter 'tau_pluss'", "tau_plus"],
        "tau_pluss",
    ),
    (
        'model = "minimal" }',
        'model = "mini" }',
        ["[rule", "(dataset, pairing, model) must be"],
        "table = {",
    ),
    (
        'pairing = "all_to_all", model',
        'pair = "all_to_all", model',
        ["[rule.table.pair]", "unknown table option 'pair'", "dataset, pairing, model"],
        "table = {",
    ),
    ("seed = 3", "seed = -1", ["[experiment.seed]", "integer >= 0"], "seed = -1"),
    ("seed = 3", 'seed = "3"', ["[experiment.seed]", "integer >= 0"], 'seed = "3"'),
    (
        'output = "out.nc"',
        'output = "out.csv"',
        ["[experiment.output]", ".nc (NetCDF) or .zarr"],
        'output = "out.csv"',
    ),
    (
        'variables = ["dw"]',
        'variables = ["weight"]',
        ["[record.variables]", "unknown variables", "dw, w_final"],
        'variables = ["weight"]',
    ),
    ("[rule]\nname", "[rule]\nnme", ["[rule]", "missing key 'name'", "triplet_stdp"], "[rule]"),
    ("[protocol]", "[protocol_]", ["unknown table 'protocol_'"], "[protocol_]"),
    ("n_pairs = 10", "n_pairs = 10\nn_pairs = 11", ["not valid TOML", "line"], None),
    ("[sweep]", "[sweep\n", ["not valid TOML"], None),
]


@pytest.mark.parametrize("old, new, frags, needle", BAD, ids=[b[1][:24] for b in BAD])
def test_malformed_files_are_rejected(old, new, frags, needle, tmp_path):
    assert old in GOOD
    text = GOOD.replace(old, new, 1)
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(E.ExperimentError) as ei:
        E.load(path)
    msg = str(ei.value)
    assert msg.startswith(str(path))
    for f in frags:
        assert f in msg, (f, msg)
    if needle is not None:
        assert f"line {_line(text, needle)}:" in msg, msg


def test_missing_sections_and_fit_table(tmp_path):
    with pytest.raises(E.ExperimentError, match=r"missing table \[protocol\]"):
        E.loads(GOOD.split("[protocol]")[0])
    fit = GOOD + '\n[fit]\ndata = "nope"\nfree = { A2_minus = [0, 0.01] }\n'
    with pytest.raises(E.ExperimentError, match=r"line 23: \[fit.data\].*neither a shipped"):
        E.loads(fit)
    fit = GOOD + '\n[fit]\ndata = "sjostrom2001_frequency"\nfree = { A2_minus = [0.02, 0.01] }\n'
    with pytest.raises(E.ExperimentError, match=r"\[fit.free.A2_minus\] needs low < high"):
        E.loads(fit)
    with pytest.raises(FileNotFoundError):
        E.load(tmp_path / "none.toml")
    (tmp_path / "x.yaml").write_text("a: 1")
    with pytest.raises(E.ExperimentError, match="TOML"):
        E.load(tmp_path / "x.yaml")


NET = """\
[experiment]
name = "net"
seed = 1

[network]
dt = "1 ms"
duration = "40 ms"
batch = 2

[inputs.src]
type = "poisson"
n = 12

[populations.out]
type = "lif"
n = 2

[projections.S]
pre = "src"
post = "out"
W0 = { uniform = [0, "1 nS"] }
rule = { name = "pair_stdp", w_max = "2 nS", bounds = "hard" }

[sweep]
"inputs.src.rate" = ["10 Hz", "40 Hz"]
"projections.S.rule.A_plus" = [1e-12, 3e-12]

[record]
variables = ["S.W", "out.spikes"]
every = "10 ms"
"""


def test_network_experiment_runs_reproducibly(tmp_path):
    ex = E.loads(NET, "net.toml")
    assert ex.config["inputs"]["src"] == {"type": "poisson", "n": 12}
    ds = ex.run(progress=False, out=tmp_path / "net.nc")
    assert dict(ds["S_W"].sizes) == {
        "src_rate": 2,
        "S_rule_A_plus": 2,
        "replica": 2,
        "time": 4,
        "post": 2,
        "pre": 12,
    }
    np.testing.assert_allclose(ds["src_rate"].values, [10.0, 40.0])
    assert ds["src_rate"].attrs["units"] == "Hz"
    # weights stay within the rule's hard bounds; more input spikes at 40 Hz than at 10 Hz
    assert float(ds["S_W"].min()) >= 0.0 and float(ds["S_W"].max()) <= 2e-9 + 1e-18
    back = xr.load_dataset(tmp_path / "net.nc")
    again = E.from_dataset(back).run(progress=False, write=False)
    xr.testing.assert_identical(again["S_W"], back["S_W"])


EI_NET = """\
[experiment]
name = "ei"
seed = 1

[network]
dt = "1 ms"
duration = "300 ms"
batch = 2

[inputs.src]
type = "poisson"
n = 12
rate = "200 Hz"

[inputs.inh]
type = "poisson"
n = 6
rate = "40 Hz"

[populations.out]
type = "lif"
n = 2

[projections.S]
pre = "src"
post = "out"
W0 = "1 nS"

[projections.I]
pre = "inh"
post = "out"
W0 = "0.5 nS"
target = "gaba"
rule = { name = "inhibitory_stdp", eta = "0.05 nS", tau = "20 ms" }

[sweep]
"projections.I.rule.rho0" = ["1 Hz", "100 Hz"]

[record]
variables = ["I.W", "out.spikes"]
every = "100 ms"
"""


def test_network_experiment_with_inhibitory_stdp():
    """An E/I file: a GABA projection with Vogels et al.'s rule (``rho0`` in Hz, swept; ``eta``
    in nS); the sweep becomes a dimension; a low target rate ends with much stronger inhibition
    than a high one; a unit of the wrong kind is refused, naming the key."""
    ds = E.loads(EI_NET, "ei.toml").run(progress=False, write=False)
    np.testing.assert_allclose(ds["I_rule_rho0"].values, [1.0, 100.0])
    assert int(ds["out_spikes"].sum()) > 0
    W = ds["I_W"].isel(time=-1).mean(("replica", "post", "pre")).values
    assert W[0] > 2 * W[1] and W[0] > 2 * 0.5e-9  # (the neurons fire ~130 Hz at the start)
    assert ds["I_rule_rho0"].attrs["units"] == "Hz"
    with pytest.raises(ValueError, match="rho0.*is a time, but rho0 is a frequency"):
        E.loads(EI_NET.replace('"100 Hz"]', '"100 ms"]'), "ei.toml")


NET_BAD = [
    ('dt = "1 ms"', 'dt = "1 Hz"', ["[network.dt]", "is a frequency, but dt is a time"]),
    ('duration = "40 ms"', "", ["[network]", "missing key 'duration'"]),
    (
        'type = "poisson"',
        'type = "poison"',
        ["[inputs.src.type]", "unknown type 'poison'", "poisson, spike_times"],
    ),
    ("n = 12", "n = 12\nrte = 3", ["[inputs.src.rte]", "unknown poisson argument", "rate"]),
    ("n = 12", "n = -12", ["[inputs.src", "n must be"]),
    ("n = 12", 'n = 12\nrate = "5 Hz"', ["[sweep.inputs.src.rate]", "also set in [inputs.src]"]),
    (
        "n = 2\n",
        'n = 2\nV_th = "-50 ms"\n',
        ["[populations.out.V_th]", "is a time, but V_th is a voltage"],
    ),
    ('pre = "src"', 'pre = "scr"', ["[projections.S.pre]", "'scr' is not defined", "src, out"]),
    (
        'W0 = { uniform = [0, "1 nS"] }',
        "W0 = { uniform = [1, 0] }",
        ["[projections.S.W0]", "low < high"],
    ),
    ('W0 = { uniform = [0, "1 nS"] }', "", ["[projections.S]", "missing key 'W0'"]),
    (
        'rule = { name = "pair_stdp"',
        'rule = { name = "pear_stdp"',
        ["[projections.S.rule.name]", "unknown rule"],
    ),
    (
        '"inputs.src.rate"',
        '"inputs.sr.rate"',
        ["[sweep.inputs.sr.rate]", "must name a defined object's parameter"],
    ),
    (
        'variables = ["S.W", "out.spikes"]',
        'variables = ["T.W"]',
        ["[record.variables]", "name no defined object"],
    ),
    ("[network]", '[rule]\nname = "pair_stdp"\n[network]', ["[rule]", "takes no [rule]"]),
    (
        "n = 2\n",
        'n = 2\nV_init = { uniform = ["-50 mV", "-60 mV"] }\n',
        ["[populations.out.V_init]", "low < high"],
    ),
    (
        "n = 2\n",
        'n = 2\nV_init = { normal = ["-60 mV", "1 mV"] }\n',
        ["[populations.out.V_init", "unknown random initial value", "uniform"],
    ),
    (
        "n = 2\n",
        'n = 2\nV_init = { uniform = ["-60 ms", "-50 ms"] }\n',
        ["[populations.out.V_init]", "is a time, but V_init is a voltage"],
    ),
    (
        'W0 = { uniform = [0, "1 nS"] }',
        'W0 = { uniform = [0, "1 nS"], p = 1.5 }',
        ["[projections.S.W0.p]", "probability in (0, 1], got 1.5"],
    ),
    (
        'W0 = { uniform = [0, "1 nS"] }',
        "W0 = { p = 0.5 }",
        ["[projections.S.W0]", "give one of { uniform", "optionally p"],
    ),
]


@pytest.mark.parametrize("old, new, frags", NET_BAD, ids=[b[1][:20] or b[0][:20] for b in NET_BAD])
def test_malformed_network_files_are_rejected(old, new, frags):
    assert old in NET
    text = NET.replace(old, new, 1)
    with pytest.raises(E.ExperimentError) as ei:
        E.loads(text, "net.toml")
    msg = str(ei.value)
    m = re.match(r"net\.toml, line (\d+): \[([^\]]+)\]", msg)
    assert m, msg
    # the line named is where the key (or its table) is written
    assert m.group(2).split(".")[-1] in text.splitlines()[int(m.group(1)) - 1], msg
    for f in frags:
        assert f in msg, (f, msg)


REC_NET = """\
[experiment]
name = "rec"
seed = 3

[network]
dt = "0.1 ms"
duration = "50 ms"
batch = 2

[populations.E]
type = "lif"
n = 120
E_L = "-60 mV"
I_ext = "0.25 nA"
V_init = { uniform = ["-60 mV", "-50 mV"] }

[populations.I]
type = "lif"
n = 30
E_L = "-60 mV"
V_init = { uniform = ["-60 mV", "-50 mV"] }

[projections.EE]
pre = "E"
post = "E"
W0 = { constant = "0.5 nS", p = 0.1 }

[projections.EI]
pre = "E"
post = "I"
W0 = { uniform = ["1 nS", "3 nS"], p = 0.5 }

[projections.IE]
pre = "I"
post = "E"
W0 = "2 nS"
target = "gaba"

[projections.EEp]
pre = "E"
post = "E"
W0 = { constant = "0.2 nS", p = 0.1 }
rule = { name = "pair_stdp", w_max = "1 nS", bounds = "hard" }

[record]
variables = ["E.V", "E.spikes", "I.spikes", "EE.W", "EI.W", "EEp.W"]
every = "50 ms"
"""


def test_recurrent_network_file_random_starts_and_connectivity():
    """Populations projecting onto each other; V_init drawn per neuron and instance within its
    bounds; W0 with a connection probability p: about p of the synapses, each instance its
    own draw, the kept weights as specified; on a plastic projection p is a connection mask.
    The I neurons get input only from E, so their spikes show the recurrent projections at
    work; the same file gives the same run."""
    ex = E.loads(REC_NET, "rec.toml")
    net, _, _ = E._build_network(ex.config, E._Ctx(ex.text, ex.source))
    V0 = net.populations["E"].V_init
    assert tuple(V0.shape) == (2, 120)
    assert float(V0.min()) >= -60e-3 and float(V0.max()) <= -50e-3 and float(V0.std()) > 2e-3
    assert not torch.equal(V0[0], V0[1])
    ds = ex.run(progress=False, write=False)
    WEE, WEI = ds["EE_W"].isel(time=-1).values, ds["EI_W"].isel(time=-1).values
    for W, p in ((WEE, 0.1), (WEI, 0.5)):
        frac = (W != 0).mean(axis=(1, 2))
        assert np.all(np.abs(frac - p) < 0.05), frac
        assert not np.array_equal(W[0] != 0, W[1] != 0)
    np.testing.assert_allclose(WEE[WEE != 0], 0.5e-9)
    assert WEI[WEI != 0].min() >= 1e-9 and WEI[WEI != 0].max() <= 3e-9
    assert int(ds["E_spikes"].sum()) > 0 and int(ds["I_spikes"].sum()) > 0
    # plastic with p: a connection mask; absent synapses stay 0 while the present ones learn
    present = net.projections["EEp"].mask.numpy()
    assert np.all(np.abs(present.mean(axis=(1, 2)) - 0.1) < 0.05)
    Wp = ds["EEp_W"].values[:, -1]
    assert np.all(Wp[~present] == 0) and np.abs(Wp[present] - 0.2e-9).max() > 1e-13
    again = E.loads(REC_NET, "rec.toml").run(progress=False, write=False)
    xr.testing.assert_identical(again["I_spikes"], ds["I_spikes"])
