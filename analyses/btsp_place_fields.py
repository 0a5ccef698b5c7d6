"""BTSP place fields in CA1: one-shot formation, plasticity kernel, shift, translocation, time
constants; Milstein et al. 2021's rule against the Primer's FWP form.

``python -m synaptic_fwp.analyses.btsp_place_fields [--quick] [--out DIR]``

What it measures (model :class:`synaptic_fwp.models.btsp_ca1.CA3CA1`; targets are the
``target_*`` rows of the shipped ``milstein2021_btsp_params.csv``):

1. **One-shot formation**: ramp after 1 and after 3 induction laps from a silent cell (all
   weights 1); peak (V), peak shift from the plateau (m), width between the 15 % crossings (m)
   and rise/decay asymmetry around the plateau, each beside the same feature of the authors'
   target ramp (:func:`~synaptic_fwp.protocols.btsp.target_ramp`: 8 mV peak, -12.5 cm shift, and
   160 cm / 2.2 as its *whole* extent and extent ratio, which at 15 % of the peak measure about
   103 cm and 2.7; the table's 160 cm is not a 15 % width).
2. **Plasticity kernel**: weight change of each input against the time its field centre passes
   relative to the plateau onset (s), after one lap: its extent before/after the plateau at 15 %
   and at 50 % of the peak, width (s) and asymmetry (before/after).
3. **Translocation**: a field made by 3 laps at ``A`` and 3 more laps with the plateau at
   ``A + d``: the change in ramp (potentiation peak, depression trough; targets +7.65 mV and
   -5 mV) for several distances ``d``. The Primer's write only adds, so it cannot depress.
4. **Time constants**: kernel width, asymmetry and field shift over a grid of ``tau_ET`` and
   ``tau_IS``.
5. **The fit's second induction**: the authors' own translocation protocol (their synthetic fit
   moves the plateau from 120 to 45 cm, ``d = -75 cm``, and starts it not from the model's
   field but from weights fitted to the 8 mV target ramp,
   :func:`~synaptic_fwp.protocols.btsp.fit_ramp_weights`), against their target change of ramp
   (+7.65 mV, 160 cm, ratio 2.5 at the new place minus 5 mV, 140 cm, 2.5 at the old one:
   ``optimize_biBTSP_synthetic_WD_config.yaml``), whose extremes are +7.49 and -4.99 mV.

Why the field misses the 8 mV target (Milstein et al. 2021; their published code,
``optimize_biBTSP_synthetic_WD.py`` / ``biBTSP_utils.py`` with the configuration
``optimize_biBTSP_synthetic_WD_config.yaml``, whose ``x0`` is the shipped population fit).
The model here is theirs: 3 induction laps at 25 cm/s with 300 ms plateaus, the rule applied
once per lap to ``q(ET IS)`` integrated from one plateau onset to the next, ET and IS each
normalised to a peak of 1 (as their model description and network simulation do; the stored
version of the fitting script omits the normalisation, with which these parameters give a
0.7 mV field, so the fit was not run without it), and the ramp scale of their fits
(:func:`~synaptic_fwp.protocols.btsp.ramp_scale`, 3.32e-6 V/Hz; the older cosine-bump scale,
11 % lower, is not the one their fits read). ``tests/test_btsp_reference.py`` re-implements
their simulation loop and agrees within 2 % of the weight change. The remaining gap is the
parameter set's own: with ``P_i = int q_+ dt`` and ``D_i = int q_- dt`` per lap, repeated laps
drive each weight to the fixed point ``w_i* = k_+ P_i / (k_+ P_i + k_- D_i)`` (of ``W_max``);
one lap overshoots it at the field's centre (8.1 mV), and by lap 3 the field sits at the fixed
point (7.2 mV above baseline, 7.0 mV as the authors measure a peak, without subtracting the
baseline; 7.24 mV after 8 laps), so no number of laps reaches 8 mV. Their fit does not score the
peak alone: its objectives are the residuals of the whole ramp after the first and after the
second induction and a penalty on weights that reverse across laps (``weights_path_distance``).
The fitted field is also wider (area width 75 cm against the target's 66 cm, the measure their
fit compares; 120 against 103 cm at 15 %) and less skewed (asymmetry 2.4 against 2.7); the
lap-1 features (8.1 mV, 107 cm, 2.1) are closer, but the fit targets the field after 3 laps. In
the fit's own second induction (5.) the old field is depressed by 4.9 mV (target 5.0) and the
new one gains 6.6 mV (target 7.5).
"""

