"""Event-driven simulation of one synapse per instance under a spike protocol.

Protocols that are almost empty in time (pairing at 0.1 Hz is 600 s with 120 spikes) are run
from event to event: between events every rule is advanced with ``rule.advance(W, state, dt)``
(exact exponential decay of traces; the documented scheme of calcium rules), at events with
``rule.on_pre`` / ``rule.on_post``. Spike events are merged and sorted ONCE per protocol (numpy,
stable: a presynaptic event precedes a coincident postsynaptic one, Brian2's order), then the
same event loop runs for every parameter set at once: instances form a ``(P, G)`` batch
(parameter sets x protocols), and each loop iteration handles event ``k`` of every protocol.
The cost is ``O(events)`` vectorised steps, independent of the biological duration.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import torch

from ..plasticity.base import SpikingRule

__all__ = ["merge_events", "run_events", "batch_rule"]

SMALL = 1_000_000  # below this many synapses the event loop runs single-threaded


def merge_events(
    pre_times: Sequence[np.ndarray],
    post_times: Sequence[np.ndarray],
    pre_delay: float = 0.0,
    post_delay: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merge per-protocol pre and post spike times into sorted event arrays.

    Returns ``(dt, is_pre, is_post)`` of shape ``(G, S)``: the interval before each event slot
    (the first from ``t = 0``), and 0/1 masks. Slots without a spike (``dt = 0``) pad shorter
    protocols and align the protocols on alternating pre/post slots (see the code).
    Presynaptic events are delivered at ``t + pre_delay``, postsynaptic ones at
    ``t + post_delay`` (the rule's ``pre_delay`` / ``post_delay``). Coincident events stay
    separate (pre first).
    """
    G = len(pre_times)
    rows = []
    for g in range(G):
        tp = np.asarray(pre_times[g], float) + pre_delay
        tq = np.asarray(post_times[g], float) + post_delay
        t = np.concatenate([tp, tq])
        kind = np.concatenate([np.zeros(tp.size, int), np.ones(tq.size, int)])
        order = np.lexsort((kind, t))  # by time, then pre (0) before post (1)
        rows.append((t[order], kind[order]))
    for g, (t, _) in enumerate(rows):
        if t.size and t[0] < -1e-12:
            raise ValueError(f"spike times must be >= 0, got {t[0]} in protocol {g}")
    rows = [(np.maximum(t, 0.0), kind) for t, kind in rows]
    E = max(r[0].size for r in rows)
    # Slot alignment: put every protocol's events on a common alternating template
    # (pre, post, pre, post, ...), inserting empty zero-length slots where a protocol's next
    # event is of the other kind. When the protocols alternate (pairing protocols, whatever the
    # sign of the delay) every slot then holds one kind only, and the event loop calls only
    # that kind's update: half the work of mixed slots. Used when it adds <= 10% slots.
    slots = []
    for t, kind in rows:
        pos, out = 0, []
        for i in range(t.size):
            if pos % 2 != kind[i]:
                pos += 1
            out.append(pos)
            pos += 1
        slots.append(np.asarray(out, int))
    S = max((s_[-1] + 1 if s_.size else 0) for s_ in slots)
    aligned = S <= max(1.1 * E, E + 1)
    width = S if aligned else E
    dt = np.zeros((G, width))
    is_pre = np.zeros((G, width))
    is_post = np.zeros((G, width))
    for g, (t, kind) in enumerate(rows):
        col = slots[g] if aligned else np.arange(t.size)
        dt[g, col] = np.diff(t, prepend=0.0)
        is_pre[g, col] = kind == 0
        is_post[g, col] = kind == 1
    return dt, is_pre, is_post


def batch_rule(rule: SpikingRule, n_extra: int) -> SpikingRule:
    """A copy of ``rule`` whose tensor parameters get ``n_extra`` trailing singleton dims, so a
    parameter of shape ``(P,)`` broadcasts over a batch ``(P, G...)``."""
    changes = {}
    for f in dataclasses.fields(rule):
        v = getattr(rule, f.name)
        if isinstance(v, torch.Tensor):
            changes[f.name] = v.reshape(v.shape + (1,) * n_extra)
    return dataclasses.replace(rule, **changes) if changes else rule


