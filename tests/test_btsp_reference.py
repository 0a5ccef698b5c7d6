"""The BTSP induction protocol against an independent re-implementation of the simulation loop of
Milstein et al. 2021 (eLife 10:e73046) as their published model fits run it (the
``calculate_model_ramp`` of ``optimize_biBTSP_synthetic_WD*.py``; written from the description,
not copied): one continuous time axis with a pre lap, the induction laps and a post lap, 10 ms
steps, truncated unit-sum exponential filters applied from rest, eligibility trace and
instructive signal each divided by its maximum over the run, and lap ``k`` integrating
``q(ET IS)`` from its plateau onset to the next onset (the last lap to the end of the run).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.integrate import trapezoid
from scipy.signal import fftconvolve

from synaptic_fwp.plasticity.btsp import MilsteinBTSP
from synaptic_fwp.protocols.btsp import TrackConfig, btsp_induction, place_rates


def _q(x, th, half_width):
    def s(z):
        return 1.0 / (1.0 + np.exp(-(2.0 / half_width) * (z - th)))

    return (s(x) - s(0.0)) / (s(1.0) - s(0.0))


def _authors_loop(rule: MilsteinBTSP, cfg: TrackConfig, plateau_x: float, n_laps: int, h: float):
    """Weights (baseline 1) after each induction lap, shape ``(n_laps, n_inputs)``."""
    n_lap = int(round(cfg.lap_duration / h))
    n_total = (n_laps + 2) * n_lap  # pre lap, induction laps, post lap
    t = np.arange(n_total) * h
    x = (cfg.speed * t) % cfg.track_length
    rates = place_rates(torch.as_tensor(x), cfg).numpy() / cfg.peak_rate
    onsets = [(k + 1) * n_lap + int(round(plateau_x / cfg.speed / h)) for k in range(n_laps)]
    gate = np.zeros(n_total)
    for on in onsets:
        gate[on : on + int(round(cfg.plateau_duration / h))] = 1.0
    t_max = 6.0 * max(rule.tau_et, rule.tau_is)

    def kernel(tau):
        f = np.exp(-np.arange(0.0, t_max, h) / tau)
        f = f[f >= 1e-3]
        return f / f.sum()

    et = fftconvolve(rates, kernel(rule.tau_et)[None, :])[:, :n_total]
    is_ = np.convolve(gate, kernel(rule.tau_is))[:n_total]
    et, is_ = et / et.max(), is_ / is_.max()
    wmax = 1.0 + rule.peak_delta_weight
    w = np.full(cfg.n_inputs, 1.0 / wmax)
    out = []
    for k, on in enumerate(onsets):
        stop = onsets[k + 1] if k + 1 < n_laps else n_total
        xk = et[:, on:stop] * is_[on:stop]
        pot = trapezoid(_q(xk, rule.pot_th, rule.pot_half_width), dx=h, axis=1)
        dep = trapezoid(_q(xk, rule.dep_th, rule.dep_half_width), dx=h, axis=1)
        w = np.clip(w + rule.k_pot * pot * (1 - w) - rule.k_dep * dep * w, 0.0, 1.0)
        out.append(w * wmax)
    return np.array(out)


@pytest.mark.parametrize(("column", "tol"), [("population_fit_x0", 0.02), ("cell_median", 0.05)])
def test_induction_matches_the_authors_simulation_loop(column, tol):
    """Lap by lap, the weights agree to a few % of the largest change (the steep sigmoids of the
    cell median feel the 10 ms steps most)."""
    rule = MilsteinBTSP.from_table(column)
    cfg = TrackConfig()
    ref = _authors_loop(rule, cfg, 1.2, 3, 0.01)
    ds = btsp_induction(rule, plateau_positions=[1.2] * 3, dt=0.01)
    ours = ds.weight.values[0, 1:]
    dw_max = np.abs(ref - 1.0).max()
    assert dw_max > 0.5  # a real field, not a near-zero change
    assert np.abs(ours - ref).max() < tol * dw_max