from __future__ import annotations

import numpy as np
import torch
import xarray as xr
from synaptic_fwp.models.btsp_ca1 import CA3CA1

from synaptic_fwp.plasticity.btsp import read_milstein_table
from synaptic_fwp.protocols.btsp import fit_ramp_weights, ramp_features, target_ramp

from ._study import main, new_figure

NAME = "btsp_place_fields"
RULES = ("milstein", "primer")
# the second induction of the authors' synthetic fit (optimize_biBTSP_synthetic_WD_config.yaml):
# plateau 75 cm earlier (induction_loc 120 -> 45 cm); target change of ramp = potentiation
# (target_ramp_pot_width_2 160 cm) minus depression (target_ramp_dep_width_2 140 cm), both with
# target_asymmetry_2 = 2.5; the initial weights are fitted to the first target ramp with bounds
# (min_delta_weight, target_peak_delta_weight) = (-0.2, 3) and weights_smoothness 0.015
FIT_SHIFT = -0.75
FIT_POT_WIDTH, FIT_DEP_WIDTH, FIT_ASYMMETRY_2 = 1.6, 1.4, 2.5


def kernel_features(t: np.ndarray, dw: np.ndarray, frac: float = 0.15) -> dict[str, float]:
    """Extent of a weight-change kernel ``dw(t)`` (``t`` in s, plateau onset at 0): peak time,
    first/last times where ``dw >= frac * max`` (contiguous around the peak), ``width`` (s) and
    ``asymmetry = -t_start / t_end`` (before/after the plateau onset). NaN extents when the
    kernel is still above ``frac`` at the edge of the lap window (wider than one lap)."""
    order = np.argsort(t)
    t, dw = np.asarray(t)[order], np.asarray(dw)[order]
    ip = int(np.argmax(dw))
    peak = dw[ip]
    nan = float("nan")
    if not peak > 0:
        return {"t_peak": nan, "t_start": nan, "t_end": nan, "width": nan, "asymmetry": nan}
    above = dw >= frac * peak
    i0 = ip
    while i0 > 0 and above[i0 - 1]:
        i0 -= 1
    i1 = ip
    while i1 < len(dw) - 1 and above[i1 + 1]:
        i1 += 1
    t0, t1 = float(t[i0]), float(t[i1])
    if i0 == 0 or i1 == len(dw) - 1:  # still above threshold at the edge of the lap: truncated
        return {
            "t_peak": float(t[ip]),
            "t_start": nan,
            "t_end": nan,
            "width": nan,
            "asymmetry": nan,
        }
    return {
        "t_peak": float(t[ip]),
        "t_start": t0,
        "t_end": t1,
        "width": t1 - t0,
        "asymmetry": -t0 / t1 if t1 > 0 else float("inf"),
    }


def _targets() -> dict[str, float]:
    rows = read_milstein_table()
    si = {"cm": 1e-2, "mV": 1e-3, "ratio": 1.0}
    out = {}
    for k, r in rows.items():
        if k.startswith("target_"):
            out[k] = float(r["population_fit_x0"]) * si.get(r["unit"], 1.0)
    return out


