r"""Frequency-stimulation response of the BCM-type rules: LTD at low, LTP at high frequency.

Stimulation at frequency ``f`` drives pre- and postsynaptic firing at the same rate
(``rho_pre = rho_post = f``; the usual reading of Dudek & Bear 1992's frequency protocol in rate
models). Rules:

- triplet STDP, minimal and full, all-to-all, visual-cortex sets (Pfister & Gerstner 2006):
  expected drift for independent Poisson trains (their Eq. 6,
  :func:`synaptic_fwp.plasticity.triplet_bcm_rate`)

  .. math:: \frac{dw}{dt} = f^2\,[A_2^+\tau_+ - A_2^-\tau_- + (A_3^+\tau_+\tau_y
            - A_3^-\tau_-\tau_x) f],

  so LTD below and LTP above the crossover
  :math:`f^* = (A_2^-\tau_- - A_2^+\tau_+)/(A_3^+\tau_+\tau_y - A_3^-\tau_-\tau_x)`; checked by an
  event-driven simulation of the same rule (:mod:`synaptic_fwp.protocols.events`) on
  independent Poisson trains (mean +- SEM over trains).
- BCM (Bienenstock, Cooper & Munro 1982; :class:`synaptic_fwp.rules.bcm.BCMRule`, its own
  ``step``): :math:`\Delta W = \eta\, y (y - \theta)\, x` with ``x = y = f / f_ref`` and the
  threshold at its steady state for a baseline rate ``f_ref`` (:math:`\theta = \langle y^2
  \rangle = 1`), so the crossover is ``f_ref``.
- calcium rules through :func:`synaptic_fwp.protocols.frequency_stimulation` (full run, or
  ``--calcium``): Shouval, Bear & Cooper 2002 (presynaptic pulses, NMDA calcium) and Graupner &
  Brunel 2012 (set DP, each pulse followed by a postsynaptic spike), see
  :func:`calcium_response`.

The crossover frequency of each rule is found by root bracketing (``scipy.optimize.brentq``) on
its response curve.

Run::

    python -m synaptic_fwp.analyses.bcm_frequency [--quick] [--out DIR] [--seed N]

writes ``bcm_frequency.nc`` and ``bcm_frequency.csv`` (crossover table) and
``bcm_frequency.pdf`` / ``.png``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import numpy as np
import torch
import xarray as xr
from scipy.optimize import brentq

NAME = "bcm_frequency"
F_REF = 10.0  # Hz: BCM baseline rate that sets its threshold
FREQ_RANGE = (0.5, 100.0)  # Hz
TRIPLETS = ("minimal", "full")

__all__ = ["run", "figure", "main", "triplet_rule", "bcm_drift", "poisson_dw",
           "calcium_response"]


def triplet_rule(model: str):
    from synaptic_fwp.plasticity import TripletSTDP

    return TripletSTDP.from_table("visual_cortex", "all_to_all", model)


def triplet_drift(model: str, f):
    """Expected dw/dt (1/s) of the triplet rule at ``rho_pre = rho_post = f`` (Hz)."""
    from synaptic_fwp.plasticity import triplet_bcm_rate

    return triplet_bcm_rate(triplet_rule(model), np.asarray(f, float), np.asarray(f, float))


def triplet_crossover_closed_form(model: str) -> float:
    r = triplet_rule(model)
    tau_x = r.tau_x if r.tau_x is not None else 0.0
    return (r.A2_minus * r.tau_minus - r.A2_plus * r.tau_plus) / (
        r.A3_plus * r.tau_plus * r.tau_y - r.A3_minus * r.tau_minus * tau_x)


def bcm_drift(f, eta: float = 1.0):
    """BCM's update per unit time from :class:`~synaptic_fwp.rules.bcm.BCMRule.step` with
    ``x = y = f / F_REF`` and ``theta = 1`` (steady state of the baseline rate ``F_REF``)."""
    from synaptic_fwp.rules.bcm import BCMRule

    rule = BCMRule()
    y = torch.as_tensor(np.asarray(f, float) / F_REF, dtype=torch.float64).reshape(-1, 1)
    W = torch.zeros(y.shape[0], 1, 1, dtype=torch.float64)
    W1 = rule.step(W, y, y, theta=1.0, eta=eta)
    return W1.reshape(np.shape(f)).numpy()


def poisson_dw(model: str, freqs: np.ndarray, n_trains: int, duration: float, seed: int):
    """Event-driven simulation of the triplet rule on ``n_trains`` independent Poisson pre/post
    train pairs at each frequency for ``duration`` s: mean and SEM of the weight change."""
    from synaptic_fwp.protocols.events import merge_events, run_events

    rng = np.random.default_rng(seed)
    pre, post = [], []
    for f in freqs:
        for _ in range(n_trains):
            for lst in (pre, post):
                n = rng.poisson(f * duration)
                lst.append(np.sort(rng.uniform(0.0, duration, n)))
    dt, is_pre, is_post = merge_events(pre, post)
    rule = triplet_rule(model)
    W0 = torch.zeros(dt.shape[0], 1, 1, dtype=torch.float64)
    W, _ = run_events(rule, W0, dt, is_pre, is_post)
    dw = W.reshape(len(freqs), n_trains).numpy()
    return dw.mean(1), dw.std(1, ddof=1) / np.sqrt(n_trains)


def crossover(fn, lo: float, hi: float, n: int = 400) -> float:
    """First frequency in ``[lo, hi]`` where ``fn`` goes from < 0 to > 0 (NaN if none)."""
    grid = np.geomspace(lo, hi, n)
    v = np.asarray(fn(grid), float)
    idx = np.flatnonzero((v[:-1] < 0) & (v[1:] > 0))
    if idx.size == 0:
        return float("nan")
    i = int(idx[0])
    return float(brentq(lambda x: float(fn(np.array([x]))[0]), grid[i], grid[i + 1],
                        xtol=1e-12, rtol=1e-12))


CALCIUM_FREQS = np.array([1.0, 2.0, 3.0, 5.0, 7.0, 10.0, 20.0, 50.0])


def calcium_response(n_pulses: int = 30, n_trials: int = 20, seed: int = 0) -> xr.Dataset:
    """Frequency stimulation of the calcium rules through
    :func:`synaptic_fwp.protocols.frequency_stimulation` (``n_pulses`` pulses per frequency):
    Shouval et al. 2002 (published table, presynaptic pulses only, NMDA calcium; from the rest
    weight 0.25) and Graupner & Brunel 2012 (set DP; each pulse followed by a postsynaptic spike
    10 ms later, ``n_trials`` noisy trials). Returns ``dw`` (calcium_rule, calcium_freq) and the
    protocol's crossover ``theta_freq`` (linear interpolation)."""
    from synaptic_fwp.plasticity import GraupnerBrunel, ShouvalCalcium
    from synaptic_fwp.protocols.frequency import frequency_stimulation

    runs = {
        "shouval": frequency_stimulation(ShouvalCalcium.from_table(), CALCIUM_FREQS,
                                         n_pulses, post="none", w0=0.25),
        "graupner_brunel": frequency_stimulation(GraupnerBrunel.from_table("DP"),
                                                 CALCIUM_FREQS, n_pulses, post="follow",
                                                 post_dt=0.01, n_trials=n_trials, seed=seed),
    }
    names = list(runs)
    return xr.Dataset(
        {
            "calcium_dw": (("calcium_rule", "calcium_freq"),
                           np.stack([runs[r]["dw"].values for r in names]),
                           {"units": "1", "long_name": f"relative weight change after "
                                                      f"{n_pulses} pulses"}),
            "calcium_crossover": ("calcium_rule",
                                  np.array([float(runs[r]["theta_freq"]) for r in names]),
                                  {"units": "Hz", "long_name": "LTD -> LTP crossover "
                                   "(protocol's linear interpolation; NaN: none)"}),
        },
        coords={"calcium_rule": ("calcium_rule", np.array(names), {"long_name": "rule"}),
                "calcium_freq": ("calcium_freq", CALCIUM_FREQS,
                                 {"units": "Hz", "long_name": "stimulation frequency"})},
        attrs={"calcium_n_pulses": int(n_pulses), "calcium_n_trials": int(n_trials)},
    )


