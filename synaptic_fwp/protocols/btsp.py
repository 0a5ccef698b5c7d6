r"""BTSP induction on a circular track: laps, an EC3 plateau per lap, batched over parameter sets.

The protocol of Milstein et al. 2021 (eLife 10:e73046; shipped table
``milstein2021_btsp_params.csv``): an animal runs at constant speed (25 cm/s) on a 187 cm circular
track; 200 CA3 inputs have Gaussian place fields (90 cm wide, 40 Hz peak) tiling the track
(``r_i(x) = r_max exp(-((x - c_i)/sigma)^2)``, ``sigma = width / (3 sqrt 2)``, wrapped around the
track); in each induction lap a 300 ms dendritic plateau starts when the animal passes the chosen
position. The CA1 ramp is the weighted sum of the inputs, ``V(x) = s sum_i (W_i - 1) r_i(x)``,
with the scale ``s`` (V per weight unit per Hz) calibrated as in the authors' model fits
(:func:`ramp_scale`): the smooth weight changes that best produce a 6 mV Gaussian ramp 108 cm
wide, scaled to a peak of 1.5, give a 6 mV peak.

Each lap is one period of the periodic running signal, starting at the plateau onset, sampled
every ``dt``: the eligibility trace is the exact periodic steady state of the causal filter, the
instructive signal the exact filtered plateau (:mod:`synaptic_fwp.plasticity.btsp`).

Units: SI (m, s, Hz, V) in the returned Dataset; the shipped table's cm and ms are converted.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from functools import lru_cache

import numpy as np
import torch
import xarray as xr

from .._validation import check_choice, check_positive, check_range
from ..plasticity.btsp import (
    MilsteinBTSP,
    PrimerBTSP,
    eligibility_trace,
    instructive_signal,
)

__all__ = [
    "btsp_induction",
    "TrackConfig",
    "place_rates",
    "input_centers",
    "ramp_scale",
    "fit_ramp_weights",
    "ramp_features",
    "target_ramp",
]


class TrackConfig:
    """Track and input population (SI units); defaults are Milstein et al. 2021's."""

    def __init__(
        self,
        track_length: float = 1.87,
        speed: float = 0.25,
        n_inputs: int = 200,
        field_width: float = 0.90,
        peak_rate: float = 40.0,
        plateau_duration: float = 0.3,
    ) -> None:
        for n, x in (
            ("track_length", track_length),
            ("speed", speed),
            ("field_width", field_width),
            ("peak_rate", peak_rate),
            ("plateau_duration", plateau_duration),
        ):
            if isinstance(x, bool) or not isinstance(x, (int, float)):
                raise TypeError(f"{n} must be a positive float, got {x!r}")
            check_positive(n, float(x))
        if isinstance(n_inputs, bool) or not isinstance(n_inputs, int) or n_inputs < 1:
            raise ValueError(f"n_inputs must be a positive int, got {n_inputs!r}")
        self.track_length = float(track_length)
        self.speed = float(speed)
        self.n_inputs = n_inputs
        self.field_width = float(field_width)
        self.peak_rate = float(peak_rate)
        self.plateau_duration = float(plateau_duration)

    @property
    def lap_duration(self) -> float:
        """Seconds per lap, ``track_length / speed``."""
        return self.track_length / self.speed

    def attrs(self) -> dict[str, float]:
        return {
            "track_length_m": self.track_length,
            "speed_m_per_s": self.speed,
            "n_inputs": self.n_inputs,
            "input_field_width_m": self.field_width,
            "input_peak_rate_Hz": self.peak_rate,
            "plateau_duration_s": self.plateau_duration,
        }