def run(quick: bool = False, out: str | None = None, dt: float | None = None) -> xr.Dataset:
    """Run the study; ``quick`` uses a coarser time step, fewer distances and a 2x2 tau grid."""
    dt = (0.02 if quick else 0.005) if dt is None else dt
    models = {r: CA3CA1(r, dt=dt) for r in RULES}
    L = models["milstein"].track.track_length
    speed = models["milstein"].track.speed
    A = L / 2
    n_laps = int(read_milstein_table()["num_induction_laps"]["population_fit_x0"])

    # 1-2: formation and kernel
    form = {r: m.induce([A] * n_laps) for r, m in models.items()}
    ref = form["milstein"]
    x = ref.position.values
    ramp = np.stack([form[r].ramp.values[0] for r in RULES])  # (rule, lap, position)
    feat_names = ("peak_val", "peak_shift", "width", "asymmetry", "min_val")
    feats = {k: np.stack([form[r][k].values[0] for r in RULES]) for k in feat_names}
    t_from = ref.time_from_plateau.values
    dw1 = np.stack([form[r].weight.values[0, 1] - 1.0 for r in RULES])  # (rule, pre)
    kf = [kernel_features(t_from, dw1[i]) for i in range(len(RULES))]
    kf50 = [kernel_features(t_from, dw1[i], frac=0.5) for i in range(len(RULES))]
    knames = ("t_peak", "t_start", "t_end", "width", "asymmetry")

    # 3: translocation
    dists = (
        np.array([-0.6, 0.6])
        if quick
        else np.array([-0.9, -0.75, -0.6, -0.45, -0.3, 0.3, 0.45, 0.6, 0.75, 0.9])
    )
    pot = np.zeros((len(RULES), len(dists)))
    dep = np.zeros((len(RULES), len(dists)))
    dramp = np.zeros((len(RULES), len(dists), len(x)))
    for i, r in enumerate(RULES):
        W1 = torch.as_tensor(form[r].weight.values[0, -1])
        base = form[r].ramp.values[0, -1]
        for j, d in enumerate(dists):
            B = float((A + d) % L)
            ds2 = models[r].induce([B] * n_laps, initial_weights=W1)
            delta = ds2.ramp.values[0, -1] - base
            dramp[i, j] = delta
            pot[i, j] = delta.max()
            dep[i, j] = delta.min()

    # 4: tau sweep (one lap)
    tau_et = np.array([0.5, 2.5]) if quick else np.array([0.25, 0.5, 1.0, 1.664103, 2.5, 4.0])
    tau_is = np.array([0.2, 1.0]) if quick else np.array([0.1, 0.2, 0.4370065, 0.8, 1.2, 1.75])
    TE, TI = np.meshgrid(tau_et, tau_is, indexing="ij")
    sweep = {
        k: np.zeros((len(RULES), len(tau_et), len(tau_is)))
        for k in ("kernel_width", "kernel_asymmetry", "sweep_peak_shift")
    }
    for i, r in enumerate(RULES):
        ds3 = models[r].induce([A], params={"tau_et": TE.ravel(), "tau_is": TI.ravel()})
        dwb = ds3.weight.values[:, 1] - ds3.weight.values[:, 0]
        kfb = [kernel_features(t_from, dwb[b]) for b in range(dwb.shape[0])]
        sweep["kernel_width"][i] = np.array([k["width"] for k in kfb]).reshape(TE.shape)
        sweep["kernel_asymmetry"][i] = np.array([k["asymmetry"] for k in kfb]).reshape(TE.shape)
        sweep["sweep_peak_shift"][i] = ds3.peak_shift.values[:, 1].reshape(TE.shape)

    tg = _targets()
    # the authors' target ramp, measured like the model's (their fits compare the two this way)
    tramp = target_ramp(
        x,
        A,
        L,
        peak_val=tg["target_peak_val_1"],
        peak_shift=tg["target_peak_shift"],
        width=tg["target_ramp_width"],
        asymmetry=tg["target_asymmetry"],
    )
    tfeat = ramp_features(tramp, x, A, L)

    # the authors' measures of the field: raw peak (no baseline subtracted) and area width
    auth = {k: np.full((len(RULES), n_laps + 1), np.nan) for k in ("peak_raw", "area_width")}
    for i in range(len(RULES)):
        for lap in range(1, n_laps + 1):
            f = ramp_features(ramp[i, lap], x, A, L)
            auth["peak_raw"][i, lap] = f["peak_val"] + f["baseline"]
            auth["area_width"][i, lap] = f["area_width"]

    # 5: the fit's second induction, from weights fitted to the target ramp
    m0 = models["milstein"]
    w_fit = 1.0 + fit_ramp_weights(tramp, m0.track, m0.scale)
    B2 = float((A + FIT_SHIFT) % L)
    sh = tg["target_peak_shift"]
    fit_target = target_ramp(
        x,
        B2,
        L,
        peak_val=tg["target_pot_delta_peak_val_2"],
        peak_shift=sh,
        width=FIT_POT_WIDTH,
        asymmetry=FIT_ASYMMETRY_2,
    ) - target_ramp(
        x,
        A,
        L,
        peak_val=-tg["target_dep_delta_peak_val_2"],
        peak_shift=sh,
        width=FIT_DEP_WIDTH,
        asymmetry=FIT_ASYMMETRY_2,
    )
    fit_dramp = np.zeros((len(RULES), len(x)))
    for i, r in enumerate(RULES):
        ds4 = models[r].induce([B2] * n_laps, initial_weights=torch.as_tensor(w_fit))
        fit_dramp[i] = ds4.ramp.values[0, -1] - ds4.ramp.values[0, 0]
    fit_initial_peak = float(ds4.ramp.values[0, 0].max())  # the fitted initial field

    ds = xr.Dataset(
        {
            "target_ramp": (
                ("position",),
                tramp,
                {"units": "V", "long_name": "Milstein et al. 2021 target ramp (induction 1)"},
            ),
            "ramp": (
                ("rule", "lap", "position"),
                ramp,
                {"units": "V", "long_name": "CA1 ramp after each induction lap"},
            ),
            "peak_val": (
                ("rule", "lap"),
                feats["peak_val"],
                {"units": "V", "long_name": "ramp peak above baseline"},
            ),
            "peak_shift": (
                ("rule", "lap"),
                feats["peak_shift"],
                {"units": "m", "long_name": "ramp peak minus plateau position"},
            ),
            "ramp_width": (
                ("rule", "lap"),
                feats["width"],
                {"units": "m", "long_name": "ramp width between 15 % crossings"},
            ),
            "ramp_asymmetry": (
                ("rule", "lap"),
                feats["asymmetry"],
                {"units": "1", "long_name": "ramp rise/decay length around the plateau"},
            ),
            "ramp_peak_raw": (
                ("rule", "lap"),
                auth["peak_raw"],
                {"units": "V", "long_name": "ramp maximum, baseline not subtracted (authors')"},
            ),
            "ramp_area_width": (
                ("rule", "lap"),
                auth["area_width"],
                {"units": "m", "long_name": "area under the ramp over its maximum (authors')"},
            ),
            "fit_translocation_delta_ramp": (
                ("rule", "position"),
                fit_dramp,
                {
                    "units": "V",
                    "long_name": "ramp change, fit protocol (from target-ramp weights, d = -75 cm)",
                },
            ),
            "fit_translocation_target": (
                ("position",),
                fit_target,
                {"units": "V", "long_name": "the fit's target change of ramp (second induction)"},
            ),
            "delta_weight_lap1": (
                ("rule", "pre"),
                dw1,
                {"units": "1", "long_name": "weight change after one induction lap (baseline 1)"},
            ),
            **{
                f"kernel_{k}": (
                    ("rule",),
                    np.array([f[k] for f in kf]),
                    {
                        "units": "1" if k == "asymmetry" else "s",
                        "long_name": f"plasticity kernel {k} (15 % of peak)",
                    },
                )
                for k in knames
            },
            **{
                f"kernel_half_{k}": (
                    ("rule",),
                    np.array([f[k] for f in kf50]),
                    {
                        "units": "1" if k == "asymmetry" else "s",
                        "long_name": f"plasticity kernel {k} (half maximum)",
                    },
                )
                for k in knames
            },
            "translocation_delta_ramp": (
                ("rule", "distance", "position"),
                dramp,
                {
                    "units": "V",
                    "long_name": "ramp change from the second plateau position's 3 laps",
                },
            ),
            "translocation_potentiation": (
                ("rule", "distance"),
                pot,
                {"units": "V", "long_name": "largest ramp increase"},
            ),
            "translocation_depression": (
                ("rule", "distance"),
                dep,
                {"units": "V", "long_name": "largest ramp decrease"},
            ),
            "sweep_kernel_width": (
                ("rule", "tau_et", "tau_is"),
                sweep["kernel_width"],
                {"units": "s", "long_name": "kernel width (15 % of peak), one lap"},
            ),
            "sweep_kernel_asymmetry": (
                ("rule", "tau_et", "tau_is"),
                sweep["kernel_asymmetry"],
                {"units": "1", "long_name": "kernel asymmetry (before/after)"},
            ),
            "sweep_peak_shift": (
                ("rule", "tau_et", "tau_is"),
                sweep["sweep_peak_shift"],
                {"units": "m", "long_name": "field peak shift, one lap"},
            ),
            "time_from_plateau": (
                ("pre",),
                t_from,
                {"units": "s", "long_name": "time input field centre passes minus plateau onset"},
            ),
        },
        coords={
            "rule": list(RULES),
            "lap": np.arange(n_laps + 1),
            "position": ("position", x, {"units": "m", "long_name": "track position"}),
            "pre": np.arange(len(t_from)),
            "distance": (
                "distance",
                dists,
                {"units": "m", "long_name": "second plateau position minus first"},
            ),
            "tau_et": (
                "tau_et",
                tau_et,
                {"units": "s", "long_name": "eligibility trace time constant"},
            ),
            "tau_is": (
                "tau_is",
                tau_is,
                {"units": "s", "long_name": "instructive signal time constant"},
            ),
        },
        attrs={
            "analysis": NAME,
            "quick": int(quick),
            "dt": dt,
            "plateau_position_m": A,
            "speed_m_per_s": speed,
            "track_length_m": L,
            "n_induction_laps": n_laps,
            "primer_eta_per_s": float(models["primer"].rule.eta),
            **{f"{k}_SI": v for k, v in tg.items()},
            # the target ramp's features measured as the model's are (15 % crossings)
            "target_ramp_width_15pct_m": tfeat["width"],
            "target_asymmetry_15pct": tfeat["asymmetry"],
            "target_ramp_peak_shift_m": tfeat["peak_shift"],
            "target_ramp_area_width_m": tfeat["area_width"],
            "ramp_scale_V_per_Hz": float(m0.scale),
            "fit_translocation_distance_m": FIT_SHIFT,
            "fit_translocation_initial_peak_V": fit_initial_peak,
            "source": (
                "Milstein et al. 2021 eLife 10:e73046 (rule, parameters, targets); "
                "Irie & Gershman Primer Sec. 4.2"
            ),
        },
    )
    return ds