def run(quick: bool = False, seed: int = 0, calcium: bool | None = None) -> xr.Dataset:
    """The response curves and crossovers; ``calcium`` (default: not ``quick``) adds the
    calcium rules (minutes on a CPU)."""
    calcium = (not quick) if calcium is None else calcium
    n_grid = 40 if quick else 200
    freq = np.geomspace(*FREQ_RANGE, n_grid)
    sim_freq = np.array([1.0, 5.0, 10.0, 20.0, 40.0]) if quick else \
        np.array([1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0, 40.0, 50.0])
    n_trains, duration = (24, 5.0) if quick else (200, 20.0)
    rules = [f"triplet_{m}" for m in TRIPLETS] + ["bcm"]
    fns = {f"triplet_{m}": (lambda f, m=m: triplet_drift(m, f)) for m in TRIPLETS}
    fns["bcm"] = bcm_drift
    drift = np.stack([fns[r](freq) for r in rules])
    cross = np.array([crossover(fns[r], *FREQ_RANGE) for r in rules])
    cross_cf = np.array([triplet_crossover_closed_form(m) for m in TRIPLETS] + [F_REF])
    sim_mean = np.full((len(TRIPLETS), sim_freq.size), np.nan)
    sim_sem = np.full_like(sim_mean, np.nan)
    for i, m in enumerate(TRIPLETS):
        sim_mean[i], sim_sem[i] = poisson_dw(m, sim_freq, n_trains, duration, seed + i)
    expect = np.stack([triplet_drift(m, sim_freq) * duration for m in TRIPLETS])
    cross_sim = np.full(len(rules), np.nan)
    for i in range(len(TRIPLETS)):
        s = sim_mean[i]
        j = np.flatnonzero((s[:-1] < 0) & (s[1:] > 0))
        if j.size:
            j = int(j[0])  # linear interpolation between the bracketing frequencies
            cross_sim[i] = sim_freq[j] - s[j] * (sim_freq[j + 1] - sim_freq[j]) / (s[j + 1] - s[j])
    ds = xr.Dataset(
        {
            "drift": (("rule", "freq"), drift, {
                "units": "1/s",
                "long_name": "expected weight change per second of stimulation (BCM: eta = 1/s)"}),
            "crossover": ("rule", cross, {"units": "Hz",
                                          "long_name": "LTD -> LTP crossover frequency"}),
            "crossover_closed_form": ("rule", cross_cf, {
                "units": "Hz", "long_name": "crossover from the closed form"}),
            "crossover_sim": ("rule", cross_sim, {
                "units": "Hz",
                "long_name": "crossover of the Poisson simulation (interpolated; NaN: not run)"}),
            "ltd_at_low": ("rule", drift[:, 0] < 0, {"units": "1",
                                                     "long_name": "LTD at the lowest frequency"}),
            "ltp_at_high": ("rule", drift[:, -1] > 0, {
                "units": "1", "long_name": "LTP at the highest frequency"}),
            "sim_dw": (("sim_rule", "sim_freq"), sim_mean, {
                "units": "1", "long_name": f"weight change after {duration:g} s of Poisson "
                                           "stimulation (mean over trains)"}),
            "sim_dw_sem": (("sim_rule", "sim_freq"), sim_sem, {
                "units": "1", "long_name": "SEM over trains"}),
            "sim_expected": (("sim_rule", "sim_freq"), expect, {
                "units": "1", "long_name": "rate-form drift x duration"}),
        },
        coords={
            "rule": ("rule", np.array(rules), {"long_name": "plasticity rule"}),
            "freq": ("freq", freq, {"units": "Hz", "long_name": "stimulation frequency"}),
            "sim_rule": ("sim_rule", np.array([f"triplet_{m}" for m in TRIPLETS]),
                         {"long_name": "simulated rule"}),
            "sim_freq": ("sim_freq", sim_freq, {"units": "Hz",
                                                "long_name": "simulated stimulation frequency"}),
        },
    )
    ds["ltd_at_low"] = ds["ltd_at_low"].astype("int8")
    ds["ltp_at_high"] = ds["ltp_at_high"].astype("int8")
    ds["ltd_at_low"].attrs.update(units="1", long_name="LTD at the lowest frequency (1 = yes)")
    ds["ltp_at_high"].attrs.update(units="1", long_name="LTP at the highest frequency (1 = yes)")
    from synaptic_fwp import __version__

    ds.attrs.update(
        analysis=NAME, quick=int(quick), seed=int(seed), n_trains=int(n_trains),
        duration_s=float(duration), f_ref_bcm_Hz=F_REF, package_version=__version__,
        sources="Pfister & Gerstner 2006 J Neurosci 26:9673 (Eq. 6, Table 3 visual cortex "
        "all-to-all); Bienenstock, Cooper & Munro 1982 J Neurosci 2:32; Dudek & Bear 1992 "
        "PNAS 89:4363 (frequency protocol)",
        missing_rules="none" if calcium else
        "graupner_brunel, shouval: skipped (run without --quick, or with --calcium)",
    )
    if calcium:
        ds = ds.merge(calcium_response(seed=seed), combine_attrs="no_conflicts")
    return ds