def input_centers(cfg: TrackConfig, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Field centres ``c_i = (i + 1/2) L / n`` (m), shape ``(n_inputs,)``."""
    d = cfg.track_length / cfg.n_inputs
    return (torch.arange(cfg.n_inputs, dtype=dtype) + 0.5) * d


def place_rates(x: torch.Tensor, cfg: TrackConfig) -> torch.Tensor:
    """Rates (Hz) of the inputs at positions ``x`` (m, any shape ``S``): shape ``(n_inputs, *S)``.
    Gaussian fields wrapped once around the circular track (Milstein et al. 2021)."""
    c = input_centers(cfg, x.dtype).reshape((-1,) + (1,) * x.ndim)
    sigma = cfg.field_width / 3.0 / math.sqrt(2.0)
    L = cfg.track_length
    xm = torch.remainder(x, L).unsqueeze(0)
    r = sum(torch.exp(-((((xm + n * L) - c) / sigma) ** 2)) for n in (-1, 0, 1))
    return cfg.peak_rate * r


def _bin_centres(cfg: TrackConfig, n_bins: int) -> np.ndarray:
    return (np.arange(n_bins) + 0.5) * cfg.track_length / n_bins


def _bin_rates(cfg: TrackConfig, n_bins: int) -> np.ndarray:
    """Input rates (Hz) at the ``n_bins`` bin centres: ``(n_inputs, n_bins)``."""
    x = torch.as_tensor(_bin_centres(cfg, n_bins), dtype=torch.float64)
    return place_rates(x, cfg).numpy()


def fit_ramp_weights(
    ramp: np.ndarray,
    track: TrackConfig | None = None,
    scale: float | None = None,
    *,
    bounds: tuple[float, float] = (-0.2, 3.0),
    smoothness: float = 0.015,
    residual_tol: float = 1e-4,
    value_tol: float = 1e-5,
) -> np.ndarray:
    r"""Weight changes ``dw`` (``(n_inputs,)``, baseline 0) whose ramp ``s sum_i dw_i r_i(x)``
    best matches ``ramp`` (V) given at ``n = len(ramp)`` bin centres ``x_b = (b + 1/2) L / n``.

    The regularised least squares of Milstein et al. 2021 (eLife 10:e73046), by which the
    authors turn a ramp into weights (initial weights of their model fits, and the calibration
    of :func:`ramp_scale`; ``get_delta_weights_LSA`` / ``get_residual_score`` in their
    published ``biBTSP_utils.py``): with ``V = s R^T dw``,

    .. math::
        E(dw) = \sum_b \Big(\frac{V_b - ramp_b}{\sigma_r}\Big)^2
              + \sum_i \Big(\frac{dw_i - dw_{i-1}}{\sigma_w}\Big)^2
              + \Big(\frac{V_{b^*} - ramp_{b^*}}{\sigma_v}\Big)^2
              + 2 \Big(\frac{V_{b_0} - ramp_{b_0}}{\sigma_v}\Big)^2,

    minimised subject to ``bounds[0] <= dw_i <= bounds[1]``; the weight differences wrap around
    the track (``dw_{-1} = dw_{n-1}``), ``b*`` is the ramp's peak bin and ``b_0`` its minimum
    bin (the authors penalise the model's value there and the model's own minimum, both taken
    here at ``b_0``). ``sigma_r = residual_tol`` (0.1 mV), ``sigma_v = value_tol`` (0.01 mV)
    and ``sigma_w = smoothness`` (0.015 in their synthetic fits, 0.005 in the calibration) are
    the authors' ``target_range``. ``E`` is quadratic, so it is minimised exactly (bounded
    linear least squares) where the authors run L-BFGS-B from a truncated-SVD start.
    ``scale`` defaults to :func:`ramp_scale`.
    """
    from scipy.optimize import lsq_linear

    cfg = track if track is not None else TrackConfig()
    if not isinstance(cfg, TrackConfig):
        raise TypeError(f"track must be a TrackConfig, got {type(track).__name__}")
    r = np.asarray(ramp, dtype=float)
    if r.ndim != 1 or r.size < 8 or not np.isfinite(r).all():
        raise ValueError(f"ramp must be a finite 1-D array of >= 8 bins, got shape {r.shape}")
    lo, hi = (float(b) for b in bounds)
    if not lo < hi:
        raise ValueError(f"bounds must be (low, high) with low < high, got {bounds!r}")
    for n, v in (
        ("smoothness", smoothness),
        ("residual_tol", residual_tol),
        ("value_tol", value_tol),
    ):
        check_positive(n, float(v))
    s = ramp_scale(cfg, r.size) if scale is None else float(scale)
    check_positive("scale", s)
    M = s * _bin_rates(cfg, r.size).T  # (n_bins, n_inputs): V per weight unit
    n = M.shape[1]
    eye = np.eye(n)
    diff = eye - np.roll(eye, -1, axis=1)  # (dw_i - dw_{i+1}): the cyclic differences
    kp, k0 = int(np.argmax(r)), int(np.argmin(r))
    A = np.vstack(
        [
            M / residual_tol,
            diff / smoothness,
            M[kp : kp + 1] / value_tol,
            math.sqrt(2.0) * M[k0 : k0 + 1] / value_tol,
        ]
    )
    b = np.concatenate(
        [
            r / residual_tol,
            np.zeros(n),
            r[kp : kp + 1] / value_tol,
            math.sqrt(2.0) * r[k0 : k0 + 1] / value_tol,
        ]
    )
    return lsq_linear(A, b, bounds=(lo, hi), method="bvls").x


@lru_cache(maxsize=32)
def _ramp_scale(
    track: tuple[float, int, float, float],
    n_bins: int,
    ref_peak_delta_weight: float,
    ref_width: float,
    ref_peak_ramp: float,
    method: str,
) -> float:
    L, n_inputs, field_width, peak_rate = track
    cfg = TrackConfig(
        track_length=L, n_inputs=n_inputs, field_width=field_width, peak_rate=peak_rate
    )
    R = _bin_rates(cfg, n_bins)  # (n_inputs, n_bins), Hz
    x = _bin_centres(cfg, n_bins)
    c = input_centers(cfg).numpy()
    mid = L / 2
    # the legacy calibration: a cosine bump of weight changes
    dw = ref_peak_delta_weight / 2 * (np.cos(2 * math.pi / ref_width * (c - mid)) + 1)
    dw = np.where(np.abs(c - mid) <= ref_width / 2, dw, 0.0)
    s_cos = float(ref_peak_ramp / (dw @ R).max())
    if method == "cosine":
        return s_cos
    # 1. a Gaussian ramp; Tikhonov-regularised inverse (beta = 2 mV) at the legacy scale, the
    #    weights scaled to the reference peak give the starting scale s1
    target = ref_peak_ramp * np.exp(-(((x - mid) / (ref_width / (3 * math.sqrt(2)))) ** 2))
    A = s_cos * R
    dw = np.linalg.solve(A @ A.T + (2e-3) ** 2 * np.eye(len(A)), A @ target)
    dw = dw * ref_peak_delta_weight / dw.max()
    s1 = float(ref_peak_ramp / (dw @ R).max())
    # 2. the regularised least-squares weights at s1, bounded to [0, 3], smoothness 0.005
    dw = fit_ramp_weights(target, cfg, s1, bounds=(0.0, 3.0), smoothness=0.005)
    # 3. scaled to the reference peak weight change, the ramp must peak at ref_peak_ramp
    dw = dw * ref_peak_delta_weight / dw.max()
    return float(ref_peak_ramp / (dw @ R).max())


def ramp_scale(
    cfg: TrackConfig,
    n_bins: int = 100,
    ref_peak_delta_weight: float = 1.5,
    ref_width: float = 1.08,
    ref_peak_ramp: float = 6e-3,
    method: str = "lsa",
) -> float:
    r"""The ramp scale ``s`` (V per weight unit per Hz) of ``V(x) = s sum_i dw_i r_i(x)``.

    Milstein et al. 2021 (eLife 10:e73046) fix ``s`` by asking that weight changes of peak
    ``ref_peak_delta_weight`` (1.5), spread over ``ref_width`` (108 cm), give a ramp of peak
    ``ref_peak_ramp`` (6 mV). Their published code has two versions:

    ``method="lsa"`` (default), the calibration their model fits use (``calibrate_ramp_scaling_
    factor`` in ``biBTSP_utils.py``, run by ``get_LSA_weights_biBTSP.py``, whose result the
    fits read as ``calibrated_input/<field width>/ramp_scaling_factor``): the target is the
    Gaussian ramp ``T(x) = 6 mV exp(-((x - L/2)/sigma)^2)``, ``sigma = 108 cm / (3 sqrt 2)``;
    the weights ``dw`` that produce it are found by the regularised least squares of
    :func:`fit_ramp_weights` (bounds ``[0, 3]``, smoothness 0.005; its scale from a
    Tikhonov-regularised inverse, ``beta = 2 mV``, at the legacy scale), then scaled to
    ``max dw = 1.5``, and

    .. math:: s = \frac{6\,\mathrm{mV}}{\max_x \sum_i dw_i\, r_i(x)}.

    For the default inputs (200 fields, 90 cm, 40 Hz, 187 cm track) ``s = 3.32e-6 V/Hz``.

    ``method="cosine"``: the older calibration (``get_initial_target_ramp_and_scaling_factor``;
    the constant ``ramp_scaling_factor = 2.956E-03`` mV/Hz of their data processing): ``dw`` a
    raised-cosine bump of peak 1.5 and full width 108 cm. Its weights are wider than the
    least-squares ones, so its ``s`` is smaller: ``2.956e-6 V/Hz``, 11 % below, and every ramp
    11 % lower.

    ``n_bins`` spatial bins over the track; the result is cached per track and arguments.
    """
    if not isinstance(cfg, TrackConfig):
        raise TypeError(f"cfg must be a TrackConfig, got {type(cfg).__name__}")
    check_choice("method", method, ("lsa", "cosine"))
    if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 8:
        raise ValueError(f"n_bins must be an int >= 8, got {n_bins!r}")
    for n, v in (
        ("ref_peak_delta_weight", ref_peak_delta_weight),
        ("ref_width", ref_width),
        ("ref_peak_ramp", ref_peak_ramp),
    ):
        check_positive(n, float(v))
    key = (cfg.track_length, cfg.n_inputs, cfg.field_width, cfg.peak_rate)
    return _ramp_scale(
        key, n_bins, float(ref_peak_delta_weight), float(ref_width), float(ref_peak_ramp), method
    )


def _wrap(d: np.ndarray | float, L: float):
    """Signed circular distance in ``[-L/2, L/2)``."""
    return (np.asarray(d) + L / 2) % L - L / 2


def ramp_features(
    ramp: np.ndarray, x: np.ndarray, plateau_x: float, L: float, frac: float = 0.15
) -> dict[str, float]:
    """Features of one ramp on a circular track, after Milstein et al. 2021's
    ``calculate_ramp_features``: baseline = mean of the lowest 10 % of values; peak value (above
    baseline) and location; start and end where the ramp falls to ``frac`` (15 %) of its peak
    above baseline, searched outwards from the peak; ``width = end - start`` (m);
    ``peak_shift`` = peak - plateau position wrapped to ``[-L/2, L/2)`` (negative: before the
    plateau); ``asymmetry = (plateau - start) / (end - plateau)``; ``min_val`` the trough below
    baseline (values in V). ``ramp`` and ``x`` 1-D. A flat ramp (no peak) gives NaN locations,
    width and asymmetry.

    Start, end, shift and asymmetry are the authors'. Two of their features differ:
    their peak value is the ramp's maximum without subtracting the baseline (here
    ``peak_val + baseline``), and their ``ramp_width`` is not the 15 % width but the area under
    the ramp divided by that maximum, returned here as ``area_width = int ramp dx / max ramp``
    (m) over one lap. Their model fits compare model and target ramps with those."""
    ramp = np.asarray(ramp, dtype=float)
    n = ramp.size
    fine = 20 * n
    xf = np.arange(fine) * L / fine
    rf = np.interp(xf, x, ramp, period=L)
    base = rf[rf <= np.percentile(rf, 10.0)].mean()
    r = rf - base
    ip = int(np.argmax(r))
    peak = float(r[ip])
    out = {
        "peak_val": peak,
        "peak_loc": float(xf[ip]),
        "peak_shift": float(_wrap(xf[ip] - plateau_x, L)),
        "min_val": float(rf.min() - base),
        "min_loc": float(xf[int(np.argmin(rf))]),
        "width": float("nan"),
        "asymmetry": float("nan"),
        "start_loc": float("nan"),
        "end_loc": float("nan"),
        "baseline": float(base),
        "area_width": float(rf.mean() * L / rf.max()) if rf.max() > 0 else float("nan"),
    }
    if peak <= 1e-12 * max(1.0, float(np.abs(rf).max())) or peak <= 0:
        out["peak_loc"] = out["peak_shift"] = float("nan")
        return out
    thr = frac * peak
    rolled = np.roll(r, -ip)  # index 0 = peak
    after = np.nonzero(rolled <= thr)[0]
    before = np.nonzero(rolled[::-1] <= thr)[0]
    if after.size == 0 or before.size == 0:
        return out
    d_end = after[0] * L / fine
    d_start = (before[0] + 1) * L / fine
    start, end = xf[ip] - d_start, xf[ip] + d_end
    out["width"] = float(d_start + d_end)
    out["start_loc"] = float(start % L)
    out["end_loc"] = float(end % L)
    pb = plateau_x - start
    pb = pb if 0 <= pb <= L else pb % L
    pa = end - plateau_x
    pa = pa if 0 <= pa <= L else pa % L
    out["asymmetry"] = float(pb / pa) if pa > 0 else float("inf")
    return out


def target_ramp(
    x: np.ndarray,
    plateau_x: float,
    L: float,
    *,
    peak_val: float,
    peak_shift: float,
    width: float,
    asymmetry: float,
    min_val: float = 0.0,
) -> np.ndarray:
    """The synthetic target ramp of Milstein et al. 2021's model fits, at positions ``x`` (m).

    The authors describe an induced place field by four numbers and fit their model to the ramp
    these define (``get_target_synthetic_ramp`` in their published code): two half Gaussians
    meeting at the peak ``plateau_x + peak_shift``, of half widths ``w_l`` (before the peak) and
    ``w_r`` (after), each with ``sigma = 2 w / (3 sqrt 2)`` (so a half width ends where the
    Gaussian is down to ``exp(-4.5)``, 1.1 % of its peak), with

        w_l = asymmetry / (1 + asymmetry) * width + peak_shift
        w_r = width / (1 + asymmetry) - peak_shift

    i.e. ``w_l + w_r = width`` and ``(w_l - peak_shift) / (w_r + peak_shift) = asymmetry``:
    ``width`` is the field's whole extent and ``asymmetry`` the ratio of its extents before and
    after the plateau. The curve is wrapped around the circular track (the copies one track
    length away are added), shifted so that its minimum is ``min_val`` and scaled to peak at
    ``peak_val``.

    Because ``width`` and ``asymmetry`` describe the whole extent, they are not what
    :func:`ramp_features` measures at 15 % of the peak. Compare a model with the target by
    measuring both the same way, ``ramp_features(target_ramp(...), ...)``, as the authors do:
    for their population targets (160 cm, asymmetry 2.2, shift -12.5 cm, on the 187 cm
    track) the 15 % width is about 103 cm (``0.65 width`` without wrapping) and the 15 %
    asymmetry about 2.7.

    All lengths in m, values in V (any unit works if used consistently); returns an array of
    ``x``'s shape.
    """
    check_positive("L", float(L))
    check_positive("width", float(width))
    check_positive("asymmetry", float(asymmetry))
    if not peak_val > min_val:
        raise ValueError(f"peak_val must exceed min_val ({min_val}), got {peak_val}")
    w_l = asymmetry / (1 + asymmetry) * width + peak_shift
    w_r = width / (1 + asymmetry) - peak_shift
    if w_l <= 0 or w_r <= 0:
        raise ValueError(
            f"peak_shift {peak_shift} leaves a half width <= 0 (before the peak {w_l}, after "
            f"{w_r}); |peak_shift| must be smaller than both width shares"
        )
    x = np.asarray(x, dtype=float)
    peak_x = plateau_x + peak_shift
    out = np.zeros_like(x)
    for n in (-1, 0, 1):  # the field and its copies one track length away
        d = x + n * L - peak_x
        sigma = np.where(d <= 0, w_l, w_r) * (2.0 / (3.0 * math.sqrt(2.0)))
        out += np.exp(-((d / sigma) ** 2))
    out -= out.min()
    return min_val + (peak_val - min_val) * out / out.max()


_FEATURES = {
    "peak_val": ("V", "ramp peak above baseline"),
    "peak_loc": ("m", "ramp peak location"),
    "peak_shift": ("m", "ramp peak minus plateau position (negative: before the plateau)"),
    "width": ("m", "ramp width between the 15 % crossings"),
    "asymmetry": ("1", "ramp rise length / decay length around the plateau position"),
    "min_val": ("V", "ramp trough below baseline"),
}


def _batched_rule(rule, params: Mapping[str, Sequence[float]] | None, dtype):
    if isinstance(rule, str):
        if rule not in ("milstein", "primer"):
            raise ValueError(f"rule must be 'milstein', 'primer' or a rule object, got {rule!r}")
        rule = MilsteinBTSP.from_table() if rule == "milstein" else PrimerBTSP()
    if not isinstance(rule, (MilsteinBTSP, PrimerBTSP)):
        raise TypeError(
            "rule must be 'milstein', 'primer', MilsteinBTSP or PrimerBTSP, "
            f"got {type(rule).__name__}"
        )
    B = None
    for f in rule.param_names():
        v = getattr(rule, f)
        if isinstance(v, torch.Tensor):
            B = v.shape[0] if B is None else B
    if params:
        if not isinstance(params, Mapping):
            raise TypeError(
                f"params must be a mapping name -> sequence, got {type(params).__name__}"
            )
        bad = set(params) - set(rule.param_names())
        if bad:
            raise ValueError(f"unknown parameter(s) {sorted(bad)}; allowed: {rule.param_names()}")
        lens = {k: len(v) for k, v in params.items()}
        if len(set(lens.values())) != 1:
            raise ValueError(f"params sequences must share one length (the batch), got {lens}")
        n = next(iter(lens.values()))
        if n == 0 or (B is not None and B != n):
            raise ValueError(f"params have length {n}; need >= 1 and equal to the rule's batch {B}")
        B = n
        rule = rule.with_params(
            **{
                k: torch.as_tensor(np.asarray(v, dtype=float), dtype=dtype)
                for k, v in params.items()
            }
        )
    return rule, (1 if B is None else B)


def btsp_induction(
    rule: str | MilsteinBTSP | PrimerBTSP = "milstein",
    params: Mapping[str, Sequence[float]] | None = None,
    *,
    plateau_positions: Sequence[float] = (0.935,),
    initial_weights: torch.Tensor | None = None,
    track: TrackConfig | None = None,
    dt: float = 0.01,
    n_bins: int = 100,
    scale: float | None = None,
    dtype: torch.dtype = torch.float64,
) -> xr.Dataset:
    """Run BTSP induction laps, one plateau per lap, for a batch of parameter sets.

    Parameters
    ----------
    rule : ``"milstein"`` (population fit of the shipped table), ``"primer"`` (``PrimerBTSP()``:
        ``eta = 1/s`` and Milstein's time constants; see
        :func:`synaptic_fwp.models.btsp_ca1.calibrated_primer` for an ``eta`` matched to
        Milstein's one-lap change) or a rule object (parameters may already be ``(B,)`` tensors).
    params : optional sweep, parameter name -> sequence of ``B`` values (SI units), e.g.
        ``{"tau_et": [0.5, 1.0, 2.0]}``.
    plateau_positions : plateau onset position (m) in each induction lap, in order; e.g.
        ``[0.935] * 3 + [0.2] * 3`` for a field induction then a translocation.
    initial_weights : ``(n_inputs,)`` or ``(B, n_inputs)`` (baseline 1); ones if omitted.
    track : :class:`TrackConfig` (Milstein et al. 2021's defaults).
    dt : time step (s) of the within-lap integrals (rounded so a lap is a whole number of steps).
    n_bins : spatial bins of the ramp.
    scale : ramp scale (V per weight unit per Hz); :func:`ramp_scale` if omitted.

    Returns
    -------
    xarray.Dataset with dims ``batch``, ``lap`` (0 = before induction), ``pre``, ``position``:
    ``weight (batch, lap, pre)``, ``delta_weight`` (change over the run), ``ramp (batch, lap,
    position)`` in V, ramp features per lap (``peak_val``, ``peak_shift``, ``width``,
    ``asymmetry``, ...; relative to that lap's plateau, lap 0 to the first one), and
    ``time_from_plateau (pre)``: when each input's field centre passes relative to the first
    plateau onset (s; the plasticity kernel's time axis). Swept parameters are coordinates on
    ``batch``.
    """
    cfg = track if track is not None else TrackConfig()
    if not isinstance(cfg, TrackConfig):
        raise TypeError(f"track must be a TrackConfig, got {type(track).__name__}")
    check_positive("dt", float(dt))
    if dt > cfg.lap_duration / 10:
        raise ValueError(
            f"dt must be at most a tenth of a lap ({cfg.lap_duration / 10} s), got {dt}"
        )
    if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 8:
        raise ValueError(f"n_bins must be an int >= 8, got {n_bins!r}")
    pos = [float(p) for p in plateau_positions]
    if not pos:
        raise ValueError("plateau_positions must hold at least one position (m), got []")
    for p in pos:
        check_range("plateau_positions", p, 0.0, cfg.track_length)
    rule, B = _batched_rule(rule, params, dtype)
    n = cfg.n_inputs
    if initial_weights is None:
        W = torch.ones(B, n, dtype=dtype)
    else:
        if not isinstance(initial_weights, torch.Tensor):
            raise TypeError(
                f"initial_weights must be a torch.Tensor, got {type(initial_weights).__name__}"
            )
        if initial_weights.shape not in ((n,), (B, n)):
            raise ValueError(
                f"initial_weights has shape {tuple(initial_weights.shape)}; "
                f"allowed ({n},) or ({B}, {n})"
            )
        W = initial_weights.to(dtype).expand(B, n).clone()
    s = ramp_scale(cfg, n_bins) if scale is None else float(scale)

    N = max(int(round(cfg.lap_duration / dt)), 10)
    h = cfg.lap_duration / N
    t = torch.arange(N, dtype=dtype) * h
    IS = instructive_signal(t, cfg.plateau_duration, rule.tau_is)
    IS = IS.expand(B, N) if IS.ndim == 1 else IS
    xb = (torch.arange(n_bins, dtype=dtype) + 0.5) * cfg.track_length / n_bins
    rates_bins = place_rates(xb, cfg)  # (n, n_bins)

    weights = [W]
    for p in pos:
        rates = place_rates(p + cfg.speed * t, cfg).expand(B, n, N)
        et = eligibility_trace(rates, h, rule.tau_et)
        W = rule.lap_update(W, et, IS, h)
        if not bool(torch.isfinite(W).all()):
            raise FloatingPointError(f"non-finite weights after the lap with plateau at {p} m")
        weights.append(W)
    Wl = torch.stack(weights, dim=1)  # (B, laps+1, n)
    ramp = s * ((Wl - 1.0) @ rates_bins)  # (B, laps+1, n_bins)

    rnp, xnp = ramp.numpy(), xb.numpy()
    lap_pos = [pos[0], *pos]
    feats = {k: np.full((B, len(lap_pos)), np.nan) for k in _FEATURES}
    for b in range(B):
        for lap, p in enumerate(lap_pos):
            f = ramp_features(rnp[b, lap], xnp, p, cfg.track_length)
            for k in _FEATURES:
                feats[k][b, lap] = f[k]

    centers = input_centers(cfg, dtype).numpy()
    t_from = _wrap(centers - pos[0], cfg.track_length) / cfg.speed
    ds = xr.Dataset(
        {
            "weight": (
                ("batch", "lap", "pre"),
                Wl.numpy(),
                {"units": "1", "long_name": "CA3->CA1 weight (baseline 1) after each lap"},
            ),
            "delta_weight": (
                ("batch", "pre"),
                (Wl[:, -1] - Wl[:, 0]).numpy(),
                {"units": "1", "long_name": "weight change over all induction laps"},
            ),
            "ramp": (
                ("batch", "lap", "position"),
                rnp,
                {"units": "V", "long_name": "CA1 depolarisation ramp s * sum_i (W_i - 1) r_i(x)"},
            ),
            "time_from_plateau": (
                ("pre",),
                t_from,
                {
                    "units": "s",
                    "long_name": "time the input's field centre passes minus first plateau onset",
                },
            ),
            **{
                k: (("batch", "lap"), feats[k], {"units": u, "long_name": ln})
                for k, (u, ln) in _FEATURES.items()
            },
        },
        coords={
            "batch": np.arange(B),
            "lap": np.arange(len(lap_pos)),
            "pre": np.arange(n),
            "position": ("position", xnp, {"units": "m", "long_name": "track position"}),
            "input_center": ("pre", centers, {"units": "m", "long_name": "input field centre"}),
            "plateau_position": (
                "lap",
                np.array(lap_pos),
                {"units": "m", "long_name": "plateau onset position of the lap (lap 0: first)"},
            ),
        },
        attrs={
            "rule": rule.name,
            "rule_source": rule.source,
            "dt": h,
            "ramp_scale_V_per_Hz": s,
            **cfg.attrs(),
            **{
                f"param_{k}": float(v)
                for k in rule.param_names()
                if not isinstance(v := getattr(rule, k), torch.Tensor) and math.isfinite(float(v))
            },
        },
    )
    for k in rule.param_names():
        v = getattr(rule, k)
        if isinstance(v, torch.Tensor):
            ds = ds.assign_coords({k: ("batch", v.numpy(), {"units": _PARAM_UNITS.get(k, "1")})})
    return ds


_PARAM_UNITS = {"tau_et": "s", "tau_is": "s", "k_pot": "1/s", "k_dep": "1/s", "eta": "1/s"}