def run_events(
    rule: SpikingRule,
    W0: torch.Tensor,
    dt: np.ndarray,
    is_pre: np.ndarray,
    is_post: np.ndarray,
    *,
    state: dict[str, torch.Tensor] | None = None,
    tail: float | np.ndarray = 0.0,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Run the sorted events of :func:`merge_events` on one synapse per instance.

    ``W0``: ``(..., G, 1, 1)`` (any leading batch dims, then the protocol dim ``G``). ``rule``
    parameters must already broadcast against the batch ``(..., G)`` (see :func:`batch_rule`).
    ``tail``: time (s) to advance after the last event (per protocol or scalar), e.g. to let
    calcium decay. Returns the final ``W`` and state.
    """
    G, E = dt.shape
    if W0.shape[-3] != G or W0.shape[-2:] != (1, 1):
        raise ValueError(
            f"W0 must have shape (..., G={G}, 1, 1), got {tuple(W0.shape)}"
        )
    opts = dict(dtype=W0.dtype, device=W0.device)
    dt_t = torch.as_tensor(dt, **opts)
    pre_t = torch.as_tensor(is_pre, **opts).unsqueeze(-1)  # (G, E, 1): n_pre = 1
    post_t = torch.as_tensor(is_post, **opts).unsqueeze(-1)
    any_pre = is_pre.any(axis=0)
    any_post = is_post.any(axis=0)
    uniform_dt = np.all(dt == dt[:1], axis=0)
    W = W0
    st = rule.init_state(W0) if state is None else state
    # Each step works on a small batch: intra-op threading only adds latency (and on a loaded
    # machine a lot of it), so run single-threaded below SMALL elements and restore afterwards.
    n_threads = torch.get_num_threads()
    if W0.device.type == "cpu" and W0.numel() < SMALL:
        torch.set_num_threads(1)
    try:
        if hasattr(rule, "decay_factors") and not rule.has_continuous_dynamics:
            # Trace rules: a protocol grid has few distinct inter-event intervals (a pairing
            # protocol: d and T - d), so compute exp(-dt/tau) once per distinct interval,
            # (batch..., U) per trace, and gather the (batch..., G) factors of each event.
            uniq, inv = np.unique(dt, return_inverse=True)
            inv = torch.as_tensor(inv.reshape(G, E), device=W0.device)
            nb = W0.ndim - 3
            u_t = torch.as_tensor(uniq, **opts).reshape((1,) * nb + (uniq.size,))
            fac = rule.decay_factors(u_t)  # (batch.., U)
            fac = {n: f.movedim(-1, 0).contiguous() for n, f in fac.items()}  # (U, batch..)
            for k in range(E):
                idx = inv[:, k]  # row gathers: (G, batch..) -> view (batch.., G)
                st = rule.scale(st, {n: f[idx].movedim(0, -1) for n, f in fac.items()},
                                flush=k % 3 == 0)
                if any_pre[k]:
                    W, st = rule.on_pre(W, st, pre_t[:, k])
                if any_post[k]:
                    W, st = rule.on_post(W, st, post_t[:, k])
            E = 0  # done
        for k in range(E):
            step = float(dt[0, k]) if uniform_dt[k] else dt_t[:, k]
            if not (isinstance(step, float) and step == 0.0):
                W, st = rule.advance(W, st, step)
            if any_pre[k]:
                W, st = rule.on_pre(W, st, pre_t[:, k])
            if any_post[k]:
                W, st = rule.on_post(W, st, post_t[:, k])
        tail_a = np.broadcast_to(np.asarray(tail, float), (G,))
        if np.any(tail_a > 0):
            same = np.all(tail_a == tail_a[0])
            step = float(tail_a[0]) if same else torch.as_tensor(tail_a, **opts)
            W, st = rule.advance(W, st, step)
    finally:
        torch.set_num_threads(n_threads)
    return W, st
