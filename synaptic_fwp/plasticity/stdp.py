r"""Spike-timing-dependent plasticity with traces: pair STDP, triplet STDP, and the inhibitory
STDP of Vogels et al. 2011.

Pair STDP (Song, Miller & Abbott 2000, Nat Neurosci 3:919; Bi & Poo 1998; the trace form of
Brian2's ``examples/synapses/STDP.py``)::

    pre trace  x (tau_plus),  post trace y (tau_minus),  between spikes dx/dt = -x/tau
    on_pre :  W <- W - A_minus * y ;  x <- x + 1   (all-to-all)  or  x <- 1 (nearest)
    on_post:  W <- W + A_plus  * x ;  y <- y + 1   (all-to-all)  or  y <- 1 (nearest)

Triplet STDP (Pfister & Gerstner 2006, J Neurosci 26:9673, Eqs. 2-4): pre traces ``r1``
(tau_plus), ``r2`` (tau_x); post traces ``o1`` (tau_minus), ``o2`` (tau_y)::

    on_pre :  W <- W - o1 * (A2_minus + A3_minus * r2(t-0)) ;  r1, r2 jump
    on_post:  W <- W + r1 * (A2_plus  + A3_plus  * o2(t-0)) ;  o1, o2 jump

Inhibitory STDP (Vogels, Sprekeler, Zenke, Clopath & Gerstner 2011, Science 334:1569): on an
inhibitory synapse, a symmetric Hebbian window plus a constant depression at each presynaptic
spike, with pre trace ``x`` and post trace ``y`` (both ``tau``)::

    on_pre :  W <- W + eta (y - alpha) ;  x <- x + 1        alpha = 2 rho0 tau
    on_post:  W <- W + eta x           ;  y <- y + 1

For independent Poisson trains the mean drift is ``dW/dt = eta rho_pre (2 tau rho_post -
alpha)``: inhibition grows while the postsynaptic rate exceeds the target ``rho0`` and shrinks
below it, so the rule sets the neuron's rate to ``rho0`` and balances excitation with inhibition.

All-to-all interactions: a trace jumps by 1 at each spike. Nearest-spike interactions
(Pfister & Gerstner's "nearest spike" model): a trace is *reset to 1* at each spike, so it
remembers only the last spike of its neuron (symmetric nearest-neighbour pairing). Amplitudes are
dimensionless increments in units of the weight; with ``bounds="none"`` (the published additive
model) the rule is exactly a sum of exponentials (see :func:`pairing_closed_form`).

Rate (BCM) form of the triplet rule (Pfister & Gerstner 2006, Eq. 6 and the minimal model's BCM
reading): for independent Poisson trains at rates ``rho_x`` (pre) and ``rho_y`` (post)

.. math::
    \frac{d w}{d t} = \rho_x \rho_y \big[A_2^+ \tau_+ - A_2^- \tau_- + A_3^+ \tau_+ \tau_y \rho_y
                      - A_3^- \tau_- \tau_x \rho_x\big]

(all-to-all), a BCM rule in ``rho_y`` with threshold ``theta = (A_2^- tau_- - A_2^+ tau_+) /
(A_3^+ tau_+ tau_y)`` when ``A_3^- = 0``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch

from .._validation import check_choice
from .base import Param, apply_bounds, check_bounds, check_param, expand

__all__ = ["PairSTDP", "TripletSTDP", "InhibitorySTDP", "triplet_bcm_rate",
           "pairing_closed_form", "PAIRINGS"]

PAIRINGS = ("all_to_all", "nearest")
_FLUSH = {torch.float64: (-400.0, 1e-120), torch.float32: (-40.0, 1e-19)}
# (smallest log-factor kept, flush threshold) for scale(): after a flush every nonzero trace is
# >= threshold and 3 further factors >= e^lo keep it normal (float64 1e-100 e^-300 = 5e-231).
_SCALE_FLUSH = {torch.float64: (-100.0, 1e-100), torch.float32: (-20.0, 1e-10)}


def _jump(x: torch.Tensor, mask: torch.Tensor, pairing: str) -> torch.Tensor:
    """Trace jump at the spikes in ``mask``: ``x + 1`` (all-to-all) or reset to 1 (nearest)."""
    if pairing == "all_to_all":
        return x + mask
    return x * (1.0 - mask) + mask


def _decay(x: torch.Tensor, dt: Param, tau: Param) -> torch.Tensor:
    """``x exp(-dt/tau)``, exact, except that magnitudes below ``flush`` are set to 0: CPU exp
    and products with subnormal results are ~100x slower. float64: factors below e^-400 count as
    0 and values below 1e-120 are flushed; float32: e^-40 and 1e-19 (effects far below the
    dtype's resolution of an O(1) trace)."""
    lo, flush = _FLUSH.get(x.dtype, (-40.0, 1e-19))
    if isinstance(dt, torch.Tensor) or isinstance(tau, torch.Tensor):
        dt_e = expand(dt, 1, x)
        tau_e = expand(tau, 1, x)
        arg = -torch.as_tensor(dt_e, dtype=x.dtype, device=x.device) / tau_e
        out = x * torch.exp(arg.clamp(min=lo))
    else:
        a = -dt / tau
        out = x * (math.exp(a) if a > lo else 0.0)
    return torch.where(out.abs() < flush, 0.0, out)


def _check_dt(dt: Param) -> None:
    check_param("dt", dt, nonneg=True)


class _TraceRuleMixin:
    """Shared behaviour of trace rules: W is constant between spikes."""

    has_continuous_dynamics = False
    pre_delay = 0.0

    def decay(self, state, dt):
        """Exact decay ``x exp(-dt/tau)`` of every trace over ``dt`` (s; float or batch tensor)."""
        _check_dt(dt)
        return {k: _decay(state[k], dt, tau) for k, tau in self.taus.items()}

    def scale(self, state, factors, flush: bool = True):
        """Multiply each trace by a precomputed decay factor (batch shape) from
        :meth:`decay_factors`; ``decay(state, dt) == scale(state, decay_factors(dt))`` up to the
        flushing of negligible values. The event-driven protocols precompute the factors of all
        events at once. ``flush``: set traces below ``_SCALE_FLUSH`` to 0 (needed at least every
        3rd call so that nothing becomes subnormal, see :func:`_decay`)."""
        out = {}
        for k, x in state.items():
            y = x * factors[k].unsqueeze(-1)
            if flush:
                y = y.masked_fill(y.abs() < _SCALE_FLUSH.get(y.dtype, (0, 1e-10))[1], 0.0)
            out[k] = y
        return out

    def decay_factors(self, dt: torch.Tensor) -> dict[str, torch.Tensor]:
        """``exp(-dt/tau)`` per trace for a tensor ``dt`` of shape ``batch + extra`` (the rule's
        per-instance parameters broadcast against the leading batch dims); factors below
        e^-100 (float64) / e^-20 (float32) are 0 (relative effect on a trace < 4e-44 / 2e-9)."""
        lo = _SCALE_FLUSH.get(dt.dtype, (-20.0, 1e-10))[0]
        out = {}
        for k, tau in self.taus.items():
            if isinstance(tau, torch.Tensor):
                tau = tau.to(dt).reshape(tau.shape + (1,) * (dt.ndim - tau.ndim))
            arg = -dt / tau
            out[k] = torch.where(arg < lo, 0.0, torch.exp(arg.clamp(min=lo)))
        return out

    def advance(self, W, state, dt):  # noqa: D401 - see package docstring
        """Traces decay exactly; the weight does not change between spikes."""
        return W, self.decay(state, dt)

    def clip(self, W: torch.Tensor) -> torch.Tensor:
        if self.bounds == "none":
            return W
        return W.clamp(self.w_min, self.w_max)

    def param_dict(self) -> dict[str, object]:
        """Parameters as plain values (tensors as lists) for Dataset attrs."""
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            out[f.name] = v.tolist() if isinstance(v, torch.Tensor) else v
        return out

    def batch_shape(self) -> tuple[int, ...]:
        """Broadcast shape of the per-instance (tensor) parameters; ``()`` if all are floats."""
        shapes = [getattr(self, f.name).shape for f in fields(self)
                  if isinstance(getattr(self, f.name), torch.Tensor)]
        return tuple(torch.broadcast_shapes(*shapes)) if shapes else ()


class _PrePostTraces(_TraceRuleMixin):
    """Rules with one presynaptic trace ``x`` and one postsynaptic trace ``y``."""

    @property
    def state_shapes(self) -> dict[str, str]:
        return {"x": "pre", "y": "post"}

    def init_state(self, W: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"x": W.new_zeros(W.shape[:-2] + W.shape[-1:]),
                "y": W.new_zeros(W.shape[:-1])}


@dataclass(frozen=True, eq=False)
class PairSTDP(_PrePostTraces):
    """Pair STDP with exponential traces, all-to-all or nearest-spike (module docstring).

    Parameters (SI): ``tau_plus``, ``tau_minus`` in s; ``A_plus``, ``A_minus`` >= 0 dimensionless
    (depression is ``-A_minus``). Defaults: the Bi & Poo windows used by Pfister & Gerstner
    (16.8 ms, 33.7 ms) with amplitudes 5e-3. ``song2000()`` gives Song, Miller & Abbott 2000.
    """

    tau_plus: Param = 16.8e-3
    tau_minus: Param = 33.7e-3
    A_plus: Param = 5e-3
    A_minus: Param = 5e-3
    pairing: str = "all_to_all"
    bounds: str = "none"
    w_min: float = 0.0
    w_max: float = 1.0
    name: str = "pair_stdp"
    source: str = (
        "Song, Miller & Abbott 2000, Nat Neurosci 3:919; Bi & Poo 1998, J Neurosci 18:10464"
    )

    def __post_init__(self) -> None:
        check_param("tau_plus", self.tau_plus, positive=True)
        check_param("tau_minus", self.tau_minus, positive=True)
        check_param("A_plus", self.A_plus, nonneg=True)
        check_param("A_minus", self.A_minus, nonneg=True)
        check_choice("pairing", self.pairing, PAIRINGS)
        check_bounds(self.bounds, self.w_min, self.w_max)

    @classmethod
    def song2000(cls, w_max: float = 1.0, **kw) -> PairSTDP:
        """Song, Miller & Abbott 2000 (as in Brian2's STDP example): tau 20 ms, A+ = 0.01 w_max,
        A- = 1.05 A+, hard bounds [0, w_max]."""
        return cls(tau_plus=20e-3, tau_minus=20e-3, A_plus=0.01 * w_max,
                   A_minus=0.0105 * w_max, bounds="hard", w_min=0.0, w_max=w_max, **kw)

    @property
    def taus(self) -> dict[str, Param]:
        """Time constant of each trace (s): the traces decay as ``exp(-dt / tau)``."""
        return {"x": self.tau_plus, "y": self.tau_minus}

    def on_pre(self, W, state, pre):
        dep = expand(self.A_minus, 2, W) * state["y"].unsqueeze(-1) * pre.unsqueeze(-2)
        W = apply_bounds(W, 0.0, dep, self.bounds, self.w_min, self.w_max)
        return W, {**state, "x": _jump(state["x"], pre, self.pairing)}

    def on_post(self, W, state, post):
        pot = expand(self.A_plus, 2, W) * post.unsqueeze(-1) * state["x"].unsqueeze(-2)
        W = apply_bounds(W, pot, 0.0, self.bounds, self.w_min, self.w_max)
        return W, {**state, "y": _jump(state["y"], post, self.pairing)}


@dataclass(frozen=True, eq=False)
class InhibitorySTDP(_PrePostTraces):
    """Inhibitory STDP of Vogels, Sprekeler, Zenke, Clopath & Gerstner 2011 (module docstring):
    ``on_pre: W += eta (y - alpha)``, ``on_post: W += eta x``, ``alpha = 2 rho0 tau``.

    Parameters (SI): ``tau`` (s; 20 ms), ``eta`` (the learning rate, in units of the weight, e.g.
    siemens; Vogels et al.: 1e-4 in units of their inhibitory conductance), ``rho0`` (Hz; the
    target postsynaptic rate, 5 Hz in the paper). Bounds: ``"hard"`` in ``[w_min, w_max]``
    (default ``[0, inf)``: inhibitory weights stay non-negative, as in the paper) or ``"none"``;
    ``"soft"`` needs a finite ``w_max``. All-to-all or nearest-spike traces.
    """

    tau: Param = 20e-3
    eta: Param = 1e-4
    rho0: Param = 5.0
    pairing: str = "all_to_all"
    bounds: str = "hard"
    w_min: float = 0.0
    w_max: float = math.inf
    name: str = "inhibitory_stdp"
    source: str = "Vogels, Sprekeler, Zenke, Clopath & Gerstner 2011, Science 334:1569"

    def __post_init__(self) -> None:
        check_param("tau", self.tau, positive=True)
        check_param("eta", self.eta, nonneg=True)
        check_param("rho0", self.rho0, nonneg=True)
        check_choice("pairing", self.pairing, PAIRINGS)
        check_bounds(self.bounds, self.w_min, self.w_max)
        if self.bounds == "soft" and not math.isfinite(self.w_max):
            raise ValueError(f"bounds='soft' needs a finite w_max, got w_max={self.w_max}")

    @property
    def alpha(self) -> Param:
        """The depression per presynaptic spike in trace units, ``2 rho0 tau``."""
        return 2.0 * self.rho0 * self.tau

    @property
    def taus(self) -> dict[str, Param]:
        """Time constant of each trace (s): the traces decay as ``exp(-dt / tau)``."""
        return {"x": self.tau, "y": self.tau}

    def on_pre(self, W, state, pre):
        eta = expand(self.eta, 2, W)
        m = pre.unsqueeze(-2)
        pot = eta * state["y"].unsqueeze(-1) * m
        dep = eta * expand(self.alpha, 2, W) * m
        W = apply_bounds(W, pot, dep, self.bounds, self.w_min, self.w_max)
        return W, {**state, "x": _jump(state["x"], pre, self.pairing)}

    def on_post(self, W, state, post):
        pot = expand(self.eta, 2, W) * post.unsqueeze(-1) * state["x"].unsqueeze(-2)
        W = apply_bounds(W, pot, 0.0, self.bounds, self.w_min, self.w_max)
        return W, {**state, "y": _jump(state["y"], post, self.pairing)}


@dataclass(frozen=True, eq=False)
class TripletSTDP(_TraceRuleMixin):
    """Triplet STDP of Pfister & Gerstner 2006 (module docstring), all-to-all or nearest-spike.

    Parameters (SI): time constants in s; amplitudes dimensionless >= 0. ``tau_x=None`` means the
    minimal model without the pre triplet term (then ``A3_minus`` must be 0). Build the published
    sets with :meth:`from_table` (``dataset`` in {visual_cortex, hippocampal}, ``pairing`` in
    {all_to_all, nearest_spike}, ``model`` in {full, minimal}).
    """

    tau_plus: Param = 16.8e-3
    tau_minus: Param = 33.7e-3
    tau_x: Param | None = 101e-3
    tau_y: Param = 125e-3
    A2_plus: Param = 5e-10
    A3_plus: Param = 6.2e-3
    A2_minus: Param = 7e-3
    A3_minus: Param = 2.3e-4
    pairing: str = "all_to_all"
    bounds: str = "none"
    w_min: float = 0.0
    w_max: float = 1.0
    name: str = "triplet_stdp"
    source: str = "Pfister & Gerstner 2006, J Neurosci 26:9673"

    def __post_init__(self) -> None:
        for n in ("tau_plus", "tau_minus", "tau_y"):
            check_param(n, getattr(self, n), positive=True)
        if self.tau_x is not None:
            check_param("tau_x", self.tau_x, positive=True)
        for n in ("A2_plus", "A3_plus", "A2_minus", "A3_minus"):
            check_param(n, getattr(self, n), nonneg=True)
        if self.tau_x is None and (isinstance(self.A3_minus, torch.Tensor)
                                   or self.A3_minus != 0.0):
            raise ValueError(
                f"tau_x=None (minimal model) requires A3_minus=0, got A3_minus={self.A3_minus}"
            )
        check_choice("pairing", self.pairing, PAIRINGS)
        check_bounds(self.bounds, self.w_min, self.w_max)

    @classmethod
    def from_table(
        cls, dataset: str = "visual_cortex", pairing: str = "all_to_all", model: str = "full",
        **kw,
    ) -> TripletSTDP:
        """A published set (Pfister & Gerstner 2006, Tables 3-4; the shipped CSV).

        ``pairing`` accepts ``"nearest_spike"`` (table name) or ``"nearest"``.
        """
        from .params import triplet_params

        p = triplet_params(dataset, pairing, model)
        return cls(**p, **kw)

    @property
    def state_shapes(self) -> dict[str, str]:
        return {"r1": "pre", "r2": "pre", "o1": "post", "o2": "post"}

    def init_state(self, W: torch.Tensor) -> dict[str, torch.Tensor]:
        pre = W.new_zeros(W.shape[:-2] + W.shape[-1:])
        post = W.new_zeros(W.shape[:-1])
        return {"r1": pre, "r2": pre.clone(), "o1": post, "o2": post.clone()}

    @property
    def taus(self) -> dict[str, Param]:
        """Time constant of each trace (s); ``r2`` is unused (zero amplitude) if ``tau_x=None``."""
        tau_x = self.tau_x if self.tau_x is not None else self.tau_plus
        return {"r1": self.tau_plus, "r2": tau_x, "o1": self.tau_minus, "o2": self.tau_y}

    def on_pre(self, W, state, pre):
        amp = expand(self.A2_minus, 1, W) + expand(self.A3_minus, 1, W) * state["r2"]  # (..,pre)
        dep = state["o1"].unsqueeze(-1) * (amp * pre).unsqueeze(-2)
        W = apply_bounds(W, 0.0, dep, self.bounds, self.w_min, self.w_max)
        return W, {**state, "r1": _jump(state["r1"], pre, self.pairing),
                   "r2": _jump(state["r2"], pre, self.pairing)}

    def on_post(self, W, state, post):
        amp = expand(self.A2_plus, 1, W) + expand(self.A3_plus, 1, W) * state["o2"]  # (..,post)
        pot = (amp * post).unsqueeze(-1) * state["r1"].unsqueeze(-2)
        W = apply_bounds(W, pot, 0.0, self.bounds, self.w_min, self.w_max)
        return W, {**state, "o1": _jump(state["o1"], post, self.pairing),
                   "o2": _jump(state["o2"], post, self.pairing)}


def triplet_bcm_rate(rule: TripletSTDP | PairSTDP, rho_pre, rho_post):
    r"""Expected drift ``dw/dt`` (1/s) of all-to-all triplet (or pair) STDP for independent
    Poisson pre/post trains at rates ``rho_pre``, ``rho_post`` (Hz): Pfister & Gerstner 2006,
    Eq. 6 (module docstring). Works on floats, numpy arrays or tensors (broadcasting)."""
    if rule.pairing != "all_to_all":
        raise ValueError(
            f"triplet_bcm_rate is the all-to-all rate form; rule.pairing={rule.pairing!r} "
            "(allowed: 'all_to_all')"
        )
    if isinstance(rule, PairSTDP):
        return rho_pre * rho_post * (rule.A_plus * rule.tau_plus - rule.A_minus * rule.tau_minus)
    tau_x = rule.tau_x if rule.tau_x is not None else 0.0
    return rho_pre * rho_post * (
        rule.A2_plus * rule.tau_plus - rule.A2_minus * rule.tau_minus
        + rule.A3_plus * rule.tau_plus * rule.tau_y * rho_post
        - rule.A3_minus * rule.tau_minus * tau_x * rho_pre
    )


def _amps(rule: TripletSTDP | PairSTDP) -> dict[str, object]:
    if isinstance(rule, PairSTDP):
        return dict(tp=rule.tau_plus, tm=rule.tau_minus, tx=1.0, ty=1.0, a2p=rule.A_plus,
                    a3p=0.0, a2m=rule.A_minus, a3m=0.0)
    return dict(tp=rule.tau_plus, tm=rule.tau_minus,
                tx=rule.tau_x if rule.tau_x is not None else 1.0, ty=rule.tau_y,
                a2p=rule.A2_plus, a3p=rule.A3_plus, a2m=rule.A2_minus, a3m=rule.A3_minus)


def pairing_closed_form(rule: TripletSTDP | PairSTDP, delay, freq, n_pairs: int = 60):
    r"""Exact total weight change of ``n_pairs`` pre/post pairings, closed form.

    Protocol: pre spikes at ``t_m = m T`` (``T = 1/freq``), post spikes at ``t_m + delay``,
    ``m = 0..n-1``, ``|delay| < T``, additive rule (``bounds="none"``). Write ``q_tau =
    exp(-T/tau)``, ``s_tau = q/(1-q)`` and ``G(a) = sum_{m<n} a^m = (1-a^n)/(1-a)``.

    *All-to-all*, ``delay = d > 0`` (pre leads). Just before the m-th post spike
    ``r1 = e^{-d/tau+} (1 - q+^{m+1})/(1 - q+)`` and ``o2 = s_y (1 - q_y^m)``; just before the
    m-th pre spike ``o1 = e^{d/tau-} s_- (1 - q-^m)`` and ``r2 = s_x (1 - q_x^m)``. Summing the
    products over m with geometric series:

    ``LTP = e^{-d/tau+}/(1-q+) [A2+ (n - q+ G(q+))``
    ``      + A3+ s_y (n - G(q_y) - q+ G(q+) + q+ G(q+ q_y))]``
    ``LTD = e^{d/tau-} s_- [A2- (n - G(q-)) + A3- s_x (n - G(q-) - G(q_x) + G(q- q_x))]``.

    ``delay = -d < 0`` (post leads) is the mirror image: swap the roles (``+`` <-> ``-``,
    ``x`` <-> ``y``, LTP <-> LTD).

    *Nearest-spike* (traces reset to 1): ``d > 0``: ``LTP = e^{-d/tau+} (n A2+ + (n-1) A3+ q_y)``,
    ``LTD = (n-1) e^{-(T-d)/tau-} (A2- + A3- q_x)``; ``-d < 0``: ``LTD = e^{-d/tau-} (n A2- +
    (n-1) A3- q_x)``, ``LTP = (n-1) e^{-(T-d)/tau+} (A2+ + A3+ q_y)``.

    ``delay``/``freq`` are numpy-broadcastable (seconds, Hz); rule parameters may be floats or
    1-D tensors ``(P,)`` (parameter sets), giving a result of shape ``(P,) + grid``. Returns
    ``LTP - LTD`` (numpy, float64). ``delay = 0`` counts as pre-leads (pre, then post at the
    same instant).
    """
    import numpy as np

    d, T = np.broadcast_arrays(np.asarray(delay, float), 1.0 / np.asarray(freq, float))
    a = {}
    for k, v in _amps(rule).items():  # per-instance (P,) parameters -> (P, 1, ..., 1)
        v = v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v, float)
        a[k] = v.reshape(v.shape + (1,) * d.ndim) if v.ndim else v
    if np.any(np.abs(d) >= T):
        raise ValueError("pairing_closed_form needs |delay| < 1/freq for every pair")
    n = int(n_pairs)
    ad = np.abs(d)

    def G(x):  # sum_{m<n} x^m, 0 <= x < 1
        return (1.0 - x**n) / (1.0 - x)

    def q(tau):
        return np.exp(-T / tau)

    def s(tau):
        return q(tau) / (1.0 - q(tau))

    if rule.pairing == "all_to_all":
        def leader_follower(t_lead, t_follow, slow_lead, slow_follow, a2lf, a3lf, a2fl, a3fl):
            # "lead" side spikes first in each pair; lf = update at the follower's spike
            # (reads the leader's trace), fl = update at the leader's spike.
            ql, qf, qy, qx = q(t_lead), q(t_follow), q(slow_follow), q(slow_lead)
            at_follow = np.exp(-ad / t_lead) / (1 - ql) * (
                a2lf * (n - ql * G(ql))
                + a3lf * s(slow_follow) * (n - G(qy) - ql * G(ql) + ql * G(ql * qy)))
            at_lead = np.exp(ad / t_follow) * s(t_follow) * (
                a2fl * (n - G(qf))
                + a3fl * s(slow_lead) * (n - G(qf) - G(qx) + G(qf * qx)))
            return at_follow, at_lead

        ltp_p, ltd_p = leader_follower(a["tp"], a["tm"], a["tx"], a["ty"],
                                       a["a2p"], a["a3p"], a["a2m"], a["a3m"])
        ltd_n, ltp_n = leader_follower(a["tm"], a["tp"], a["ty"], a["tx"],
                                       a["a2m"], a["a3m"], a["a2p"], a["a3p"])
    else:
        ltp_p = np.exp(-ad / a["tp"]) * (n * a["a2p"] + (n - 1) * a["a3p"] * q(a["ty"]))
        ltd_p = (n - 1) * np.exp(-(T - ad) / a["tm"]) * (a["a2m"] + a["a3m"] * q(a["tx"]))
        ltd_n = np.exp(-ad / a["tm"]) * (n * a["a2m"] + (n - 1) * a["a3m"] * q(a["tx"]))
        ltp_n = (n - 1) * np.exp(-(T - ad) / a["tp"]) * (a["a2p"] + a["a3p"] * q(a["ty"]))
    return np.where(d >= 0, ltp_p - ltd_p, ltp_n - ltd_n)
