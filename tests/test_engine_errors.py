"""Bad input raises a clear error naming the argument, before any simulation work."""

from __future__ import annotations

import pytest
import torch

from synaptic_fwp.engine import Network
from synaptic_fwp.inputs import (
    PlaceCellInput,
    PlateauInput,
    PoissonInput,
    RateInput,
    SpikeTimesInput,
)
from synaptic_fwp.neurons import LIFPopulation, RatePopulation
from synaptic_fwp.plasticity import PairSTDP
from synaptic_fwp.synapses import connect


def _net(batch=2, dt=1e-4):
    return Network(dt=dt, batch=batch, dtype=torch.float64)


def _lif_net(batch=2):
    net = _net(batch)
    inp = net.add(PoissonInput(3, rate=10.0, name="inp"))
    lif = net.add(LIFPopulation(2, name="lif"))
    return net, inp, lif


def _rate_net():
    net = _net()
    src = net.add(RateInput(3, rate=1.0, name="src"))
    pop = net.add(RatePopulation(2, name="pop"))
    return net, src, pop


CASES = [
    # (id, callable, exception, text that must appear: the argument's name)
    ("dt_negative", lambda: Network(dt=-1e-4), ValueError, "dt"),
    ("dt_type", lambda: Network(dt="0.1"), TypeError, "dt"),
    ("batch_zero", lambda: Network(dt=1e-4, batch=0), ValueError, "batch"),
    ("seed_list_length", lambda: Network(dt=1e-4, batch=3, seed=[1, 2]), ValueError, "seed"),
    ("dtype", lambda: Network(dt=1e-4, dtype=torch.int32), ValueError, "dtype"),
    ("tau_m_negative", lambda: LIFPopulation(1, C=-1e-12), ValueError, "C"),
    ("tau_ampa_negative", lambda: LIFPopulation(1, tau_ampa=-5e-3), ValueError, "tau_ampa"),
    ("t_ref_negative", lambda: LIFPopulation(1, t_ref=-1e-3), ValueError, "t_ref"),
    ("reset_above_threshold", lambda: LIFPopulation(1, V_reset=-40e-3), ValueError, "V_reset"),
    ("n_zero", lambda: LIFPopulation(0), ValueError, "n"),
    ("unknown_lif_parameter", lambda: LIFPopulation(1, tau_mem=1e-2), TypeError, "tau_mem"),
    ("dt_too_large_for_tau_ampa",
     lambda: _net(dt=5e-3).add(LIFPopulation(1, tau_ampa=5e-3)), ValueError, "tau_ampa"),
    ("dt_too_large_for_rate_tau",
     lambda: _net(dt=1e-2).add(RatePopulation(1, tau=1e-2)), ValueError, "tau"),
    ("rate_f_unknown", lambda: RatePopulation(1, f="relu6"), ValueError, "f"),
    ("rate_tau_negative", lambda: RatePopulation(1, tau=-0.01), ValueError, "tau"),
    ("per_instance_shape",
     lambda: _net(batch=3).add(LIFPopulation(1, tau_ampa=torch.tensor([1e-3, 2e-3]))),
     ValueError, "tau_ampa"),
    ("poisson_negative_rate", lambda: PoissonInput(3, rate=-1.0), ValueError, "rate"),
    ("poisson_negative_rate_tensor",
     lambda: PoissonInput(3, rate=torch.tensor([1.0, -2.0, 3.0])), ValueError, "rate"),
    ("poisson_callable_without_max_rate", lambda: PoissonInput(3, rate=lambda t: t),
     ValueError, "max_rate"),
    ("poisson_rate_shape",
     lambda: _net(batch=2).add(PoissonInput(3, rate=torch.ones(2, 4))), ValueError, "rate"),
    ("poisson_rate_too_high", lambda: _net(dt=1e-3).add(PoissonInput(3, rate=1e5)),
     ValueError, "rate"),
    ("rate_input_negative", lambda: RateInput(2, rate=-3.0), ValueError, "rate"),
    ("spike_times_length_mismatch", lambda: SpikeTimesInput(2, times=[0.1, 0.2], indices=[0]),
     ValueError, "indices"),
    ("spike_times_index_range", lambda: SpikeTimesInput(2, times=[0.1], indices=[5]),
     ValueError, "indices"),
    ("spike_times_negative", lambda: SpikeTimesInput(2, times=[-0.1], indices=[0]),
     ValueError, "times"),
    ("place_width_negative", lambda: PlaceCellInput(4, width=-0.1), ValueError, "width"),
    ("plateau_needs_track", lambda: PlateauInput(1, positions=[0.5]), ValueError, "track"),
    ("W0_shape", lambda: connect(*_lif_net()[1:], torch.zeros(3, 2)), ValueError, "W0"),
    ("W0_nan", lambda: connect(*_lif_net()[1:], torch.full((2, 3), float("nan"))),
     ValueError, "W0"),
    ("unknown_connect_argument", lambda: connect(*_lif_net()[1:], 1e-9, tau_plus=0.02),
     TypeError, "tau_plus"),
    ("unknown_rule_name", lambda: connect(*_rate_net()[1:], 0.1, "hebian", eta=1.0),
     ValueError, "hebian"),
    ("rate_rule_needs_eta", lambda: connect(*_rate_net()[1:], 0.1, "delta"), ValueError, "eta"),
    ("scalar_decay_needs_tau_decay",
     lambda: connect(*_rate_net()[1:], 0.1, "mamba2", eta=1.0), ValueError, "tau_decay"),
    ("spike_source_rate_rule_needs_tau_pre",
     lambda: connect(*_lif_net()[1:], 1e-9, "hebbian", eta=1.0, tau_post=0.02),
     ValueError, "tau_pre"),
    ("negative_tau_pre",
     lambda: connect(*_lif_net()[1:], 1e-9, "hebbian", eta=1.0, tau_pre=-0.02, tau_post=0.02),
     ValueError, "tau_pre"),
    ("spiking_rule_on_rate_population",
     lambda: connect(*_rate_net()[1:], 0.1, PairSTDP()), ValueError, "spiking"),
    ("bounds_belong_to_spiking_rule",
     lambda: connect(*_lif_net()[1:], 1e-9, PairSTDP(), bounds="hard", w_min=0, w_max=1),
     ValueError, "bounds"),
    ("bounds_unknown", lambda: connect(*_rate_net()[1:], 0.1, bounds="clip"), ValueError,
     "bounds"),
    ("negative_delay", lambda: connect(*_rate_net()[1:], 0.1, delay=-1e-3), ValueError, "delay"),
    ("dale_sign", lambda: connect(*_rate_net()[1:], 0.1, sign=torch.tensor([1.0, 0.5, -1.0])),
     ValueError, "sign"),
    ("calcium_unknown", lambda: connect(*_rate_net()[1:], 0.1, calcium="cubic"), ValueError,
     "calcium"),
    ("rate_into_lif", lambda: connect(RateInput(3, name="r"), LIFPopulation(1), 1e-9),
     ValueError, "pre"),
    ("rule_type", lambda: connect(*_rate_net()[1:], 0.1, rule=3.0), TypeError, "rule"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_names_the_argument(case):
    _, fn, exc, text = case
    with pytest.raises(exc) as info:
        fn()
    assert text in str(info.value), str(info.value)


def _run_case(kw):
    net, inp, lif = _lif_net()
    net.connect(inp, lif, 1e-9, PairSTDP.song2000(w_max=2e-9), name="S")
    net.run(**{"duration": 0.001, "progress": False, **kw})


RUN_CASES = [
    ("duration_negative", {"duration": -1.0}, ValueError, "duration"),
    ("duration_not_whole_steps", {"duration": 1.5e-4 + 1e-6}, ValueError, "duration"),
    ("every_not_multiple", {"every": 1.5e-4}, ValueError, "every"),
    ("every_longer_than_duration", {"every": 0.01}, ValueError, "every"),
    ("record_unknown_object", {"record": ["nope.V"]}, ValueError, "record"),
    ("record_unknown_variable", {"record": ["lif.Vm"]}, ValueError, "record"),
    ("record_format", {"record": ["lifV"]}, ValueError, "record"),
    ("chunk", {"chunk": 0}, ValueError, "chunk"),
    ("resume_without_out", {"resume": True}, ValueError, "resume"),
    ("unknown_run_argument", {"progres": False}, TypeError, "progres"),
]


@pytest.mark.parametrize("case", RUN_CASES, ids=[c[0] for c in RUN_CASES])
def test_bad_run_arguments_name_the_argument(case):
    _, kw, exc, text = case
    with pytest.raises(exc) as info:
        _run_case(kw)
    assert text in str(info.value), str(info.value)


def test_projection_objects_must_be_in_the_network():
    net = _net()
    inp = PoissonInput(3, name="inp")
    lif = net.add(LIFPopulation(1, name="lif"))
    with pytest.raises(ValueError, match="pre"):
        net.connect(inp, lif, 1e-9)


def test_duplicate_names_are_refused():
    net = _net()
    net.add(LIFPopulation(1, name="a"))
    with pytest.raises(ValueError, match="name"):
        net.add(RatePopulation(1, name="a"))


def test_spike_times_collision_in_one_step():
    net = _net(dt=1e-3)
    with pytest.raises(ValueError, match="times"):
        net.add(SpikeTimesInput(1, times=[0.0101, 0.0102], indices=[0, 0], name="s"))
