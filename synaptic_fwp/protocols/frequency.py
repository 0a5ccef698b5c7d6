r"""Frequency stimulation: ``n_pulses`` presynaptic pulses at each of several frequencies.

The classic LTD/LTP induction protocol (Dudek & Bear 1992: 900 pulses at 1-50 Hz; Shouval, Bear
& Cooper 2002, Fig. 3): low-frequency stimulation depresses, high-frequency stimulation
potentiates, a BCM-type dependence of the change on the presynaptic rate with a crossover
frequency (the sliding threshold ``theta``). Every (parameter set, frequency) is an independent
synapse and all run in one batched, event-driven call (:mod:`.events`), so 900 pulses at 1 Hz
(15 min of biological time) cost 900 event steps.

``post`` says what the postsynaptic neuron does:

- ``"none"``: no postsynaptic spikes (calcium rules: NMDA / presynaptic calcium only);
- ``"follow"``: one postsynaptic spike ``post_dt`` after every pulse (the postsynaptic rate
  equals the stimulation rate, e.g. for STDP rules; all-to-all triplet STDP then gives the BCM
  curve of Pfister & Gerstner 2006's rate form, :func:`~synaptic_fwp.plasticity.stdp.
  triplet_bcm_rate`).

Readout as :func:`~synaptic_fwp.protocols.pairing.pairing` (relative change from ``w0``; for
Graupner-Brunel the published transition readout). The result also reports the crossover
frequency ``theta_freq`` (linear interpolation of the first sign change from LTD to LTP, NaN if
there is none).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import xarray as xr

from .._validation import check_choice
from ..plasticity.base import SpikingRule
from .events import merge_events
from .pairing import _as_1d, _check_count, check_common, finish_dataset, simulate_protocols

__all__ = ["frequency_stimulation"]


def _crossover(f: np.ndarray, dw: np.ndarray) -> np.ndarray:
    """First LTD -> LTP sign change along the last axis, linearly interpolated (Hz)."""
    out = np.full(dw.shape[:-1], np.nan)
    for idx in np.ndindex(*dw.shape[:-1]):
        y = dw[idx]
        for i in range(len(f) - 1):
            if y[i] < 0 <= y[i + 1]:
                out[idx] = f[i] + (f[i + 1] - f[i]) * (-y[i]) / (y[i + 1] - y[i])
                break
    return out


def frequency_stimulation(
    rule: SpikingRule,
    freq: float | Sequence[float] = (1.0, 3.0, 5.0, 10.0, 20.0, 50.0),
    n_pulses: int = 900,
    *,
    post: str = "none",
    post_dt: float = 0.01,
    w0: float = 1.0,
    n_trials: int = 1,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device = "cpu",
) -> xr.Dataset:
    """``n_pulses`` pulses at each frequency (Hz) for every parameter set in one batched call.

    Returns a Dataset over ``(param?, freq)`` with ``dw`` (relative change), ``w_final`` (or the
    Graupner-Brunel readout variables) and ``theta_freq`` (LTD -> LTP crossover, Hz).
    """
    check_common(rule, n_trials, dtype, w0)
    freqs = _as_1d("freq", freq, positive=True)
    _check_count("n_pulses", n_pulses)
    check_choice("post", post, ["none", "follow"])
    if isinstance(post_dt, bool) or not isinstance(post_dt, (int, float)) or \
            not np.isfinite(post_dt):
        raise ValueError(f"post_dt must be a finite number (s), got {post_dt!r}")
    if post == "follow" and np.any(np.abs(post_dt) >= 1.0 / freqs):
        raise ValueError(
            f"post_dt={post_dt} s must be shorter than the pulse interval 1/freq "
            f"(smallest {1.0 / freqs.max()} s)"
        )
    pre_d = float(rule.pre_delay)
    post_d = float(getattr(rule, "post_delay", 0.0))
    pre, posts = [], []
    for f in freqs:
        t = np.arange(int(n_pulses)) / f
        tq = t + post_dt if post == "follow" else np.zeros(0)
        t0 = min([t[0] + pre_d] + ([tq[0] + post_d] if tq.size else []))
        pre.append(t - t0)
        posts.append(tq - t0)
    ev = merge_events(pre, posts, pre_d, post_d)
    data, is_gb = simulate_protocols(rule, ev, ("freq",), (freqs.size,), w0=w0,
                                     n_trials=n_trials, seed=seed, dtype=dtype, device=device)
    dw = data["dw"][1]
    theta = _crossover(freqs, dw)
    data["theta_freq"] = (("param",), theta,
                          {"units": "Hz", "long_name": "LTD -> LTP crossover frequency"})
    coords = {"freq": ("freq", freqs, {"units": "Hz", "long_name": "stimulation frequency"})}
    return finish_dataset(rule, data, coords, is_gb, n_trials, {
        "protocol": "frequency_stimulation", "n_pulses": int(n_pulses), "post": post,
        "post_dt": float(post_dt), "w0": float(w0), "n_trials": int(n_trials),
        "seed": int(seed)})
