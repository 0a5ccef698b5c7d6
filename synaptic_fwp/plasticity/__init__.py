r"""Spiking and elementwise plasticity rules (the second rule vocabulary of DESIGN.md).

Each rule is defined ONCE here; the time-stepped engine (``synaptic_fwp.engine``), the
event-driven protocols (``synaptic_fwp.protocols.pairing`` / ``.frequency``), the fused spiking
kernel and the Brian2 export all use these definitions.

The interface (every rule implements it; see :class:`SpikingRule`)
------------------------------------------------------------------
A rule is a frozen dataclass with SI parameters (seconds; amplitudes dimensionless, in units of
the weight). Every parameter may be a Python float or a tensor of the *batch* shape (the leading
dims ``...`` of ``W``; e.g. ``(B,)`` for 1000 parameter sets): the rule broadcasts it against
the traces itself (``(..., n_pre)``, ``(..., n_post)``, ``(..., n_post, n_pre)``). Classmethods
build a rule from the shipped published tables (``from_table(...)``; see :mod:`.params`).

``W`` has shape ``(..., n_post, n_pre)``. Methods act on torch tensors and never modify their
inputs in place (they return new tensors), so autograd and checkpointing are safe:

``init_state(W) -> dict[str, Tensor]``
    Zero traces: presynaptic traces ``(..., n_pre)``, postsynaptic traces ``(..., n_post)``,
    per-synapse variables ``(..., n_post, n_pre)`` as the rule needs. Keys are listed in
    ``rule.state_shapes`` (``{"name": "pre" | "post" | "syn"}``).

``decay(state, dt) -> state``
    Exact evolution of the traces over an interval ``dt`` (seconds) without spikes
    (``x <- x exp(-dt / tau)``). ``dt`` is a float or a tensor of the batch shape (event-driven
    use: each instance may advance by a different interval).

``advance(W, state, dt) -> (W, state)``
    Exact (or documented) evolution of weights *and* state over ``dt`` without spikes. For trace
    rules (STDP) ``W`` is constant between spikes and this is ``(W, decay(state, dt))``. Rules with
    continuous dynamics between spikes (calcium rules) document their scheme in their class
    docstring; ``has_continuous_dynamics`` says which kind a rule is. Noisy rules take
    ``noise_key`` (see :mod:`.calcium`).

``on_pre(W, state, pre) -> (W, state)``
``on_post(W, state, post) -> (W, state)``
    The jump at a presynaptic spike (``pre``: ``(..., n_pre)`` 0/1 float mask) or postsynaptic
    spike (``post``: ``(..., n_post)``). Order inside one call, as in Brian2's ``on_pre`` /
    ``on_post`` code and in Pfister & Gerstner 2006: the weight update is computed from the
    traces *just before* the spike (``t - 0``), then the spiking side's own traces jump.
    Coincident pre and post spikes: call ``on_pre`` first, then ``on_post`` (Brian2's default
    pathway order), so the post update sees the pre trace that already includes the new spike.

``clip(W) -> W``
    Applies the rule's weight bounds ``w_min``, ``w_max`` with ``bounds`` in
    ``{"hard", "soft", "none"}``: ``"hard"`` clips after every update, ``"soft"`` multiplies
    potentiation by ``(w_max - W)`` and depression by ``(W - w_min)`` (and clips), ``"none"``
    leaves the weight unbounded (the additive Pfister-Gerstner rule; needed for the closed forms).

``pre_delay`` (and optional ``post_delay``, default 0)
    Seconds between a presynaptic spike and its effect on the synapse (Graupner-Brunel's
    presynaptic calcium delay ``D``; 0 for STDP). Callers deliver ``on_pre`` at ``t_pre +
    pre_delay`` and ``on_post`` at ``t_post + post_delay`` (Shouval's BPAP delay).

Optional attributes used by the protocols: ``settle_time`` (s to advance after the last event
so continuous dynamics finish), ``stochastic`` (noisy rule: trials make sense), ``bistable``
(Graupner-Brunel: read out by transition probabilities). Trace rules also expose ``taus``
(trace name -> time constant), ``decay_factors(dt)`` and ``scale(state, factors)`` with
``decay(state, dt) == scale(state, decay_factors(dt))``, which the event-driven protocols use
to compute each distinct ``exp(-dt/tau)`` once, and ``batch_shape()``.

Noise (Graupner-Brunel) is drawn from a counter-based hash of a per-instance key
(``init_state(W, keys=...)``), so instance ``b`` gets the same result whatever the batch.

Rules
-----
- :class:`PairSTDP` (``stdp.py``): pair STDP, all-to-all or nearest-spike (Song, Miller & Abbott
  2000; Bi & Poo 1998; van Rossum et al. 2000 for soft bounds).
- :class:`TripletSTDP` (``stdp.py``): Pfister & Gerstner 2006, all published sets, and
  :func:`triplet_bcm_rate` its rate-based (BCM) form.
- :class:`InhibitorySTDP` (``stdp.py``): Vogels et al. 2011's inhibitory STDP, which sets the
  postsynaptic rate to a target (E/I balance).
- :class:`GraupnerBrunel` (``calcium.py``): bistable calcium synapse of Graupner & Brunel 2012.
- :class:`ShouvalCalcium` (``calcium.py``): calcium control of Shouval, Bear & Cooper 2002.
"""

from __future__ import annotations

import importlib

from .base import SpikingRule  # noqa: F401  (re-exported)

_WHERE = {
    "PairSTDP": ".stdp",
    "TripletSTDP": ".stdp",
    "InhibitorySTDP": ".stdp",
    "triplet_bcm_rate": ".stdp",
    "GraupnerBrunel": ".calcium",
    "ShouvalCalcium": ".calcium",
    "mg_block": ".calcium",
    "read_table": ".params",
}

__all__ = sorted([*_WHERE, "SpikingRule"])


def __getattr__(name: str):  # lazy: each rule module loads only when used
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