def figure(ds: xr.Dataset):
    """Weight change per presynaptic spike (drift / f) against the stimulation frequency: the
    BCM function phi(f), negative (LTD) below the crossover and positive (LTP) above it."""
    from synaptic_fwp.analyses._study import new_figure

    calcium = "calcium_rule" in ds.dims
    fig, axes = new_figure(1, 3 if calcium else 2, 180.0, 62.0)
    f = ds["freq"].values
    show = f <= 40.0
    T = ds.attrs["duration_s"]
    ax = axes[0, 0]
    for i, r in enumerate(ds["sim_rule"].values):
        line, = ax.plot(f[show], (ds["drift"].sel(rule=r).values / f)[show],
                        label=f"{r}: rate form (Eq. 6)")
        sf = ds["sim_freq"].values
        keep = sf <= 40.0
        ax.errorbar(sf[keep] * (1 + 0.01 * i), (ds["sim_dw"].values[i] / (T * sf))[keep],
                    (ds["sim_dw_sem"].values[i] / (T * sf))[keep], fmt="o",
                    color=line.get_color(), capsize=2, label=f"{r}: Poisson simulation")
        c = float(ds["crossover"].sel(rule=r))
        ax.axvline(c, color=line.get_color(), ls="--", lw=0.7)
        ax.annotate(f"{c:.1f} Hz", (c, 0), xytext=(3, 12 + 10 * i), textcoords="offset points",
                    color=line.get_color(), fontsize=6)
    ax.axhline(0, color="0.6", lw=0.5)
    ax.set_xlabel("stimulation frequency f (Hz), pre = post rate")
    ax.set_ylabel("weight change per presynaptic spike")
    ax.set_title("triplet STDP (Pfister & Gerstner 2006)")
    ax.legend(fontsize=5.5, loc="upper left")
    ax = axes[0, 1]
    b = ds["drift"].sel(rule="bcm").values / (f / ds.attrs["f_ref_bcm_Hz"])
    ax.plot(f[show], b[show], color="C3", label="BCM: y (y - theta), theta at 10 Hz baseline")
    c = float(ds["crossover"].sel(rule="bcm"))
    ax.axvline(c, color="C3", ls="--", lw=0.7)
    ax.annotate(f"{c:.1f} Hz", (c, 0), xytext=(3, 12), textcoords="offset points", color="C3",
                fontsize=6)
    ax.axhline(0, color="0.6", lw=0.5)
    ax.set_xlabel("stimulation frequency f (Hz)")
    ax.set_ylabel("phi(y), y = f / 10 Hz (eta = 1)")
    ax.set_title("BCM (Bienenstock et al. 1982)")
    ax.legend(fontsize=5.5, loc="upper left")
    if calcium:
        ax = axes[0, 2]
        for i, r in enumerate(ds["calcium_rule"].values):
            col = f"C{4 + i}"
            ax.plot(ds["calcium_freq"], ds["calcium_dw"].values[i], "s-", color=col, ms=2.5,
                    label=f"{r}")
            c = float(ds["calcium_crossover"].values[i])
            if np.isfinite(c):
                ax.axvline(c, color=col, ls="--", lw=0.7)
                ax.annotate(f"{c:.1f} Hz", (c, 0), xytext=(3, -14), textcoords="offset points",
                            color=col, fontsize=6)
        ax.axhline(0, color="0.6", lw=0.5)
        ax.set_xscale("log")
        ax.set_xlabel("stimulation frequency (Hz)")
        ax.set_ylabel(f"relative weight change ({ds.attrs['calcium_n_pulses']} pulses)")
        ax.set_title("calcium rules")
        ax.legend(fontsize=5.5, loc="upper left")
    return fig