def summary(ds: xr.Dataset) -> str:
    """The headline numbers, in cm, mV and s."""
    lines = []
    last = int(ds.lap[-1])
    for r in ds.rule.values:
        s = ds.sel(rule=r)
        parts = [f"{r}:"]
        for lap in (1, last):
            parts.append(
                f"lap{lap} peak {1e3 * float(s.peak_val[lap]):.2f} mV, "
                f"shift {100 * float(s.peak_shift[lap]):.1f} cm, "
                f"width {100 * float(s.ramp_width[lap]):.0f} cm, "
                f"asym {float(s.ramp_asymmetry[lap]):.2f};"
            )
        parts.append(
            f"lap{last} authors' measures: peak {1e3 * float(s.ramp_peak_raw[last]):.2f} mV, "
            f"area width {100 * float(s.ramp_area_width[last]):.0f} cm;"
        )
        parts.append(
            f"kernel {float(s.kernel_t_start):.2f}..{float(s.kernel_t_end):.2f} s "
            f"(width {float(s.kernel_width):.2f} s, asym {float(s.kernel_asymmetry):.2f}); "
            f"half max {float(s.kernel_half_t_start):.2f}..{float(s.kernel_half_t_end):.2f} s "
            f"(width {float(s.kernel_half_width):.2f} s, "
            f"asym {float(s.kernel_half_asymmetry):.2f}); "
            f"translocation pot max {1e3 * float(s.translocation_potentiation.max()):.2f} mV, "
            f"dep min {1e3 * float(s.translocation_depression.min()):.2f} mV; "
            f"fit protocol (d = {100 * ds.attrs['fit_translocation_distance_m']:.0f} cm) "
            f"pot {1e3 * float(s.fit_translocation_delta_ramp.max()):.2f} mV, "
            f"dep {1e3 * float(s.fit_translocation_delta_ramp.min()):.2f} mV"
        )
        lines.append(" ".join(parts))
    a = ds.attrs
    lines.append(
        f"targets: shift {100 * a['target_peak_shift_SI']:.1f} cm, "
        f"width {100 * a['target_ramp_width_15pct_m']:.0f} cm and "
        f"asym {a['target_asymmetry_15pct']:.2f} at 15 % (whole extent "
        f"{100 * a['target_ramp_width_SI']:.0f} cm, ratio {a['target_asymmetry_SI']:.2f}), "
        f"peak {1e3 * a['target_peak_val_1_SI']:.1f} mV, "
        f"area width {100 * a['target_ramp_area_width_m']:.0f} cm, "
        f"shift expt pot {1e3 * a['target_pot_delta_peak_val_2_SI']:.2f} mV / "
        f"dep {1e3 * a['target_dep_delta_peak_val_2_SI']:.2f} mV (fit protocol's target change "
        f"{1e3 * float(ds.fit_translocation_target.max()):.2f} / "
        f"{1e3 * float(ds.fit_translocation_target.min()):.2f} mV from "
        f"{1e3 * a['fit_translocation_initial_peak_V']:.2f} mV)"
    )
    return "\n".join(lines)


