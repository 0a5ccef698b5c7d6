r"""Spike-pairing protocols: ``n_pairs`` pre/post pairings over grids of delays and frequencies.

Protocol (Markram et al. 1997; Sjostrom et al. 2001; Pfister & Gerstner 2006): presynaptic
spikes at ``t_m = m / freq`` (``m = 0 .. n_pairs-1``), postsynaptic spikes at ``t_m + dt``
(``dt > 0``: pre before post). Every (parameter set, frequency, delay) is an independent
synapse; all run in ONE batched, event-driven call (:mod:`.events`): the events of each
protocol are sorted once, then one loop over the ``2 n_pairs`` events advances every instance
with the rule's exact inter-event evolution. Cost: ``O(n_pairs)`` vectorised steps whatever
the frequency (0.1 Hz, 600 s of biological time, costs the same as 50 Hz).

Readout (Pfister & Gerstner 2006, Methods and Fig. 4): the weight starts at ``w0`` (default 1)
and the reported change is the relative change ``dw = (w_end - w0) / w0``; with ``w0 = 1`` and
the additive triplet rule this is the summed increments, compared directly with the fractional
change (after/before - 1) of Sjostrom et al. 2001.

For the Graupner-Brunel rule the published readout is used instead (Graupner & Brunel 2012,
Eq. 4 and Methods): each synapse starts DOWN (``rho = 0``) and UP (``rho = 1``), the state at the
end (after the calcium has decayed) is UP if ``rho > rho_star``; ``U`` (DOWN->UP) and ``D``
(UP->DOWN) are the fractions over ``n_trials`` noisy trials, and the synaptic change is
``[beta(1-U) + (1-beta) D + b(beta U + (1-beta)(1-D))] / (beta + (1-beta) b)``, reported as
``change`` (ratio after/before) and ``dw = change - 1``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import xarray as xr

from .._validation import check_choice
from ..plasticity.base import SpikingRule
from .events import batch_rule, merge_events, run_events

__all__ = ["pairing", "pairing_events", "rule_batch_shape", "rule_attrs", "simulate_protocols",
           "finish_dataset", "check_common"]


def _as_1d(name: str, x: float | Sequence[float] | np.ndarray, positive: bool = False):
    a = np.atleast_1d(np.asarray(x, dtype=float))
    if a.ndim != 1 or a.size == 0:
        raise ValueError(f"{name} must be a number or a non-empty 1-D sequence, got {x!r}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be finite, got {a.tolist()}")
    if positive and np.any(a <= 0):
        raise ValueError(f"{name} must be > 0, got {a.tolist()}")
    return a


def _check_rule(rule: object) -> None:
    if not isinstance(rule, SpikingRule):
        raise TypeError(
            "rule must be a spiking rule from synaptic_fwp.plasticity (PairSTDP, TripletSTDP, "
            f"GraupnerBrunel, ShouvalCalcium, ...), got {type(rule).__name__}"
        )


def rule_batch_shape(rule: SpikingRule) -> tuple[int, ...]:
    """Shape of the per-instance parameters of ``rule`` (``()`` if all are floats); at most 1-D."""
    import dataclasses

    shapes = [getattr(rule, f.name).shape for f in dataclasses.fields(rule)
              if isinstance(getattr(rule, f.name), torch.Tensor)]
    try:
        shape = tuple(torch.broadcast_shapes(*shapes)) if shapes else ()
    except RuntimeError as e:
        raise ValueError(f"per-instance rule parameters must share one shape (P,): {e}") from e
    if len(shape) > 1:
        raise ValueError(
            f"per-instance rule parameters must be 1-D (one entry per parameter set), got {shape}"
        )
    return shape


def rule_attrs(rule: SpikingRule) -> dict[str, object]:
    """Scalar rule parameters as Dataset attrs (NetCDF-safe); per-instance ones as coords."""
    import dataclasses

    out: dict[str, object] = {"rule": rule.name}
    for f in dataclasses.fields(rule):
        v = getattr(rule, f.name)
        if isinstance(v, (int, float, str)) and not isinstance(v, bool):
            out[f"rule_{f.name}"] = v
        elif v is None:
            out[f"rule_{f.name}"] = "None"
    return out


def pairing_events(
    delays: np.ndarray, freqs: np.ndarray, n_pairs: int, pre_delay: float = 0.0,
    post_delay: float = 0.0,
):
    """Sorted event arrays for the grid (freq x delay), flattened as ``G = F * D`` protocols.

    Times are shifted so that the first event of each protocol is at ``t = 0``.
    """
    pre, post = [], []
    for f in freqs:
        for d in delays:
            t = np.arange(n_pairs) / f
            tp, tq = t, t + d
            t0 = min(tp[0] + pre_delay, tq[0] + post_delay)
            pre.append(tp - t0)
            post.append(tq - t0)
    return merge_events(pre, post, pre_delay, post_delay)


def simulate_protocols(
    rule: SpikingRule,
    ev: tuple[np.ndarray, np.ndarray, np.ndarray],
    dims: tuple[str, ...],
    grid: tuple[int, ...],
    *,
    w0: float,
    n_trials: int,
    seed: int,
    dtype: torch.dtype,
    device: str | torch.device,
) -> tuple[dict, bool]:
    """Run the sorted events ``ev`` (``G = prod(grid)`` protocols) for every parameter set of
    ``rule`` and read out the weight change (module docstring); returns the Dataset variables
    over ``("param", *dims)`` and whether the Graupner-Brunel readout was used."""
    pshape = rule_batch_shape(rule)
    P = pshape[0] if pshape else 1
    G = int(np.prod(grid))
    is_gb = bool(getattr(rule, "bistable", False))  # Graupner-Brunel: published readout
    opts = dict(dtype=dtype, device=device)
    if not is_gb:
        r = batch_rule(rule, 1)  # params (P,) -> (P, 1) against the batch (P, G)
        # Additive trace rules (no bounds, W constant between spikes): the increments do not
        # depend on W, so run from 0 and add w0 afterwards: dw keeps full relative precision.
        additive = rule.bounds == "none" and not rule.has_continuous_dynamics
        W0 = torch.full((P, G, 1, 1), 0.0 if additive else float(w0), **opts)
        W, _ = run_events(r, W0, *ev, tail=getattr(rule, "settle_time", 0.0))
        if additive:
            dw = W.reshape(P, *grid) / w0
            w_end = w0 + W.reshape(P, *grid)
        else:
            w_end = W.reshape(P, *grid)
            dw = (w_end - w0) / w0
        data = {
            "dw": (("param", *dims), dw.cpu().numpy(),
                   {"units": "1", "long_name": "relative weight change (w_end - w0)/w0"}),
            "w_final": (("param", *dims), w_end.cpu().numpy(),
                        {"units": "1", "long_name": "final weight"}),
        }
    else:
        # batch (P, trial, initial, G); initial 0 = DOWN (rho 0), 1 = UP (rho 1)
        r = batch_rule(rule, 3)
        W0 = torch.zeros((P, n_trials, 2, G, 1, 1), **opts)
        W0[:, :, 1] = 1.0
        keys = _gb_keys(seed, P, n_trials, G, device)
        st = r.init_state(W0, keys=keys)
        W, _ = run_events(r, W0, *ev, state=st, tail=r.settle_time)
        rho = W.reshape(P, n_trials, 2, *grid)
        rho_star = r.rho_star if not isinstance(r.rho_star, torch.Tensor) else \
            r.rho_star.reshape((P, 1, 1) + (1,) * len(grid))
        up = (rho > (rho_star if not isinstance(rho_star, torch.Tensor)
                     else rho_star.to(rho))).to(dtype)
        U = up[:, :, 0].mean(1)          # P(DOWN -> UP)
        Dn = (1.0 - up[:, :, 1]).mean(1)  # P(UP -> DOWN)
        change = rule.synaptic_change(U, Dn, param_shape=(P,) + (1,) * len(grid))
        sem_u = up[:, :, 0].std(1, correction=1) / np.sqrt(n_trials) if n_trials > 1 else U * 0
        data = {
            "dw": (("param", *dims), (change - 1.0).cpu().numpy(),
                   {"units": "1", "long_name": "relative synaptic change (change - 1)"}),
            "change": (("param", *dims), change.cpu().numpy(),
                       {"units": "1", "long_name": "synaptic strength after/before (GB Eq. 4)"}),
            "U": (("param", *dims), U.cpu().numpy(),
                  {"units": "1", "long_name": "DOWN->UP transition probability"}),
            "U_sem": (("param", *dims), sem_u.cpu().numpy(),
                      {"units": "1", "long_name": "standard error of U over trials"}),
            "D": (("param", *dims), Dn.cpu().numpy(),
                  {"units": "1", "long_name": "UP->DOWN transition probability"}),
            "rho_final": (("param", "trial", "initial", *dims), rho.cpu().numpy(),
                          {"units": "1", "long_name": "efficacy rho at the end"}),
        }
    return data, is_gb


def pairing(
    rule: SpikingRule,
    dt: float | Sequence[float] = (-0.01, 0.01),
    freq: float | Sequence[float] = 1.0,
    n_pairs: int = 60,
    *,
    w0: float = 1.0,
    n_trials: int = 1,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device = "cpu",
) -> xr.Dataset:
    """Run ``n_pairs`` pairings for every (parameter set, freq, dt) in one batched call.

    Parameters
    ----------
    rule : a spiking rule; tensor parameters of shape ``(P,)`` give ``P`` parameter sets
        (dimension ``param`` of the result), e.g. 1000 triplet sets x the grid in one call.
    dt : pairing delays ``t_post - t_pre`` in seconds (coordinate ``dt_pair``).
    freq : pairing frequencies in Hz (coordinate ``freq``).
    n_pairs : number of pairings (Pfister & Gerstner / Sjostrom: 60).
    w0 : initial weight (trace rules; readout ``dw = (w_end - w0)/w0``).
    n_trials, seed : independent noisy trials of stochastic rules (Graupner-Brunel with
        ``sigma > 0``; dimension ``trial``); trial ``i`` of parameter set ``p`` is seeded from
        ``(seed, p, i, protocol)`` only, so it does not depend on the rest of the batch.

    Returns an ``xarray.Dataset`` with ``dw`` (relative change), ``w_final`` and, for
    Graupner-Brunel, ``rho_final``, ``U``, ``D`` and ``change``; dims ``(param?, freq, dt_pair)``.
    """
    check_common(rule, n_trials, dtype, w0)
    delays = _as_1d("dt", dt)
    freqs = _as_1d("freq", freq, positive=True)
    _check_count("n_pairs", n_pairs)
    F, D = freqs.size, delays.size
    ev = pairing_events(delays, freqs, int(n_pairs), float(rule.pre_delay),
                        float(getattr(rule, "post_delay", 0.0)))
    data, is_gb = simulate_protocols(rule, ev, ("freq", "dt_pair"), (F, D), w0=w0,
                                     n_trials=n_trials, seed=seed, dtype=dtype, device=device)
    coords = {
        "freq": ("freq", freqs, {"units": "Hz", "long_name": "pairing frequency"}),
        "dt_pair": ("dt_pair", delays,
                    {"units": "s", "long_name": "pairing delay t_post - t_pre"}),
    }
    return finish_dataset(rule, data, coords, is_gb, n_trials, {
        "protocol": "pairing", "n_pairs": int(n_pairs), "w0": float(w0),
        "n_trials": int(n_trials), "seed": int(seed)})


def _check_count(name: str, n: object) -> None:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {n!r}")


def check_common(rule: object, n_trials: object, dtype: object, w0: object) -> None:
    """Checks shared by the protocols (before any work)."""
    _check_rule(rule)
    _check_count("n_trials", n_trials)
    check_choice("dtype", dtype, [torch.float32, torch.float64])
    if isinstance(w0, bool) or not (isinstance(w0, (int, float)) and np.isfinite(w0) and w0 > 0):
        raise ValueError(f"w0 must be a finite number > 0, got {w0!r}")
    if n_trials != 1 and not getattr(rule, "stochastic", False):
        raise ValueError(
            f"n_trials must be 1 for a deterministic rule ({rule.name!r}), got {n_trials}"
        )
    rule_batch_shape(rule)


def finish_dataset(
    rule: SpikingRule, data: dict, coords: dict, is_gb: bool, n_trials: int, attrs: dict
) -> xr.Dataset:
    """Assemble the protocol result: coords, per-instance parameters, attrs (DESIGN.md)."""
    import dataclasses

    from .. import __version__

    pshape = rule_batch_shape(rule)
    P = pshape[0] if pshape else 1
    coords = {**coords,
              "param": ("param", np.arange(P), {"units": "1", "long_name": "parameter set"})}
    if is_gb:
        coords["initial"] = ("initial", np.array(["DOWN", "UP"]), {"long_name": "initial state"})
        coords["trial"] = ("trial", np.arange(n_trials), {"long_name": "noisy trial"})
    ds = xr.Dataset(data, coords=coords)
    for f in dataclasses.fields(rule):  # per-instance parameters become coordinates
        v = getattr(rule, f.name)
        if isinstance(v, torch.Tensor) and v.ndim == 1:
            ds = ds.assign_coords({f.name: ("param", v.detach().cpu().numpy().astype(float),
                                            {"long_name": f"rule parameter {f.name} (SI)"})})
    if not pshape:
        ds = ds.squeeze("param", drop=True)
    ds.attrs.update(rule_attrs(rule))
    ds.attrs.update(attrs)
    ds.attrs.update({
        "source": rule.source, "version": __version__,
        "simulation": "event-driven, exact inter-event evolution (synaptic_fwp.protocols.events)",
    })
    return ds


def _gb_keys(seed: int, P: int, n_trials: int, G: int, device) -> torch.Tensor:
    """Per-instance noise keys ``(P, trial, initial, G)`` from (seed, p, trial, initial, g)."""
    from ..plasticity.calcium import hash_keys

    p = torch.arange(P, device=device).reshape(P, 1, 1, 1)
    i = torch.arange(n_trials, device=device).reshape(1, n_trials, 1, 1)
    s = torch.arange(2, device=device).reshape(1, 1, 2, 1)
    g = torch.arange(G, device=device).reshape(1, 1, 1, G)
    return hash_keys(seed, p, i, s, g)