def summary(ds: xr.Dataset) -> str:
    lines = [f"{'rule':16s} {'crossover Hz':>12s} {'closed form':>11s} {'Poisson sim':>11s} "
             "LTD@low LTP@high"]
    for r in ds["rule"].values:
        s = ds.sel(rule=r)
        lines.append(f"{str(r):16s} {float(s['crossover']):12.3f} "
                     f"{float(s['crossover_closed_form']):11.3f} "
                     f"{float(s['crossover_sim']):11.3f} {int(s['ltd_at_low']):7d} "
                     f"{int(s['ltp_at_high']):8d}")
    if "calcium_rule" in ds.dims:
        for r in ds["calcium_rule"].values:
            s = ds.sel(calcium_rule=r)
            lines.append(f"{str(r):16s} {float(s['calcium_crossover']):12.3f} "
                         f"{'':>11s} {'':>11s} {int(s['calcium_dw'][0] < 0):7d} "
                         f"{int(s['calcium_dw'][-1] > 0):8d}")
    lines.append(f"missing rules: {ds.attrs['missing_rules']}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> xr.Dataset:
    """``python -m synaptic_fwp.analyses.bcm_frequency [--quick] [--out DIR] [--seed N]
    [--calcium]``: the Dataset, figure and a CSV of the crossover frequencies."""
    from synaptic_fwp.analyses._study import main as study_main

    def options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--seed", type=int, default=0, help="seed of the Poisson trains")
        p.add_argument("--calcium", action="store_true",
                       help="add the calcium rules even with --quick (minutes)")

    return study_main(
        NAME, run, figure, argv, summary, options=options,
        run_kwargs=lambda a: dict(quick=a.quick, seed=a.seed,
                                  calcium=True if a.calcium else None),
        table=lambda ds: ds[["crossover", "crossover_closed_form", "crossover_sim",
                             "ltd_at_low", "ltp_at_high"]].to_dataframe(),
    )


if __name__ == "__main__":
    main()