def figure(ds: xr.Dataset):
    fig, axes = new_figure(2, 3, 180, 105)
    colors = {"milstein": "#0072B2", "primer": "#D55E00"}
    A = ds.attrs["plateau_position_m"]
    xcm = 100 * ds.position.values
    ax = axes[0, 0]
    for r in ds.rule.values:
        for lap, ls in ((1, "--"), (int(ds.lap[-1]), "-")):
            ax.plot(
                xcm,
                1e3 * ds.ramp.sel(rule=r, lap=lap),
                ls,
                color=colors[str(r)],
                label=f"{r}, lap {lap}",
            )
    ax.plot(xcm, 1e3 * ds.target_ramp, ":", color="k", label="target (3 laps)")
    ax.axvline(100 * A, color="k", lw=0.8)
    ax.set(xlabel="position (cm)", ylabel="ramp (mV)", title="one-shot field (plateau: black)")
    ax.legend(fontsize=6, frameon=False)
    ax = axes[0, 1]
    t = ds.time_from_plateau.values
    o = np.argsort(t)
    for r in ds.rule.values:
        ax.plot(
            t[o], ds.delta_weight_lap1.sel(rule=r).values[o], color=colors[str(r)], label=str(r)
        )
    ax.axvline(0, color="k", lw=0.8)
    ax.axhline(0, color="grey", lw=0.5)
    ax.set(
        xlabel="time of input field centre from plateau (s)",
        ylabel="weight change, 1 lap",
        title="plasticity kernel",
    )
    ax.legend(fontsize=6, frameon=False)
    ax = axes[0, 2]
    mil = ds.sel(rule="milstein")
    j = int(np.argmin(np.abs(ds.distance.values - (-0.6))))
    ax.plot(
        xcm,
        1e3 * mil.translocation_delta_ramp.isel(distance=j),
        color=colors["milstein"],
        label="milstein",
    )
    ax.plot(
        xcm,
        1e3 * ds.sel(rule="primer").translocation_delta_ramp.isel(distance=j),
        color=colors["primer"],
        label="primer",
    )
    ax.axvline(100 * A, color="k", lw=0.8)
    ax.axvline(
        100 * ((A + float(ds.distance[j])) % ds.attrs["track_length_m"]), color="k", ls="--", lw=0.8
    )
    ax.axhline(0, color="grey", lw=0.5)
    ax.set(
        xlabel="position (cm)",
        ylabel="change in ramp (mV)",
        title=f"translocation, d = {100 * float(ds.distance[j]):.0f} cm",
    )
    ax.legend(fontsize=6, frameon=False)
    ax = axes[1, 0]
    for r in ds.rule.values:
        s = ds.sel(rule=r)
        ax.plot(
            100 * ds.distance,
            1e3 * s.translocation_potentiation,
            "o-",
            color=colors[str(r)],
            label=f"{r} pot.",
        )
        ax.plot(
            100 * ds.distance,
            1e3 * s.translocation_depression,
            "s--",
            color=colors[str(r)],
            label=f"{r} dep.",
        )
    ax.axhline(1e3 * ds.attrs["target_pot_delta_peak_val_2_SI"], color="grey", ls=":")
    ax.axhline(1e3 * ds.attrs["target_dep_delta_peak_val_2_SI"], color="grey", ls=":")
    ax.set(
        xlabel="second plateau distance (cm)",
        ylabel="ramp change (mV)",
        title="translocation vs distance (targets dotted)",
    )
    ax.legend(fontsize=6, frameon=False)
    for k, (r, var, lab) in enumerate(
        (
            ("milstein", "sweep_kernel_width", "kernel width (s)"),
            ("milstein", "sweep_peak_shift", "peak shift (cm)"),
        )
    ):
        ax = axes[1, 1 + k]
        val = ds[var].sel(rule=r).values * (100 if var == "sweep_peak_shift" else 1)
        im = ax.imshow(val, origin="lower", aspect="auto", cmap="viridis")
        ax.set_xticks(range(len(ds.tau_is)), [f"{v:.2g}" for v in ds.tau_is.values], fontsize=6)
        ax.set_yticks(range(len(ds.tau_et)), [f"{v:.2g}" for v in ds.tau_et.values], fontsize=6)
        ax.set(
            xlabel="tau_IS (s)",
            ylabel="tau_ET (s)",
            title=f"{r}: {lab}" + (" (blank: > 1 lap)" if "width" in var else ""),
        )
        fig.colorbar(im, ax=ax)
    return fig


if __name__ == "__main__":
    main(NAME, run, figure, summary=summary)
