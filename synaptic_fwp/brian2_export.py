r"""Export synaptic_fwp spiking rules and spike protocols to Brian2 (Stimberg, Brette & Goodman
2019, eLife 8:e47314), so results can be checked against Brian2 and models moved between the two.

What is exported
----------------
:func:`synapse_model` writes a rule of :mod:`synaptic_fwp.plasticity` as Brian2 ``Synapses``
code (model equations, ``on_pre`` / ``on_post`` statements, an optional per-step operation);
:func:`to_brian2` builds a complete Brian2 ``Network`` in which each synapse is driven by its
own presynaptic and postsynaptic spike trains (``SpikeGeneratorGroup``\ s; post spikes imposed,
as in pairing experiments and Brian2's ``examples/frompapers/Graupner_Brunel_2012.py``);
:func:`brian2_pairing` runs :func:`synaptic_fwp.protocols.pairing`'s protocol in Brian2 and
returns the same Dataset variables. Supported rules (anything else raises a ``TypeError``
listing them):

``PairSTDP`` (all-to-all or nearest; bounds none / hard / soft)
    Traces are Brian2 ``(event-driven)`` variables, so they decay exactly between spikes::

        dx/dt = -x/tau_plus : 1 (event-driven)      dy/dt = -y/tau_minus : 1 (event-driven)
        on_pre : w = w - A_minus*y (bounded);  x = x + 1   (nearest: x = 1)
        on_post: w = w + A_plus*x  (bounded);  y = y + 1   (nearest: y = 1)

    the order of :mod:`synaptic_fwp.plasticity` (weight from the traces just before the spike,
    then the trace jump; Brian2 runs the ``pre`` pathway before ``post`` in a time step, which
    is synaptic_fwp's order for coincident spikes).

``InhibitorySTDP`` (Vogels et al. 2011, Science 334:1569)
    Event-driven traces ``x`` (pre), ``y`` (post), both ``tau``; ``on_pre: w += eta*y -
    eta*alpha`` (bounded) then ``x`` jumps; ``on_post: w += eta*x`` then ``y`` jumps.

``TripletSTDP`` (Pfister & Gerstner 2006, J Neurosci 26:9673, Eqs. 2-4)
    Four event-driven traces ``r1, r2`` (pre; ``tau_plus``, ``tau_x``) and ``o1, o2`` (post;
    ``tau_minus``, ``tau_y``); ``on_pre: w -= o1*(A2_minus + A3_minus*r2)`` then ``r1, r2``
    jump; ``on_post: w += r1*(A2_plus + A3_plus*o2)`` then ``o1, o2`` jump.

``GraupnerBrunel`` (Graupner & Brunel 2012, PNAS 109:3991)
    Calcium ``c`` per synapse, ``on_pre: c += Cpre`` delivered ``D`` after the spike (the
    pathway delay), ``on_post: c += Cpost`` (``C_pre``, ``C_post`` renamed: Brian2 reserves the
    ``_pre``/``_post`` suffixes). With ``sigma = 0`` (``scheme="phases"``) ``rho``
    is advanced once per time step by an operation that splits the step at the exact times at
    which the exponentially decaying calcium crosses ``theta_p`` and ``theta_d``
    (``t = tau_Ca ln(c/theta)``) and takes one classical RK4 step per phase, then decays ``c``
    exactly: the same model as synaptic_fwp's event-driven ``advance`` (which solves the same
    phases), independent of where the thresholds fall on the time grid, so the two agree to
    integration accuracy. ``scheme="heaviside"`` (required when ``sigma > 0``) is the idiomatic
    Brian2 form of Brian2's own example: ``drho/dt = (... + sigma*sqrt(tau)*sqrt(H_d + H_p)*xi)
    / tau`` with ``H = int(c > theta)`` read on the time grid and Euler-Maruyama steps; noisy
    runs agree with synaptic_fwp only in distribution (different random streams), and the
    Heaviside terms on the grid make the deterministic part accurate to O(dt).

``ShouvalCalcium`` (Shouval, Bear & Cooper 2002, PNAS 99:10831)
    Per synapse the NMDA gating (``nf, ns``), EPSP (``e1, e2``) and BPAP (``bf, bs``)
    components jump at the pre spike / at the post spike plus ``bpap_delay`` (the ``post``
    pathway delay); once per step, after the step's events (slot ``end``, so no one-step
    shift), ``Ca`` and ``W`` take one step of ``ShouvalCalcium(scheme="substep")``'s
    exponential integrator (drive at the step midpoint from the exact components) and the
    components decay exactly. It is that scheme step for step when ``max_step = slow_step =
    dt`` and every inter-event interval is a multiple of ``dt`` (tested on a binary grid:
    equal to rounding); against the default adaptive scheme it agrees to the integrator's
    accuracy (first order in ``dt`` for ``W``; ~1e-4 relative at ``dt = 2^-11`` s).

Timing conventions. Spike times are placed on Brian2's time grid (``dt`` must divide them and
the delays; checked). Brian2 applies an event of step ``n`` after that step's clock-driven
update, so clock-driven (calcium) dynamics see every event one step late; all events move
together, and :func:`to_brian2` integrates ``rho`` from ``t = dt`` so that the run is the
synaptic_fwp run shifted by one step (final values are unaffected). Event-driven traces are
exact at any ``dt``.

Engine networks (:func:`network_to_brian2`, or ``to_brian2(network)``): ``SpikeTimesInput``
sources, ``LIFPopulation``\ s and ``AdExPopulation``\ s (AMPA, NMDA with its Mg2+ block, GABA)
written as the engine's own step, and static or pair / triplet STDP projections (with delays,
static NMDA weights ``U0``): deterministic inputs give the same spikes and weights.

Rate rules (:func:`rate_to_brian2`, code from :func:`rate_rule_code`)
    Every rule of :mod:`synaptic_fwp.rules` (the Primer's Eq. 31 family: hebbian, delta, oja,
    the scalar/vector decays, Gated DeltaNet both ways, and BCM) driven by given per-step traces
    (``k`` presynaptic rates, ``v`` postsynaptic value, gates): presynaptic and postsynaptic
    ``NeuronGroup``\ s read the traces from ``TimedArray``\ s, all-to-all ``Synapses`` hold
    ``W`` and apply the step once per Brian2 step (``run_regularly``) after Brian2 has summed
    the read-outs ``W k`` / ``W^T v`` from ``W_{t-1}`` (``(summed)`` variables); ``y_t = W_t
    q_t`` is summed at the end of the step. A batch of ``B x H`` sequences becomes ``B H``
    disconnected blocks of one network. Equal to :func:`synaptic_fwp.scan` to rounding at every
    step.

BTSP (:func:`btsp_to_brian2`; :mod:`synaptic_fwp.plasticity.btsp`)
    One lap of ``MilsteinBTSP`` (Milstein et al. 2021) or ``PrimerBTSP`` (Primer Sec. 4.2):
    CA3 eligibility traces and the CA1 instructive signal (from the EC3 plateau gate) are
    Brian2 variables advanced by their exact step, the lap integrals are trapezoid sums held
    per synapse, and the weight follows ``lap_update``'s formula; equal to ``lap_update`` on
    ``eligibility_trace`` / ``instructive_signal`` to rounding.

Not exported (a clear ``TypeError`` listing what is supported): rate populations,
Poisson/place-cell/plateau inputs (their counter-based random streams have no Brian2
equivalent), projections with rate rules, a ``value`` signal or a ``sign``.

Brian2 is imported only inside these functions (this is the "faces" layer). The ``numpy``
code-generation target needs no compiler; ``cython`` compiles on first use (about a minute on
a cold cache).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import xarray as xr

__all__ = [
    "Brian2Network",
    "network_to_brian2",
    "Brian2Synapse",
    "Brian2Export",
    "synapse_model",
    "to_brian2",
    "brian2_pairing",
    "SUPPORTED_RULES",
    "Brian2RateExport",
    "rate_rule_code",
    "rate_to_brian2",
    "Brian2BTSPExport",
    "btsp_to_brian2",
]

SUPPORTED_RULES = ("PairSTDP", "TripletSTDP", "InhibitorySTDP", "GraupnerBrunel",
                   "ShouvalCalcium")
_TARGETS = ("numpy", "cython")


@dataclass(frozen=True)
class Brian2Synapse:
    """Brian2 ``Synapses`` code of one rule (units: Brian2 unit names in the equations).

    ``params``: per-synapse constant parameters ``{name: (unit name, values or float)}`` (each a
    ``(constant)`` variable of the model, so every synapse may have its own value);
    ``weight``: the name of the weight variable; ``regular``: code run once per time step
    (``run_regularly``, slot ``start``), or ``None``; ``method``: the state-update method for
    clock-driven equations (``None`` if there are none); ``pre_delay``, ``post_delay``: seconds
    (the ``pre`` / ``post`` pathway delays); ``window``: names of two per-synapse constants
    (s): the per-step operation integrates only from the first to the second (each synapse
    starts at ``t = 0`` of its trains and ends at its own last event plus the settle time, as
    synaptic_fwp's event-driven protocols do), or ``None``; ``late``: the per-step operation
    runs in slot ``start`` and sees a step's events one step late (True), or in slot ``end``,
    after the step's events, advancing over ``[t, t + dt]`` (False).
    """

    model: str
    on_pre: str
    on_post: str
    params: dict[str, tuple[str, Any]]
    weight: str = "w"
    regular: str | None = None
    method: str | None = None
    pre_delay: float = 0.0
    post_delay: float = 0.0
    window: tuple[str, str] | None = None
    late: bool = True
    rule_name: str = ""
    notes: str = ""


@dataclass
class Brian2Export:
    """A built Brian2 network (:func:`to_brian2`). ``run()`` simulates it and returns the final
    weights, one per synapse, numpy float64 (``rho`` for Graupner-Brunel)."""

    network: Any
    synapses: Any
    pre: Any
    post: Any
    spec: Brian2Synapse
    duration: float
    dt: float
    codegen: str
    ran: bool = field(default=False)

    def run(self) -> np.ndarray:
        from brian2 import prefs, second

        if not self.ran:
            old = prefs.codegen.target
            prefs.codegen.target = self.codegen
            try:
                self.network.run(self.duration * second, namespace={})
            finally:
                prefs.codegen.target = old
            self.ran = True
        return self.weights()

    def weights(self) -> np.ndarray:
        return np.asarray(getattr(self.synapses, self.spec.weight)[:], dtype=np.float64)


# ----------------------------------------------------------------------------------------------
# Rules -> Brian2 code
# ----------------------------------------------------------------------------------------------


def _values(rule: object, name: str) -> Any:
    v = getattr(rule, name)
    if isinstance(v, torch.Tensor):
        return v.detach().cpu().numpy().astype(np.float64).reshape(-1)
    return float(v)


def _bounded(w: str, dw_plus: str | None, dw_minus: str | None, rule: object) -> str:
    """Brian2 statement for :func:`synaptic_fwp.plasticity.base.apply_bounds`."""
    lo, hi = float(rule.w_min), float(rule.w_max)
    if rule.bounds == "soft":
        expr = w + (f" + ({dw_plus})*({hi!r} - {w})" if dw_plus else "") + (
            f" - ({dw_minus})*({w} - {lo!r})" if dw_minus else "")
        return f"{w} = clip({expr}, {lo!r}, {hi!r})"
    expr = w + (f" + ({dw_plus})" if dw_plus else "") + (f" - ({dw_minus})" if dw_minus else "")
    if rule.bounds == "hard":
        return f"{w} = clip({expr}, {lo!r}, {hi!r})"
    return f"{w} = {expr}"


def _jump(x: str, pairing: str) -> str:
    return f"{x} = {x} + 1" if pairing == "all_to_all" else f"{x} = 1"


_TRACES = ("event-driven", "explicit")


def _traces(traces: dict[str, str], form: str) -> tuple[str, str]:
    """Model lines and the decay prologue of on_pre/on_post for exponential traces
    ``{name: tau}``: Brian2 ``(event-driven)`` equations (Brian2 solves them exactly with
    sympy when the network is built; seconds for four coupled traces) or the same exact
    update written out (``x = x*exp(-(t - t_last)/tau)``, what Brian2 generates; no solver)."""
    if form == "event-driven":
        lines = [f"d{x}/dt = -{x} / {tau} : 1 (event-driven)" for x, tau in traces.items()]
        return "\n".join(lines), ""
    lines = [f"{x} : 1" for x in traces] + ["t_last : second"]
    decay = [f"{x} = {x}*exp(-(t - t_last)/{tau})" for x, tau in traces.items()]
    return "\n".join(lines), "\n".join([*decay, "t_last = t"]) + "\n"


def _pair_stdp(rule: Any, form: str) -> Brian2Synapse:
    tr, decay = _traces({"x": "tau_plus", "y": "tau_minus"}, form)
    model = f"""
w : 1
{tr}
tau_plus : second (constant)
tau_minus : second (constant)
A_plus : 1 (constant)
A_minus : 1 (constant)
"""
    on_pre = decay + "\n".join([_bounded("w", None, "A_minus*y", rule), _jump("x", rule.pairing)])
    on_post = decay + "\n".join([_bounded("w", "A_plus*x", None, rule), _jump("y", rule.pairing)])
    params = {
        n: ("second" if n.startswith("tau") else "1", _values(rule, n))
        for n in ("tau_plus", "tau_minus", "A_plus", "A_minus")
    }
    return Brian2Synapse(
        model,
        on_pre,
        on_post,
        params,
        rule_name=rule.name,
        notes=f"Song, Miller & Abbott 2000; exact {form} traces",
    )


def _inhibitory_stdp(rule: Any, form: str) -> Brian2Synapse:
    tr, decay = _traces({"x": "tau", "y": "tau"}, form)
    model = f"""
w : 1
{tr}
tau : second (constant)
eta : 1 (constant)
alpha : 1 (constant)
"""
    on_pre = decay + "\n".join([_bounded("w", "eta*y", "eta*alpha", rule),
                                _jump("x", rule.pairing)])
    on_post = decay + "\n".join([_bounded("w", "eta*x", None, rule), _jump("y", rule.pairing)])
    params = {n: ("second" if n == "tau" else "1", _values(rule, n))
              for n in ("tau", "eta", "alpha")}
    return Brian2Synapse(
        model,
        on_pre,
        on_post,
        params,
        rule_name=rule.name,
        notes=f"Vogels et al. 2011 inhibitory STDP (alpha = 2 rho0 tau); exact {form} traces",
    )


def _triplet_stdp(rule: Any, form: str) -> Brian2Synapse:
    tau_x = "tau_x" if rule.tau_x is not None else "tau_plus"
    tr, decay = _traces({"r1": "tau_plus", "r2": tau_x, "o1": "tau_minus", "o2": "tau_y"}, form)
    model = f"""
w : 1
{tr}
tau_plus : second (constant)
tau_minus : second (constant)
tau_y : second (constant)
A2_plus : 1 (constant)
A3_plus : 1 (constant)
A2_minus : 1 (constant)
A3_minus : 1 (constant)
"""
    names = ["tau_plus", "tau_minus", "tau_y", "A2_plus", "A3_plus", "A2_minus", "A3_minus"]
    if rule.tau_x is not None:
        model += "tau_x : second (constant)\n"
        names.append("tau_x")
    on_pre = decay + "\n".join(
        [
            _bounded("w", None, "o1*(A2_minus + A3_minus*r2)", rule),
            _jump("r1", rule.pairing),
            _jump("r2", rule.pairing),
        ]
    )
    on_post = decay + "\n".join(
        [
            _bounded("w", "r1*(A2_plus + A3_plus*o2)", None, rule),
            _jump("o1", rule.pairing),
            _jump("o2", rule.pairing),
        ]
    )
    params = {n: ("second" if n.startswith("tau") else "1", _values(rule, n)) for n in names}
    return Brian2Synapse(
        model,
        on_pre,
        on_post,
        params,
        rule_name=rule.name,
        notes=f"Pfister & Gerstner 2006; exact {form} traces",
    )


# Brian2 reserves the suffixes _pre/_post (pre-/postsynaptic variables)
_B2_NAME = {"C_pre": "Cpre", "C_post": "Cpost"}
_GB_PARAMS = (
    "tau_ca",
    "tau",
    "C_pre",
    "C_post",
    "theta_d",
    "theta_p",
    "gamma_d",
    "gamma_p",
    "rho_star",
    "sigma",
)


def _rk4_code(r: str, h: str, hp: str, hd: str, tag: str) -> list[str]:
    """One classical RK4 step of GB's rho-ODE over ``h`` with Heaviside terms ``hp``, ``hd``."""

    def f(x: str) -> str:
        return (
            f"((-({x})*(1 - ({x}))*(rho_star - ({x})) + gamma_p*(1 - ({x}))*({hp})"
            f" - gamma_d*({x})*({hd}))/tau)"
        )

    return [
        f"k1_{tag} = {f(r)}",
        f"k2_{tag} = {f(f'{r} + 0.5*{h}*k1_{tag}')}",
        f"k3_{tag} = {f(f'{r} + 0.5*{h}*k2_{tag}')}",
        f"k4_{tag} = {f(f'{r} + {h}*k3_{tag}')}",
        f"{r} = {r} + {h}/6*(k1_{tag} + 2*k2_{tag} + 2*k3_{tag} + k4_{tag})",
    ]


def _graupner_brunel(rule: Any, scheme: str | None) -> Brian2Synapse:
    sig = rule.sigma
    noisy = bool((sig > 0).any()) if isinstance(sig, torch.Tensor) else sig > 0
    scheme = scheme or ("heaviside" if noisy else "phases")
    if scheme not in ("phases", "heaviside"):
        raise ValueError(f"scheme must be 'phases' or 'heaviside', got {scheme!r}")
    if noisy and scheme == "phases":
        raise ValueError(
            "scheme='phases' is the deterministic (sigma = 0) export; a GraupnerBrunel rule with "
            "sigma > 0 needs scheme='heaviside' (Euler-Maruyama with Brian2's xi)"
        )
    consts = "\n".join(
        f"{_B2_NAME.get(n, n)} : {'second' if n in ('tau_ca', 'tau') else '1'} (constant)"
        for n in _GB_PARAMS
    )
    params = {
        _B2_NAME.get(n, n): ("second" if n in ("tau_ca", "tau") else "1", _values(rule, n))
        for n in _GB_PARAMS
    }
    if scheme == "phases":
        # h: the step (0 on the first step: events act one step late, see module docstring)
        lines = [
            "h_s = dt*int(t > t_begin - 0.5*dt)*int(t < t_end + 0.5*dt)",
            "t_p = clip(tau_ca*log(clip(c/theta_p, 1, inf)), 0*second, h_s)",
            "t_d = clip(tau_ca*log(clip(c/theta_d, 1, inf)), 0*second, h_s)",
            "t_a = t_p*int(t_p <= t_d) + t_d*int(t_p > t_d)",  # both above until min
            "t_b = t_p + t_d - t_a",  # the lower threshold's term alone until max
            "h1 = t_a",
            "h2 = t_b - t_a",
            "h3 = h_s - t_b",
            "hp2 = 1.0*int(t_p > t_d)",
            "hd2 = 1.0*int(t_d > t_p)",
            "r = rho",
            *_rk4_code("r", "h1", "1.0", "1.0", "a"),
            *_rk4_code("r", "h2", "hp2", "hd2", "b"),
            *_rk4_code("r", "h3", "0.0", "0.0", "c"),
            "rho = r",
            "c = c*exp(-dt/tau_ca)",
        ]
        model = (
            f"rho : 1\nc : 1\nt_begin : second (constant)\nt_end : second (constant)\n{consts}\n"
        )
        return Brian2Synapse(
            model,
            "c = c + Cpre",
            "c = c + Cpost",
            params,
            weight="rho",
            regular="\n".join(lines),
            pre_delay=float(rule.D),
            window=("t_begin", "t_end"),
            rule_name=rule.name,
            notes="exact calcium threshold phases, one RK4 step per phase",
        )
    model = f"""
drho/dt = (-rho*(1 - rho)*(rho_star - rho) + gamma_p*(1 - rho)*int(c > theta_p)
           - gamma_d*rho*int(c > theta_d)
           + sigma*sqrt(tau)*sqrt(int(c > theta_d) + int(c > theta_p))*xi) / tau : 1 (clock-driven)
c : 1
{consts}
"""
    return Brian2Synapse(
        model,
        "c = c + Cpre",
        "c = c + Cpost",
        params,
        weight="rho",
        regular="c = c*exp(-dt/tau_ca)",
        method="euler",
        pre_delay=float(rule.D),
        rule_name=rule.name,
        notes="Heaviside terms on the time grid, Euler-Maruyama (as Brian2's "
        "Graupner_Brunel_2012 example, which uses heun)",
    )


_SH_PARAMS = {  # synaptic_fwp name -> Brian2 name (avoid unit names such as mg, K)
    "alpha1": "alpha1", "alpha2": "alpha2", "beta1": "beta1", "beta2": "beta2",
    "P1": "P1", "P2": "P2", "P3": "P3", "P4": "P4", "lam": "lam", "tau_ca": "tau_ca",
    "P0": "P0", "G_nmda": "G_nmda", "V_r": "V_r", "nmda_If": "nmda_If",
    "nmda_tau_f": "tau_nf", "nmda_tau_s": "tau_ns", "mg": "Mg", "mg_k": "Mg_k", "mg_K": "Mg_K",
    "bpap_amp": "bpap_amp", "bpap_If": "bpap_If", "bpap_tau_f": "tau_bf", "bpap_tau_s": "tau_bs",
    "epsp_amp": "epsp_amp", "epsp_tau_1": "tau_e1", "epsp_tau_2": "tau_e2", "V_rest": "V_rest",
}


def _shouval(rule: Any) -> Brian2Synapse:
    """Shouval, Bear & Cooper 2002 calcium control as Brian2 code: the model of
    :class:`~synaptic_fwp.plasticity.ShouvalCalcium` (per synapse: NMDA gating ``nf, ns`` and
    EPSP ``e1, e2`` components jump at the pre spike, BPAP ``bf, bs`` at the post spike plus
    ``bpap_delay``) advanced once per Brian2 step after the step's events (slot ``end``) by the
    exponential integrator of ``ShouvalCalcium(scheme="substep")``: drive ``I_NMDA`` from the
    components at the step's midpoint, ``Ca <- Ca e^{-h/tau_Ca} + I tau_Ca (1 - e^{-h/tau_Ca})``,
    then ``W <- Omega/lam + (W - Omega/lam) e^{-eta lam h}`` at the new Ca, then the components
    decay exactly. With ``max_step = slow_step = dt`` and every interval a multiple of ``dt``
    this is the substep scheme step for step; against the adaptive scheme it agrees to the
    integrator's accuracy (first order in ``h`` for ``W``)."""
    consts = []
    params: dict[str, tuple[str, Any]] = {}
    for ours, theirs in _SH_PARAMS.items():
        unit = "second" if theirs.startswith("tau") else "1"
        consts.append(f"{theirs} : {'second' if unit == 'second' else '1'} (constant)")
        params[theirs] = (unit, _values(rule, ours))
    comps = {"nf": "tau_nf", "ns": "tau_ns", "e1": "tau_e1", "e2": "tau_e2", "bf": "tau_bf",
             "bs": "tau_bs"}
    model = "\n".join(
        ["w : 1", "ca : 1", "t_begin : second (constant)", "t_end : second (constant)"]
        + [f"{c} : 1" for c in comps]
        + consts
    )
    mid = {c: f"{c}*exp(-0.5*hstep/{tau})" for c, tau in comps.items()}
    lines = [
        "hstep = dt*int(t >= t_begin)*int(t + 0.5*dt < t_end)",
        f"gnm = nmda_If*{mid['nf']} + (1 - nmda_If)*{mid['ns']}",
        f"Vd = V_rest + bpap_amp*(bpap_If*{mid['bf']} + (1 - bpap_If)*{mid['bs']})"
        f" + epsp_amp*({mid['e1']} - {mid['e2']})",
        "Inm = P0*G_nmda*gnm*(Vd - V_r)/(1 + exp(-Mg_k*Vd)*(Mg/Mg_K))",
        "fca = exp(-hstep/tau_ca)",
        "ca = ca*fca + Inm*(tau_ca/second)*(1 - fca)",
        "om = 0.25 + 1/(1 + exp(-beta2*(ca - alpha2))) - 0.25/(1 + exp(-beta1*(ca - alpha1)))",
        "eta_ca = 1/(P1/(P2 + clip(ca, 0, inf)**P3) + P4)",
        "w = om/lam + (w - om/lam)*exp(-eta_ca*lam*hstep/second)",
        *[f"{c} = {c}*exp(-hstep/{tau})" for c, tau in comps.items()],
    ]
    return Brian2Synapse(
        model,
        "nf = nf + 1\nns = ns + 1\ne1 = e1 + 1\ne2 = e2 + 1",
        "bf = bf + 1\nbs = bs + 1",
        params,
        regular="\n".join(lines),
        post_delay=float(rule.bpap_delay),
        window=("t_begin", "t_end"),
        late=False,
        rule_name=rule.name,
        notes="Shouval et al. 2002; the substep scheme's exponential integrator, one step per dt",
    )


def synapse_model(
    rule: object, *, scheme: str | None = None, traces: str = "event-driven"
) -> Brian2Synapse:
    """The Brian2 ``Synapses`` code of a spiking rule (module docstring).

    ``scheme`` (Graupner-Brunel only): ``"phases"`` (default for ``sigma = 0``) or
    ``"heaviside"``. ``traces`` (STDP rules): ``"event-driven"`` (Brian2's idiom; Brian2 solves
    the trace equations with sympy when the network is built, which takes seconds for the four
    triplet traces) or ``"explicit"`` (the same exact decay written out in ``on_pre`` /
    ``on_post``: ``x = x*exp(-(t - t_last)/tau)``; nothing to solve).
    """
    from .plasticity import GraupnerBrunel, InhibitorySTDP, PairSTDP, ShouvalCalcium, TripletSTDP

    if traces not in _TRACES:
        raise ValueError(f"traces must be one of {list(_TRACES)}, got {traces!r}")
    if isinstance(rule, PairSTDP):
        out = _pair_stdp(rule, traces)
    elif isinstance(rule, InhibitorySTDP):
        out = _inhibitory_stdp(rule, traces)
    elif isinstance(rule, TripletSTDP):
        out = _triplet_stdp(rule, traces)
    elif isinstance(rule, GraupnerBrunel):
        return _graupner_brunel(rule, scheme)
    elif isinstance(rule, ShouvalCalcium):
        out = _shouval(rule)
    else:
        raise TypeError(
            f"cannot export a {type(rule).__name__} to Brian2; supported rules: "
            f"{', '.join(SUPPORTED_RULES)} (synaptic_fwp.plasticity). Rate rules of "
            "synaptic_fwp.rules: rate_to_brian2; BTSP: btsp_to_brian2"
        )
    if scheme is not None:
        raise ValueError(
            f"scheme applies to GraupnerBrunel only, got scheme={scheme!r} for "
            f"{type(rule).__name__}"
        )
    return out


# ----------------------------------------------------------------------------------------------
# Networks
# ----------------------------------------------------------------------------------------------


def _on_grid(name: str, t: np.ndarray, dt: float) -> np.ndarray:
    steps = np.rint(t / dt)
    bad = np.abs(steps * dt - t) > 1e-9 * max(dt, 1.0)
    if bad.any():
        raise ValueError(
            f"{name} must lie on the Brian2 time grid (multiples of dt={dt} s); "
            f"{t[bad][:3].tolist()} do not"
        )
    return steps.astype(np.int64)


def _trains(name: str, times: object) -> list[np.ndarray]:
    if isinstance(times, np.ndarray) and times.ndim == 1:
        times = [times]
    if not isinstance(times, Sequence) and not isinstance(times, np.ndarray):
        raise TypeError(
            f"{name} must be a sequence of 1-D arrays of spike times (one per "
            f"synapse), got {type(times).__name__}"
        )
    out = []
    for k, tr in enumerate(times):
        a = np.asarray(tr, dtype=np.float64).reshape(-1)
        if not np.isfinite(a).all():
            raise ValueError(f"{name}[{k}] must hold finite spike times (s), got {a[:5]}")
        if a.size > 1 and (np.diff(np.sort(a)) <= 0).any():
            raise ValueError(f"{name}[{k}] has two spikes at the same time")
        out.append(np.sort(a))
    return out


def to_brian2(
    rule: object,
    pre_times: Sequence[np.ndarray] | np.ndarray | None = None,
    post_times: Sequence[np.ndarray] | np.ndarray | None = None,
    *,
    w0: float | np.ndarray = 1.0,
    dt: float = 1e-4,
    tail: float | None = None,
    scheme: str | None = None,
    traces: str = "event-driven",
    codegen: str = "numpy",
) -> Brian2Export | Brian2Network:
    """Build a Brian2 network of independent synapses, each driven by its own spike trains.

    ``pre_times[g]`` / ``post_times[g]``: spike times (s) of the pre- and postsynaptic neuron of
    synapse ``g`` (one ``SpikeGeneratorGroup`` neuron each; post spikes are imposed). With
    per-instance rule parameters of shape ``(P,)`` and ``G`` spike-train pairs, the network has
    ``P * G`` synapses, synapse ``p * G + g`` using parameter set ``p`` and trains ``g``.
    ``w0``: initial weight(s): a scalar, ``G`` values (one per train pair) or ``P * G``.
    ``dt``: Brian2's time step (s); spike times and the rule's delays must be multiples of it.
    ``tail``: time simulated after each synapse's last event (default: the rule's
    ``settle_time``, else 0), as :func:`synaptic_fwp.protocols.events.run_events`.
    ``scheme``, ``traces``: see :func:`synapse_model`. ``codegen``: Brian2's code-generation
    target (``"numpy"``: no compiler; ``"cython"``).

    Returns a :class:`Brian2Export`; ``.run()`` gives the final weights (``(P * G,)``).

    ``to_brian2(network)`` with an engine :class:`synaptic_fwp.engine.Network` (and no spike
    trains) is :func:`network_to_brian2` (instance 0; ``traces`` and ``codegen`` apply).
    """
    from .engine import Network

    if isinstance(rule, Network):
        if pre_times is not None or post_times is not None:
            raise ValueError("to_brian2(network) takes no spike trains (the network has inputs)")
        return network_to_brian2(rule, traces=traces, codegen=codegen)
    if pre_times is None or post_times is None:
        raise TypeError(
            "to_brian2(rule, pre_times, post_times): a rule needs the spike trains "
            "of its synapses (or pass an engine Network)"
        )
    spec = synapse_model(rule, scheme=scheme, traces=traces)
    if codegen not in _TARGETS:
        raise ValueError(f"codegen must be one of {list(_TARGETS)}, got {codegen!r}")
    if (
        isinstance(dt, bool)
        or not isinstance(dt, (int, float))
        or not (math.isfinite(dt) and dt > 0)
    ):
        raise ValueError(f"dt must be a finite number of seconds > 0, got {dt!r}")
    pre = _trains("pre_times", pre_times)
    post = _trains("post_times", post_times)
    if len(pre) != len(post) or not pre:
        raise ValueError(
            "pre_times and post_times must give one train per synapse (same non-zero length), "
            f"got {len(pre)} and {len(post)}"
        )
    G = len(pre)
    sizes = {np.size(v) for _, v in spec.params.values() if not isinstance(v, float)}
    if len(sizes) > 1:
        raise ValueError(f"per-instance rule parameters must share one length, got {sizes}")
    P = sizes.pop() if sizes else 1
    n = P * G
    w0_arr = np.asarray(w0, dtype=np.float64).reshape(-1)
    if w0_arr.size == 1:
        w0_arr = np.full(n, float(w0_arr[0]))
    elif w0_arr.size == G:
        w0_arr = np.tile(w0_arr, P)
    elif w0_arr.size != n:
        raise ValueError(
            f"w0 must be a scalar, {G} values (one per train pair) or {n} (one per synapse), "
            f"got shape {np.shape(w0)}"
        )
    if tail is None:
        tail = float(getattr(rule, "settle_time", 0.0))
    if isinstance(tail, bool) or not isinstance(tail, (int, float)) or not tail >= 0:
        raise ValueError(f"tail must be a number of seconds >= 0, got {tail!r}")
    _on_grid("the rule's delays", np.asarray([spec.pre_delay, spec.post_delay]), dt)
    for g in range(G):
        _on_grid(f"pre_times[{g}]", pre[g], dt)
        _on_grid(f"post_times[{g}]", post[g], dt)
    # synaptic_fwp's run of synapse g starts at t = 0 and ends at its last delivered event plus
    # the tail; Brian2 needs times >= 0, so every train is shifted by the same grid offset
    first = min([float(t.min()) for t in pre + post if t.size] + [0.0])
    offset = float(np.ceil(np.round(-first / dt, 6))) * dt if first < 0 else 0.0
    last = np.zeros(G)
    for g in range(G):
        delivered = [pre[g] + spec.pre_delay, post[g] + spec.post_delay]
        for kind, d in zip(("pre", "post"), delivered, strict=True):
            if d.size and d.min() < -1e-12:
                raise ValueError(
                    f"{kind}_times[{g}] delivers an event before t = 0 ({d.min()} s after the "
                    "rule's delay); synaptic_fwp runs start at t = 0"
                )
        last[g] = max([float(d.max()) for d in delivered if d.size] + [0.0])
    t_end = np.tile(last + float(tail), P) + offset
    # clock-driven rules in slot start see events one step late
    t_begin = np.full(n, offset + dt if spec.late else offset)
    steps = int(round(float(t_end.max()) / dt)) + 1
    pre = [t + offset for t in pre]
    post = [t + offset for t in post]

    import brian2 as b2

    def generator(name: str, trains: list[np.ndarray]) -> Any:
        idx = np.concatenate(
            [np.full(trains[g].size, p * G + g, dtype=np.int64) for p in range(P) for g in range(G)]
        )
        tt = np.concatenate([trains[g] for _ in range(P) for g in range(G)])
        return b2.SpikeGeneratorGroup(n, idx, tt * b2.second, dt=dt * b2.second, name=name)

    pre_g = generator("synaptic_fwp_pre*", pre)
    post_g = generator("synaptic_fwp_post*", post)
    kwargs: dict[str, Any] = {}
    if spec.method is not None:
        kwargs["method"] = spec.method
    delay = {}
    if spec.pre_delay:
        delay["pre"] = spec.pre_delay * b2.second
    if spec.post_delay:
        delay["post"] = spec.post_delay * b2.second
    syn = b2.Synapses(
        pre_g,
        post_g,
        model=spec.model,
        on_pre=spec.on_pre,
        on_post=spec.on_post,
        delay=delay or None,
        dt=dt * b2.second,
        name="synaptic_fwp_synapses*",
        **kwargs,
    )
    syn.connect(j="i")
    for name, (unit, v) in spec.params.items():
        arr = np.full(n, v) if isinstance(v, float) else np.repeat(np.asarray(v), G)
        setattr(syn, name, arr * (b2.second if unit == "second" else 1))
    if spec.window is not None:
        setattr(syn, spec.window[0], t_begin * b2.second)
        setattr(syn, spec.window[1], t_end * b2.second)
    setattr(syn, spec.weight, w0_arr)
    objs = [pre_g, post_g, syn]
    if spec.regular is not None:
        objs.append(
            syn.run_regularly(
                spec.regular,
                when="start" if spec.late else "end",
                dt=dt * b2.second,
                name="synaptic_fwp_step*"
            )
        )
    net = b2.Network(*objs)
    return Brian2Export(net, syn, pre_g, post_g, spec, steps * dt, dt, codegen)


def brian2_pairing(
    rule: object,
    dt: float | Sequence[float] = (-0.01, 0.01),
    freq: float | Sequence[float] = 1.0,
    n_pairs: int = 60,
    *,
    w0: float = 1.0,
    sim_dt: float = 1e-4,
    scheme: str | None = None,
    traces: str = "event-driven",
    codegen: str = "numpy",
) -> xr.Dataset:
    """:func:`synaptic_fwp.protocols.pairing`'s protocol simulated by Brian2.

    Same grid and spike times (pre at ``m / freq``, post at ``m / freq + dt``, the first event
    at ``t = 0``, the presynaptic delay of the rule), same settle time after the last event.
    Returns ``w_final`` and ``dw`` (trace rules) or ``rho_final`` with dim ``initial``
    (Graupner-Brunel: 0 = DOWN, 1 = UP start), dims ``(param, [initial,] freq, dt_pair)``.
    """
    from .plasticity import GraupnerBrunel

    delays = np.atleast_1d(np.asarray(dt, dtype=np.float64))
    freqs = np.atleast_1d(np.asarray(freq, dtype=np.float64))
    if delays.ndim != 1 or freqs.ndim != 1 or not (freqs > 0).all():
        raise ValueError(
            f"dt and freq must be numbers or 1-D sequences (freq > 0), got dt={dt!r}, freq={freq!r}"
        )
    if isinstance(n_pairs, bool) or not isinstance(n_pairs, (int, np.integer)) or n_pairs < 1:
        raise ValueError(f"n_pairs must be an integer >= 1, got {n_pairs!r}")
    pre_delay = float(getattr(rule, "pre_delay", 0.0))
    post_delay = float(getattr(rule, "post_delay", 0.0))
    pre, post = [], []
    for f in freqs:
        for d in delays:
            t = np.arange(int(n_pairs)) / f
            tp, tq = t, t + d
            t0 = min(tp[0] + pre_delay, tq[0] + post_delay)  # as protocols.pairing_events
            pre.append(tp - t0 + 0.0)
            post.append(tq - t0 + 0.0)
    # snap to the grid (the protocol's times are multiples of sim_dt up to rounding)
    pre = [np.rint(p / sim_dt) * sim_dt for p in pre]
    post = [np.rint(p / sim_dt) * sim_dt for p in post]
    F, D = freqs.size, delays.size
    coords = {
        "freq": ("freq", freqs, {"units": "Hz", "long_name": "pairing frequency"}),
        "dt_pair": ("dt_pair", delays, {"units": "s", "long_name": "pairing delay t_post - t_pre"}),
    }
    attrs = {
        "rule": getattr(rule, "name", type(rule).__name__),
        "simulator": "brian2",
        "codegen": codegen,
        "sim_dt": sim_dt,
        "n_pairs": int(n_pairs),
    }
    if isinstance(rule, GraupnerBrunel):
        w0s = np.repeat([0.0, 1.0], F * D)  # trains 0..FD-1 start DOWN, FD..2FD-1 start UP
        ex = to_brian2(
            rule,
            pre + pre,
            post + post,
            w0=w0s,
            dt=sim_dt,
            scheme=scheme,
            traces=traces,
            codegen=codegen,
        )
        rho = ex.run().reshape(-1, 2, F, D)
        data = {
            "rho_final": (
                ("param", "initial", "freq", "dt_pair"),
                rho,
                {"units": "1", "long_name": "efficacy rho at the end (Brian2)"},
            )
        }
        coords["initial"] = (
            "initial",
            np.array([0, 1]),
            {"units": "1", "long_name": "initial state (0 DOWN, 1 UP)"},
        )
    else:
        ex = to_brian2(
            rule, pre, post, w0=w0, dt=sim_dt, scheme=scheme, traces=traces, codegen=codegen
        )
        w = ex.run().reshape(-1, F, D)
        data = {
            "w_final": (
                ("param", "freq", "dt_pair"),
                w,
                {"units": "1", "long_name": "final weight (Brian2)"},
            ),
            "dw": (
                ("param", "freq", "dt_pair"),
                (w - w0) / w0,
                {"units": "1", "long_name": "relative weight change (w_end - w0)/w0"},
            ),
        }
    attrs["duration"] = ex.duration
    ds = xr.Dataset(data, coords=coords, attrs=attrs)
    if not any(not isinstance(v, float) for _, v in ex.spec.params.values()):
        ds = ds.squeeze("param")  # no per-instance parameters: as protocols.pairing
    return ds


# ----------------------------------------------------------------------------------------------
# Engine networks -> Brian2
# ----------------------------------------------------------------------------------------------


@dataclass
class Brian2Network:
    """One instance of an engine ``Network`` rebuilt in Brian2 (:func:`network_to_brian2`).

    ``groups``: Brian2 groups by engine name (inputs and populations); ``synapses``: by
    projection name; ``spikes``: ``SpikeMonitor`` per LIF population. ``run(duration)``
    advances the Brian2 network; :meth:`weights` gives a projection's ``W`` as
    ``(n_post, n_pre)`` (numpy, SI units as in the engine). ``pairs``: each projection's
    synapses as ``(post, pre)`` index arrays (every pair of a plastic projection; the nonzero
    weights of a static one).
    """

    network: Any
    groups: dict[str, Any]
    synapses: dict[str, Any]
    spikes: dict[str, Any]
    shapes: dict[str, tuple[int, int]]
    dt: float
    codegen: str
    pairs: dict[str, tuple[np.ndarray, np.ndarray]]

    def run(self, duration: float) -> None:
        from brian2 import prefs, second

        old = prefs.codegen.target
        prefs.codegen.target = self.codegen
        try:
            self.network.run(duration * second, namespace={})
        finally:
            prefs.codegen.target = old

    def weights(self, projection: str) -> np.ndarray:
        W = np.zeros(self.shapes[projection])
        j, i = self.pairs[projection]
        W[j, i] = np.asarray(self.synapses[projection].w[:], dtype=np.float64)
        return W

    def spike_times(self, population: str) -> list[np.ndarray]:
        """Spike times (s) of each neuron of a LIF population."""
        mon = self.spikes[population]
        trains = mon.spike_trains()
        return [np.asarray(trains[k] / _second(), dtype=np.float64) for k in sorted(trains)]


def _second() -> Any:
    from brian2 import second

    return second


def _at(name: str, v: object, b: int, batch: int) -> float:
    """The value of a parameter for instance ``b`` (a float or a per-instance tensor)."""
    if isinstance(v, torch.Tensor):
        flat = v.detach().to(torch.float64).reshape(-1)
        if flat.numel() == 1:
            return float(flat[0])
        if flat.numel() != batch:
            raise ValueError(f"{name} has {flat.numel()} values; allowed: 1 or batch={batch}")
        return float(flat[b])
    return float(v)  # type: ignore[arg-type]


_NET_SUPPORTED = (
    "inputs: SpikeTimesInput; populations: LIFPopulation or AdExPopulation (conductance-based "
    "AMPA or a fixed driving force ampa_drive; NMDA with its Mg2+ block; GABA); projections: "
    f"static or a spiking rule ({', '.join(SUPPORTED_RULES[:3])}) with target 'ampa' or 'gaba', "
    "static NMDA weights U0 allowed, no value/sign"
)


def _synaptic_terms(v: dict[str, float], ns: dict[str, float], drive: float | None,
                    nmda: bool, gaba: bool) -> tuple[list[str], str, str]:
    """Brian2 code of the synaptic part of the LIF and AdEx steps
    (:meth:`synaptic_fwp.neurons.LIFPopulation._parts`), in the engine's order of operations:
    ``(lines, g_tot, num)`` with ``lines`` computing the Mg2+-blocked NMDA conductance ``gnb``
    at the step's start ``V`` (Jahr & Stevens 1990), ``g_tot`` the total conductance and ``num``
    the synaptic terms ``+ g_X E_X`` (``+ g_A drive`` with a fixed AMPA driving force, which adds
    nothing to ``g_tot``) to append to the leak's; fills the namespace ``ns``."""
    lines, g_tot, num = [], ["g_L"], []
    if drive is None:
        ns["E_ampa"] = v["E_ampa"]
        g_tot.append("g_ampa")
        num.append(" + g_ampa*E_ampa")
    else:
        ns["drive"] = drive
        num.append(" + g_ampa*drive")
    if nmda:
        ns.update(E_nmda=v["E_nmda"], mg_f=v["mg"] / 3.57)
        lines.append("gnb = g_nmda/(1.0 + exp(-62.0*V)*mg_f)")
        g_tot.append("gnb")
        num.append(" + gnb*E_nmda")
    if gaba:
        ns["E_gaba"] = v["E_gaba"]
        g_tot.append("g_gaba")
        num.append(" + g_gaba*E_gaba")
    return lines, "(" + " + ".join(g_tot) + ")", "".join(num)


def _adex_update(v: dict[str, float], dt: float, ns: dict[str, float], syn: list[str],
                 g_tot: str, num: str) -> str:
    """Brian2 code of :class:`~synaptic_fwp.neurons.AdExPopulation`'s step before the
    threshold (its docstring): ``V += dt phi1(dt J) F / C`` with the exponent capped at the
    cut-off and ``dt J`` at ``_Z_MAX``, then ``w`` relaxed exactly towards ``a (V - E_L)`` of the
    step's start (``w_adapt`` in Brian2: ``w`` names the synaptic weights); ``syn``, ``g_tot``,
    ``num``: the synaptic terms of :func:`_synaptic_terms`; fills the namespace ``ns``."""
    from .neurons import _Z_MAX

    ns.update(
        E_L=v["E_L"],
        V_T=v["V_T"],
        Delta_T=v["Delta_T"],
        x_max=(v["V_th"] - v["V_T"]) / v["Delta_T"],
        z_max=_Z_MAX,
        a_w=v["a"],
        b_w=v["b"],
        dec_w=math.exp(-dt / v["tau_w"]),
    )
    return "\n".join([
        *syn,
        "w_inf = a_w*(V - E_L)",
        "spike_g = g_L*exp(clip((V - V_T)/Delta_T, -inf, x_max))",
        f"num = gLEL + spike_g*Delta_T - w_adapt{num}",
        f"g_tot = {g_tot}",
        "z = clip((spike_g - g_tot)*dt_over_C, -inf, z_max)",
        "small = int(abs(z) < 1e-6)",  # phi1(z) = expm1(z)/z, its series near 0
        "phi1 = (1 - small)*expm1(z)/(z + small) + small*(1 + 0.5*z)",
        "V = V + (num - g_tot*V)*dt_over_C*phi1",
        "w_adapt = w_inf + dec_w*(w_adapt - w_inf)",
    ])


def network_to_brian2(
    net: Any, *, instance: int = 0, traces: str = "event-driven", codegen: str = "numpy"
) -> Brian2Network:
    r"""Rebuild instance ``instance`` of an engine :class:`synaptic_fwp.engine.Network` in Brian2.

    Supported (anything else raises a ``TypeError`` naming the object and listing this):
    ``SpikeTimesInput`` sources (``SpikeGeneratorGroup``; times rounded to steps as the engine
    does); ``LIFPopulation``\ s, written as the engine's step (module docstring of
    :mod:`synaptic_fwp.neurons`: the exponential integrator with the conductances, and the NMDA
    Mg2+ block, held over a step, ``V <- V_inf + (V - V_inf) exp(-g_tot dt / C)``, then the
    refractory hold, threshold ``V > V_th``, reset, and the exact conductance decays) as a
    ``run_regularly``
    operation in Brian2's ``groups`` slot followed by Brian2's own threshold and reset;
    ``AdExPopulation``\ s likewise, with the engine's exponential Rosenbrock-Euler step for
    ``V``, the exact relaxation of ``w`` and ``w <- w + b`` in the reset; and
    projections (``Synapses``: every pre-post pair of a plastic projection, or of its ``mask``,
    the nonzero weights of a static one) that add ``w`` to ``g_ampa`` (or ``g_gaba``,
    ``target="gaba"``) and the static NMDA weight ``u`` (``U0``) to ``g_nmda`` of the target at
    a presynaptic spike (after the projection's ``delay``) and apply a pair or triplet STDP rule
    (:func:`synapse_model`). Brian2's schedule (groups, thresholds, synapses,
    resets; ``pre`` before ``post``) is the engine's step order, so deterministic inputs give
    the same spikes and the same weights (up to rounding).
    """
    from .engine import Network
    from .inputs import SpikeTimesInput
    from .neurons import AdExPopulation, LIFPopulation
    from .plasticity import InhibitorySTDP, PairSTDP, TripletSTDP

    if not isinstance(net, Network):
        raise TypeError(f"net must be a synaptic_fwp.engine.Network, got {type(net).__name__}")
    if (
        isinstance(instance, bool)
        or not isinstance(instance, int)
        or not (0 <= instance < net.batch)
    ):
        raise ValueError(f"instance must be an int in [0, {net.batch}), got {instance!r}")
    if codegen not in _TARGETS:
        raise ValueError(f"codegen must be one of {list(_TARGETS)}, got {codegen!r}")
    if traces not in _TRACES:
        raise ValueError(f"traces must be one of {list(_TRACES)}, got {traces!r}")
    B, b, dt = net.batch, instance, net.dt
    for name, inp in net.inputs.items():
        if not isinstance(inp, SpikeTimesInput):
            raise TypeError(
                f"cannot export input {name!r} ({type(inp).__name__}); supported: {_NET_SUPPORTED}"
            )
    for name, pop in net.populations.items():
        if type(pop) not in (LIFPopulation, AdExPopulation):  # the steps written below
            raise TypeError(
                f"cannot export population {name!r} ({type(pop).__name__}); "
                f"supported: {_NET_SUPPORTED}"
            )
    for name, p in net.projections.items():
        ok = (
            p.target in ("ampa", "gaba")
            and p.value is None
            and p.sign is None
            and (p.rule is None or isinstance(p.rule, (PairSTDP, TripletSTDP, InhibitorySTDP)))
        )
        if not ok:
            raise TypeError(
                f"cannot export projection {name!r} (rule {p.rule!r}, target "
                f"{p.target!r}); supported: {_NET_SUPPORTED}"
            )

    import brian2 as b2

    ms = dt * b2.second
    groups: dict[str, Any] = {}
    objs: list[Any] = []
    for name, inp in net.inputs.items():
        t = torch.as_tensor(inp.times, dtype=torch.float64).reshape(-1)
        i = torch.as_tensor(inp.indices, dtype=torch.int64).reshape(-1)
        if inp.instances is not None:
            keep = torch.as_tensor(inp.instances, dtype=torch.int64).reshape(-1) == b
            t, i = t[keep], i[keep]
        steps = torch.round(t / dt).to(torch.int64).numpy()
        g = b2.SpikeGeneratorGroup(
            int(inp.n), i.numpy(), steps * dt * b2.second, dt=ms, name=f"{name}*"
        )
        groups[name] = g
        objs.append(g)
    spikes: dict[str, Any] = {}
    for name, pop in net.populations.items():
        adex = isinstance(pop, AdExPopulation)
        v = {k: _at(f"{name}.{k}", getattr(pop, k), b, B) for k in type(pop)._PARAMS}
        fixed = pop.ampa_drive is not None
        nmda, gaba = pop.uses["nmda"], pop.uses["gaba"]
        model = "V : 1\ng_ampa : 1\nref : 1\n" + "".join(
            f"{x} : 1\n" for x, on in (("g_nmda", nmda), ("g_gaba", gaba), ("w_adapt", adex)) if on)
        g = b2.NeuronGroup(
            int(pop.n),
            model,
            threshold="V > V_th",
            reset="V = V_reset\nref = n_ref" + ("\nw_adapt += b_w" if adex else ""),
            dt=ms,
            name=f"{name}*",
            namespace={},
        )
        if isinstance(pop.V_init, torch.Tensor) and pop.V_init.ndim == 2:  # one per neuron
            row = pop.V_init[b if pop.V_init.shape[0] > 1 else 0]
            g.V = row.detach().to(torch.float64).cpu().numpy()
        else:
            g.V = v["E_L"] if pop.V_init is None else _at(f"{name}.V_init", pop.V_init, b, B)
        ns = {
            "V_th": v["V_th"],
            "V_reset": v["V_reset"],
            "n_ref": float(round(v["t_ref"] / dt)),
            "dec_ampa": math.exp(-dt / v["tau_ampa"]),
            "g_L": v["g_L"],
            "gLEL": v["g_L"] * v["E_L"] + v["I_ext"],
            "dt_over_C": dt / v["C"],
        }
        drive = _at(f"{name}.ampa_drive", pop.ampa_drive, b, B) if fixed else None
        syn, g_tot, num = _synaptic_terms(v, ns, drive, nmda, gaba)
        if adex:
            update = _adex_update(v, dt, ns, syn, g_tot, num)
        elif fixed and not (nmda or gaba):  # the engine's fast path: a constant factor
            ns.update(
                fac_m=math.exp(-dt / (v["C"] / v["g_L"])),
                V_rest=v["E_L"] + v["I_ext"] / v["g_L"],
                d_over_gL=drive / v["g_L"],
            )
            update = "V = (V_rest + g_ampa*d_over_gL) + fac_m*(V - (V_rest + g_ampa*d_over_gL))"
        else:
            update = "\n".join([*syn, f"g_tot = {g_tot}", f"V_inf = (gLEL{num})/g_tot",
                                "V = V_inf + exp(-g_tot*dt_over_C)*(V - V_inf)"])
        decays = ["g_ampa = g_ampa*dec_ampa"]
        for x, on in (("nmda", nmda), ("gaba", gaba)):
            if on:
                ns[f"dec_{x}"] = math.exp(-dt / v[f"tau_{x}"])
                decays.append(f"g_{x} = g_{x}*dec_{x}")
        code = "\n".join(
            [
                update,
                "V = V_reset*int(ref > 0) + V*int(ref <= 0)",  # refractory hold
                "ref = clip(ref - 1, 0, inf)",
                *decays,
            ]
        )
        g.namespace.update(ns)
        objs += [g, g.run_regularly(code, when="groups", order=-1, dt=ms, name=f"{name}_step*")]
        groups[name] = g
        spikes[name] = b2.SpikeMonitor(g, name=f"{name}_spikes*")
        objs.append(spikes[name])
    synapses: dict[str, Any] = {}
    shapes: dict[str, tuple[int, int]] = {}
    pairs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name, p in net.projections.items():
        n_post, n_pre = p.n_post, p.n_pre
        W0 = _instance_weights(p.W0, b, (n_post, n_pre))
        if p.rule is None:
            model, on_pre, on_post, params = "w : 1", "", "", {}
        else:
            rule = p.rule
            scal = {
                f.name: _at(f"{name}.rule.{f.name}", getattr(rule, f.name), b, B)
                for f in dataclasses.fields(rule)
                if isinstance(getattr(rule, f.name), torch.Tensor)
            }
            rule = dataclasses.replace(rule, **scal) if scal else rule
            spec = synapse_model(rule, traces=traces)
            model, on_pre, on_post, params = spec.model, spec.on_pre, spec.on_post, spec.params
        # transmission uses W before the update; static NMDA weights U0 (Primer Sec. 4.1)
        on_pre = f"g_{p.target}_post += w\n" + ("g_nmda_post += u\n" if p.U0 is not None
                                                  else "") + on_pre
        if p.U0 is not None:
            model += "\nu : 1 (constant)"
        kw: dict[str, Any] = {}
        if on_post:
            kw["on_post"] = on_post
        delay = p.delay_steps * dt if hasattr(p, "delay_steps") else float(p.delay)
        syn = b2.Synapses(
            groups[_name_of(net, p.pre)],
            groups[_name_of(net, p.post)],
            model=model,
            on_pre=on_pre,
            dt=ms,
            name=f"{name}*",
            delay={"pre": delay * b2.second} if delay else None,
            **kw,
        )
        U0 = _instance_weights(p.U0, b, (n_post, n_pre)) if p.U0 is not None else None
        present = (np.ones((n_post, n_pre), dtype=bool) if p.mask is None else
                   _instance_weights(p.mask, b, (n_post, n_pre)) != 0)  # the connection mask
        W0 = W0 * present
        U0 = U0 * present if U0 is not None else None
        if p.rule is None:  # static: only where a weight is nonzero (a zero adds nothing)
            jj, ii = np.nonzero((W0 != 0) | (U0 != 0 if U0 is not None else False))
        else:  # plastic: every pair of the mask (a zero weight may grow)
            jj, ii = np.nonzero(present)
        if ii.size:  # (a projection may have no synapse at all: Brian2 then connects none)
            syn.connect(i=ii, j=jj)  # row-major order either way: the same sums, same order
            for k, (unit, val) in params.items():
                setattr(syn, k, float(val) * (b2.second if unit == "second" else 1))
            syn.w = W0[jj, ii]
            if U0 is not None:
                syn.u = U0[jj, ii]
        else:  # Brian2 refuses to run a Synapses without synapses unless it is inactive
            syn.active = False
        pairs[name] = (jj, ii)
        synapses[name] = syn
        shapes[name] = (n_post, n_pre)
        objs.append(syn)
    return Brian2Network(b2.Network(*objs), groups, synapses, spikes, shapes, dt, codegen, pairs)


def _instance_weights(W: object, b: int, shape: tuple[int, int]) -> np.ndarray:
    """Instance ``b``'s ``(n_post, n_pre)`` weights from a float, a ``(n_post, n_pre)`` or a
    ``(batch, n_post, n_pre)`` tensor (float64)."""
    if isinstance(W, torch.Tensor):
        W = W.detach().to(torch.float64)
        W = (W[b] if W.ndim == 3 else W).numpy()
    return np.broadcast_to(np.asarray(W, dtype=np.float64), shape)


def _name_of(net: Any, obj: object) -> str:
    for objs in (net.inputs, net.populations):
        for k, v in objs.items():
            if v is obj:
                return k
    raise ValueError(f"{obj!r} is not in the network")


# ----------------------------------------------------------------------------------------------
# Rate rules of synaptic_fwp.rules (LinearRule, BCMRule) -> Brian2 per-step updates
# ----------------------------------------------------------------------------------------------


def _rate_series(name: str, x: object, last: int | None) -> torch.Tensor:
    """``(T, N)`` or scan's ``(B, T, H, N)`` -> ``(B, T, H, N)`` float64 (``B = H = 1`` for the
    former)."""
    if not isinstance(x, (torch.Tensor, np.ndarray)):
        raise TypeError(f"{name} must be a torch.Tensor or numpy array, got {type(x).__name__}")
    t = torch.as_tensor(np.asarray(x) if isinstance(x, np.ndarray) else x).to(torch.float64)
    if t.ndim == 2:
        t = t.reshape(1, t.shape[0], 1, t.shape[1])
    if t.ndim != 4:
        raise ValueError(f"{name} must have shape (T, N) or (B, T, H, N), got {tuple(t.shape)}")
    if last is not None and t.shape[-1] != last:
        raise ValueError(f"{name} must have {last} columns, got shape {tuple(t.shape)}")
    return t


@dataclass
class Brian2RateExport:
    """A built Brian2 network of a rate rule (:func:`rate_to_brian2`). ``run()`` simulates its
    ``T`` steps and returns ``{"y": (T, V), "W": (V, K), "states": (T, V, K)}`` for one
    sequence, or scan's layout ``{"y": (B, T, H, V), "W": (B, H, V, K), "states":
    (B, T, H, V, K)}`` for a batch (``batch = (B, H)``); numpy float64, ``y_t = W_t q_t`` with
    ``W_t`` after the step-``t`` write, as :func:`synaptic_fwp.scan`."""

    network: Any
    synapses: Any
    pre: Any
    post: Any
    y_monitor: Any
    w_monitor: Any
    shape: tuple[int, int]
    steps: int
    dt: float
    codegen: str
    rule_name: str
    regular: str
    batch: tuple[int, int] | None = None
    ran: bool = field(default=False)

    def run(self) -> dict[str, np.ndarray]:
        from brian2 import prefs, second

        if not self.ran:
            old = prefs.codegen.target
            prefs.codegen.target = self.codegen
            try:
                self.network.run(self.steps * self.dt * second, namespace={})
            finally:
                prefs.codegen.target = old
            self.ran = True
        V, K = self.shape
        y = np.asarray(self.y_monitor.y[:], dtype=np.float64).T  # (T, B H V)
        W = np.asarray(self.synapses.w[:], dtype=np.float64)  # (B H V K)
        st = np.asarray(self.w_monitor.w[:], dtype=np.float64).T  # (T, B H V K)
        if self.batch is None:
            return {"y": y.copy(), "W": W.reshape(V, K), "states": st.reshape(-1, V, K)}
        B, H = self.batch
        return {
            "y": y.reshape(-1, B, H, V).transpose(1, 0, 2, 3).copy(),
            "W": W.reshape(B, H, V, K),
            "states": st.reshape(-1, B, H, V, K).transpose(1, 0, 2, 3, 4).copy(),
        }


def rate_rule_code(rule: object) -> dict[str, str]:
    r"""The Brian2 code of one step of a rate rule of :mod:`synaptic_fwp.rules` (Primer Eq. 31;
    :class:`~synaptic_fwp.rules.LinearRule` or :class:`~synaptic_fwp.rules.BCMRule`).

    Synapse ``i -> j`` holds ``w = W[j, i]``; the presynaptic group holds ``k`` (the key /
    presynaptic rate), ``q`` (query) and, for ``decay="pre"``, the gate ``a``; the postsynaptic
    group holds ``v`` (value), the per-step gates ``lam`` (``lambda_t``), ``c`` (write
    coefficient ``c_t``), ``a`` (``decay="post"``) and the summed read-outs. Returns
    ``{"model", "update", "post_update"}``: the Synapses model with the summed variables
    ``Wk_post = sum_i w k_i`` (delta rule, BCM ``drive="output"``), ``Wtv_pre = sum_j w v_j``
    (Oja) and ``y_post = sum_i w q_i`` (read-out), the per-step weight update (one
    ``run_regularly`` statement block), and the postsynaptic BCM threshold update (or ``""``)::

        hebbian family: w = lam*w + c*v_post*k_pre
        delta:          w = lam*w + c*(v_post - Wk_post)*k_pre   (Wk from lam*W if decay_first)
        oja:            w = lam*w + c*v_post*(k_pre - Wtv_pre)
        bcm:            theta = l*theta + (1 - l)*yb**2   (post group; yb = v or W k)
                        w = w + c*yb_post*(yb_post - theta_post)*k_pre

    ``lam`` stands for ``lam_post`` (scalar), ``a_post`` (``decay="post"``), ``a_pre``
    (``decay="pre"``) or 1. Source: the Primer (Irie & Gershman), Table 1 and Eq. 31;
    Bienenstock, Cooper & Munro 1982 (BCM).
    """
    from .rules import BCMRule, LinearRule

    model = ["w : 1", "y_post = w*q_pre : 1 (summed)"]
    if isinstance(rule, BCMRule):
        if rule.drive == "output":
            model.append("Wk_post = w*k_pre : 1 (summed)")
            yb = "yb = Wk"
        else:
            yb = "yb = v"
        post = "\n".join(
            [yb, f"theta = {float(rule.theta_decay)!r}*theta + "
                 f"{1.0 - float(rule.theta_decay)!r}*yb**2"]
        )
        update = "w = w + c_post*yb_post*(yb_post - theta_post)*k_pre"
        return {"model": "\n".join(model), "update": update, "post_update": post}
    if not isinstance(rule, LinearRule):
        raise TypeError(
            f"rule must be a LinearRule or BCMRule of synaptic_fwp.rules, got {type(rule).__name__}"
        )
    lam = {"none": None, "scalar": "lam_post", "post": "a_post", "pre": "a_pre"}[rule.decay]
    decayed = f"{lam}*w" if lam else "w"
    read = decayed if rule.decay_first else "w"  # the state the correction reads
    if rule.correction == "delta":
        model.append(f"Wk_post = {read}*k_pre : 1 (summed)")
        update = f"w = {decayed} + c_post*(v_post - Wk_post)*k_pre"
    elif rule.correction == "oja":
        model.append(f"Wtv_pre = {read}*v_post : 1 (summed)")
        update = f"w = {decayed} + c_post*v_post*(k_pre - Wtv_pre)"
    else:
        update = f"w = {decayed} + c_post*v_post*k_pre"
    return {"model": "\n".join(model), "update": update, "post_update": ""}


def rate_to_brian2(
    rule: object,
    k: torch.Tensor | np.ndarray,
    v: torch.Tensor | np.ndarray,
    q: torch.Tensor | np.ndarray | None = None,
    *,
    eta: torch.Tensor | float | None = None,
    decay: torch.Tensor | float | None = None,
    gate: torch.Tensor | None = None,
    W0: torch.Tensor | np.ndarray | None = None,
    phi: str | None = None,
    dt: float = 1e-3,
    codegen: str = "numpy",
) -> Brian2RateExport:
    r"""A rate rule of :mod:`synaptic_fwp.rules` as a Brian2 network driven by given traces.

    For one sequence, ``K`` presynaptic neurons (``NeuronGroup``) take ``k_t`` (presynaptic
    rates) and ``q_t``, ``V`` postsynaptic neurons take ``v_t`` and the per-step gates, each from
    a ``TimedArray`` at the start of step ``t``; all-to-all ``Synapses`` hold ``W`` (``w`` of
    synapse ``i -> j`` is ``W[j, i]``) and apply :func:`rate_rule_code`'s update once per step
    (``run_regularly`` in the ``synapses`` slot), after Brian2 has formed the summed read-outs
    ``W k`` / ``W^T v`` (``groups`` slot) from ``W_{t-1}``; the read-out ``y_t = W_t q_t`` is
    summed at the ``end`` of the step. This is :func:`synaptic_fwp.scan`, one Brian2 step
    (``dt`` s; the rules' factors are per step, so ``dt`` only labels time) per sequence step.
    A batch of ``B x H`` sequences (scan's layout) becomes ``B H`` such blocks in the same
    groups, neuron ``n K + i`` (pre) and ``n V + j`` (post) of sequence ``n = b H + h``, each
    block connected only within itself; the per-sequence gates are read through the post
    neuron's ``inst``.

    ``k``, ``q``: ``(T, K)``; ``v``: ``(T, V)``; or scan's ``(B, T, H, K|V)`` (results then in
    scan's layout, see :class:`Brian2RateExport`). ``q`` defaults to ``k``. ``eta``, ``decay``,
    ``gate``, ``phi`` (applied to ``q`` and ``k`` first) as in :func:`synaptic_fwp.scan`
    (validated by :func:`synaptic_fwp.sequence.prepare`); ``W0``: ``(V, K)`` (every sequence) or
    ``(B, H, V, K)``, zeros if omitted. ``rule``: a catalogue name or rule object.
    """
    from .rules import BCMRule, get, get_feature_map
    from .sequence import prepare

    if codegen not in _TARGETS:
        raise ValueError(f"codegen must be one of {list(_TARGETS)}, got {codegen!r}")
    if isinstance(dt, bool) or not isinstance(dt, (int, float)) or not (
        math.isfinite(dt) and dt > 0
    ):
        raise ValueError(f"dt must be a finite number of seconds > 0, got {dt!r}")
    rule = get(rule)
    kt = _rate_series("k", k, None)
    vt = _rate_series("v", v, None)
    qt = kt if q is None else _rate_series("q", q, kt.shape[-1])
    B, T, H, K = kt.shape
    V = vt.shape[-1]
    if vt.shape[1] != T or qt.shape[1] != T:
        raise ValueError(
            f"k, v and q must have the same number of steps, got {T}, {vt.shape[1]}, {qt.shape[1]}"
        )
    if vt.shape[::2] != (B, H) or qt.shape[::2] != (B, H):
        raise ValueError(
            f"k, v and q must have the same batch size and heads (B, H), got {(B, H)}, "
            f"{tuple(vt.shape[::2])}, {tuple(qt.shape[::2])}"
        )
    batch = (B, H) if k.ndim == 4 else None  # scan's layout in, scan's layout out
    n = B * H
    init = None
    if W0 is not None:
        w0 = torch.as_tensor(np.asarray(W0) if isinstance(W0, np.ndarray) else W0)
        if tuple(w0.shape) not in ((V, K), (B, H, V, K)):
            raise ValueError(
                f"W0 must have shape (V, K) = {(V, K)} or (B, H, V, K) = {(B, H, V, K)}, "
                f"got {tuple(w0.shape)}"
            )
        init = w0.to(torch.float64).expand(B, H, V, K).contiguous()
    rule, g, W0t = prepare(
        qt, kt, vt, rule, eta=eta, decay=decay, gate=gate, initial_state=init
    )
    f = get_feature_map(phi)
    qt, kt = f(qt), f(kt)
    code = rate_rule_code(rule)

    import brian2 as b2

    sec = b2.second
    clock = dt * sec

    def arr(x: torch.Tensor) -> np.ndarray:  # (B, T, H[, N]) -> (T, B H N), sequence-major
        x = x.detach().to(torch.float64)
        return x.reshape(B, T, H, -1).transpose(0, 1).reshape(T, -1).numpy()

    ones = np.ones((T, n))
    if isinstance(rule, BCMRule):
        c = arr(g["eta"]) if g["eta"] is not None else ones
        lam = ones
    else:
        lam = arr(g["decay"]) if g["decay"] is not None else ones
        coef = rule.write_coef({"eta": g["eta"], "decay": g["decay"], "gate": None})
        c = arr(coef) if isinstance(coef, torch.Tensor) else ones * float(coef)
    gate_side = getattr(rule, "decay", "none") if g["gate"] is not None else None
    pre_ns: dict[str, Any] = {
        "k_in": b2.TimedArray(arr(kt), dt=clock),
        "q_in": b2.TimedArray(arr(qt), dt=clock),
    }
    post_ns: dict[str, Any] = {
        "v_in": b2.TimedArray(arr(vt), dt=clock),
        "lam_in": b2.TimedArray(lam, dt=clock),
        "c_in": b2.TimedArray(c, dt=clock),
    }
    pre_set = ["k = k_in(t, i)", "q = q_in(t, i)"]
    post_set = ["v = v_in(t, i)", "lam = lam_in(t, inst)", "c = c_in(t, inst)"]
    if gate_side == "pre":
        pre_ns["a_in"] = b2.TimedArray(arr(g["gate"]), dt=clock)
        pre_set.append("a = a_in(t, i)")
    elif gate_side == "post":
        post_ns["a_in"] = b2.TimedArray(arr(g["gate"]), dt=clock)
        post_set.append("a = a_in(t, i)")
    pre_g = b2.NeuronGroup(
        n * K, "k : 1\nq : 1\na : 1\nWtv : 1", dt=clock, namespace=pre_ns, name="fwp_pre*"
    )
    post_g = b2.NeuronGroup(
        n * V,
        "v : 1\nlam : 1\nc : 1\na : 1\nWk : 1\ny : 1\nyb : 1\ntheta : 1\n"
        "inst : integer (constant)",
        dt=clock,
        namespace=post_ns,
        name="fwp_post*",
    )
    post_g.inst = np.repeat(np.arange(n), V)  # the sequence of each postsynaptic neuron
    if isinstance(rule, BCMRule):
        post_g.theta = float(rule.theta0)
    syn = b2.Synapses(pre_g, post_g, model=code["model"], dt=clock, name="fwp_synapses*")
    seq = np.arange(n)[:, None]  # synapse order: sequence, post j, pre i (W's (B, H, V, K))
    syn.connect(i=(seq * K + np.tile(np.arange(K), V)).ravel(),
                j=(seq * V + np.repeat(np.arange(V), K)).ravel())
    syn.w = W0t.detach().reshape(-1).numpy().astype(np.float64)
    syn.summed_updaters["y_post"].when = "end"  # y_t = W_t q_t, after the write
    objs = [
        pre_g,
        post_g,
        syn,
        pre_g.run_regularly("\n".join(pre_set), when="start", dt=clock, name="fwp_pre_in*"),
        post_g.run_regularly("\n".join(post_set), when="start", dt=clock, name="fwp_post_in*"),
        syn.run_regularly(code["update"], when="synapses", order=0, dt=clock, name="fwp_write*"),
    ]
    if code["post_update"]:
        objs.append(
            post_g.run_regularly(
                code["post_update"], when="synapses", order=-1, dt=clock, name="fwp_theta*"
            )
        )
    y_mon = b2.StateMonitor(post_g, "y", record=True, when="end", order=10, dt=clock)
    w_mon = b2.StateMonitor(syn, "w", record=True, when="end", order=10, dt=clock)
    objs += [y_mon, w_mon]
    return Brian2RateExport(
        b2.Network(*objs),
        syn,
        pre_g,
        post_g,
        y_mon,
        w_mon,
        (V, K),
        T,
        float(dt),
        codegen,
        rule.name,
        code["update"],
        batch,
    )


# ----------------------------------------------------------------------------------------------
# BTSP (per-lap rules of synaptic_fwp.plasticity.btsp) -> Brian2 continuous signals
# ----------------------------------------------------------------------------------------------


@dataclass
class Brian2BTSPExport:
    """A built Brian2 network of one BTSP lap (:func:`btsp_to_brian2`). ``run()`` returns
    ``{"W": (n_pre,), "et": (n_pre, T), "is_": (T,)}`` (numpy float64): the weights after the
    lap and the normalised signals Brian2 integrated (comparable with
    :func:`~synaptic_fwp.plasticity.btsp.eligibility_trace` and
    :func:`~synaptic_fwp.plasticity.btsp.instructive_signal`)."""

    network: Any
    synapses: Any
    ca3: Any
    ca1: Any
    et_monitor: Any
    is_monitor: Any
    steps: int
    dt: float
    a_et: float
    periodic: bool
    codegen: str
    rule_name: str
    ran: bool = field(default=False)
    peaks: tuple[float, float] = field(default=(1.0, 1.0))  # (max ET, max IS) before scaling

    def run(self) -> dict[str, Any]:
        from brian2 import prefs, second

        if not self.ran:
            old = prefs.codegen.target
            prefs.codegen.target = self.codegen
            lap = self.steps * self.dt * second
            try:
                net = self.network
                net.store("rest")
                et0 = np.zeros(len(self.ca3))
                if self.periodic:  # lap from rest: ET_end = F; periodic start F / (1 - a^T)
                    net.run(lap, namespace={})
                    et0 = np.asarray(self.ca3.ET[:]) / (1.0 - self.a_et**self.steps)
                    net.restore("rest")
                self.ca3.ET = et0
                net.run(lap, namespace={})  # pass 1: the signals' peaks (population maxima)
                et_peak = float(np.max(self.ca3.ET_peak[:]))
                is_peak = float(np.max(self.ca1.IS_peak[:]))
                net.restore("rest")
                self.ca3.ET = et0
                self.synapses.namespace.update(
                    et_peak=max(et_peak, np.finfo(np.float64).tiny),
                    is_peak=max(is_peak, np.finfo(np.float64).tiny),
                )
                net.run(lap, namespace={})  # pass 2: the lap's plasticity
            finally:
                prefs.codegen.target = old
            self.ran = True
            self.peaks = (et_peak, is_peak)
        et_peak, is_peak = self.peaks
        return {
            "W": np.asarray(self.synapses.w[:], dtype=np.float64),
            "et": np.asarray(self.et_monitor.ET[:], dtype=np.float64) / et_peak,
            "is_": np.asarray(self.is_monitor.IS[0], dtype=np.float64) / is_peak,
        }


def _scalar_param(rule: object, name: str) -> float:
    x = getattr(rule, name)
    if isinstance(x, torch.Tensor):
        if x.numel() != 1:
            raise ValueError(
                f"{type(rule).__name__}.{name} must be a single value for the Brian2 export "
                f"(one lap of one cell), got a tensor of shape {tuple(x.shape)}"
            )
        return float(x.reshape(()))
    return float(x)


def btsp_to_brian2(
    rule: object,
    rates: torch.Tensor | np.ndarray,
    plateau: torch.Tensor | np.ndarray,
    W0: torch.Tensor | np.ndarray | float = 1.0,
    *,
    dt: float,
    periodic: bool = False,
    codegen: str = "numpy",
) -> Brian2BTSPExport:
    r"""One lap of a BTSP rule (:class:`~synaptic_fwp.plasticity.btsp.MilsteinBTSP` or
    :class:`~synaptic_fwp.plasticity.btsp.PrimerBTSP`) as a Brian2 network: ``n_pre`` CA3
    neurons -> one CA1 neuron.

    Continuous signals, advanced once per step by their exact solution with the input held
    over the step that ends at each sample (``run_regularly``, slot ``start``):

    - CA3 eligibility trace, ``tau_ET dET_i/dt = r_i(t) - ET_i``:
      ``ET_i <- a ET_i + (1 - a) r_i[n]``, ``a = exp(-dt/tau_et)``;
    - CA1 instructive signal from the EC3 plateau gate ``P(t)``, ``tau_IS dIS/dt = P - IS``:
      ``IS <- b IS + (1 - b) P[n]``;
    - per synapse, the trapezoid integrals over the lap of ``q_pm(x)`` (Milstein) or of ``x``
      (Primer), ``x = ET_i IS / (max ET * max IS)`` (the normalisation by the population peaks
      of :func:`~synaptic_fwp.plasticity.btsp.eligibility_trace` /
      :func:`~synaptic_fwp.plasticity.btsp.instructive_signal`; it needs the whole lap, so
      Brian2 first runs the lap once to record the peaks, then again with them), and the weight
      ``w = clip(w0/W_max + k_+ I_+ (1 - w0/W_max) - k_- I_- w0/W_max, 0, 1) W_max`` (Milstein,
      Milstein et al. 2021, eLife 10:e73046) or ``min(w0 + eta I, w_max)`` (Primer Sec. 4.2).

    ``rates``: ``(n_pre, T)`` CA3 rates (Hz) sampled every ``dt`` s; ``plateau``: ``(T,)`` the
    plateau gate (0/1, its value over the step ending at each sample; a plateau of duration
    ``D`` from ``t = 0`` is ``P[n] = 1`` for ``0 < n dt <= D``, which makes ``IS`` equal
    :func:`instructive_signal` exactly); ``W0``: ``(n_pre,)`` or a scalar (baseline units);
    ``periodic``: the eligibility trace's periodic steady state (running laps), as
    ``eligibility_trace(periodic=True)``: Brian2 runs one lap from rest to get the end state
    ``F`` and starts from ``F / (1 - a^T)``. Returns a :class:`Brian2BTSPExport`; compare its
    ``run()["W"]`` with ``rule.lap_update(W0, eligibility_trace(rates, dt, rule.tau_et,
    periodic), instructive_signal(t, D, rule.tau_is), dt)``.
    """
    from .plasticity.btsp import MilsteinBTSP, PrimerBTSP

    if not isinstance(rule, (MilsteinBTSP, PrimerBTSP)):
        raise TypeError(
            f"rule must be a MilsteinBTSP or PrimerBTSP, got {type(rule).__name__}"
        )
    if codegen not in _TARGETS:
        raise ValueError(f"codegen must be one of {list(_TARGETS)}, got {codegen!r}")
    if isinstance(dt, bool) or not isinstance(dt, (int, float)) or not (
        math.isfinite(dt) and dt > 0
    ):
        raise ValueError(f"dt must be a finite number of seconds > 0, got {dt!r}")
    if not isinstance(periodic, bool):
        raise TypeError(f"periodic must be a bool, got {periodic!r}")
    r = np.asarray(rates.detach().cpu() if isinstance(rates, torch.Tensor) else rates, float)
    p = np.asarray(plateau.detach().cpu() if isinstance(plateau, torch.Tensor) else plateau, float)
    if r.ndim == 3 and r.shape[0] == 1:
        r = r[0]
    if p.ndim == 2 and p.shape[0] == 1:
        p = p[0]
    if r.ndim != 2 or r.shape[1] < 2:
        raise ValueError(f"rates must have shape (n_pre, T) with T >= 2, got {r.shape}")
    n_pre, T = r.shape
    if p.shape != (T,):
        raise ValueError(f"plateau must have shape (T,) = ({T},), got {p.shape}")
    for name, x in (("rates", r), ("plateau", p)):
        if not np.isfinite(x).all():
            raise ValueError(f"{name} must be finite")
    w0 = np.asarray(W0.detach().cpu() if isinstance(W0, torch.Tensor) else W0, float).reshape(-1)
    if w0.size == 1:
        w0 = np.full(n_pre, float(w0[0]))
    if w0.shape != (n_pre,) or not np.isfinite(w0).all():
        raise ValueError(f"W0 must be a finite scalar or have shape ({n_pre},), got {w0.shape}")
    tau_et, tau_is = _scalar_param(rule, "tau_et"), _scalar_param(rule, "tau_is")

    import brian2 as b2

    clock = dt * b2.second
    a_et, a_is = math.exp(-dt / tau_et), math.exp(-dt / tau_is)
    ca3 = b2.NeuronGroup(
        n_pre,
        "ET : 1\nET_peak : 1",
        dt=clock,
        namespace={"r_in": b2.TimedArray(r.T.copy(), dt=clock), "a_et": a_et},
        name="ca3*",
    )
    ca1 = b2.NeuronGroup(
        1,
        "IS : 1\nIS_peak : 1",
        dt=clock,
        namespace={"p_in": b2.TimedArray(p, dt=clock), "a_is": a_is},
        name="ca1*",
    )
    ns: dict[str, Any] = {"et_peak": 1.0, "is_peak": 1.0}
    first = "int(t > 0.5*dt)"  # the trapezoid's first segment ends at step 1
    lines = ["x = ET_pre*IS_post/(et_peak*is_peak)"]
    if isinstance(rule, MilsteinBTSP):
        model = "w : 1\nw0 : 1\nI_pot : second\nI_dep : second\nqp : 1\nqd : 1"
        for tag, th, hw in (("p", "pot_th", "pot_half_width"), ("d", "dep_th", "dep_half_width")):
            thv, slope = _scalar_param(rule, th), 2.0 / _scalar_param(rule, hw)
            s0 = 1.0 / (1.0 + math.exp(slope * thv))
            s1 = 1.0 / (1.0 + math.exp(-slope * (1.0 - thv)))
            ns.update({f"th_{tag}": thv, f"sl_{tag}": slope, f"s0_{tag}": s0, f"s1_{tag}": s1})
            lines.append(
                f"q_{tag} = (1/(1 + exp(-sl_{tag}*(x - th_{tag}))) - s0_{tag})"
                f"/(s1_{tag} - s0_{tag})"
            )
        wmax = 1.0 + _scalar_param(rule, "peak_delta_weight")
        ns.update(
            k_pot=_scalar_param(rule, "k_pot") * b2.Hz,
            k_dep=_scalar_param(rule, "k_dep") * b2.Hz,
            wmax=wmax,
        )
        lines += [
            f"I_pot = I_pot + 0.5*dt*(q_p + qp)*{first}",
            f"I_dep = I_dep + 0.5*dt*(q_d + qd)*{first}",
            "qp = q_p",
            "qd = q_d",
            "w = clip(w0/wmax + k_pot*I_pot*(1 - w0/wmax) - k_dep*I_dep*w0/wmax, 0, 1)*wmax",
        ]
    else:
        model = "w : 1\nw0 : 1\nI_x : second\nxl : 1"
        ns.update(eta=_scalar_param(rule, "eta") * b2.Hz, wmax=_scalar_param(rule, "w_max"))
        lines += [
            f"I_x = I_x + 0.5*dt*(x + xl)*{first}",
            "xl = x",
            "w = clip(w0 + eta*I_x, -inf, wmax)",
        ]
    syn = b2.Synapses(ca3, ca1, model=model, dt=clock, namespace=ns, name="btsp*")
    syn.connect(i=np.arange(n_pre), j=np.zeros(n_pre, dtype=np.int64))
    syn.w0 = w0
    syn.w = w0
    objs = [
        ca3,
        ca1,
        syn,
        ca3.run_regularly(
            "ET = a_et*ET + (1 - a_et)*r_in(t, i)\nET_peak = clip(ET_peak, ET, inf)",
            when="start",
            dt=clock,
            name="ca3_et*",
        ),
        ca1.run_regularly(
            "IS = a_is*IS + (1 - a_is)*p_in(t)\nIS_peak = clip(IS_peak, IS, inf)",
            when="start",
            dt=clock,
            name="ca1_is*",
        ),
        syn.run_regularly("\n".join(lines), when="synapses", dt=clock, name="btsp_lap*"),
    ]
    et_mon = b2.StateMonitor(ca3, "ET", record=True, when="end", dt=clock)
    is_mon = b2.StateMonitor(ca1, "IS", record=True, when="end", dt=clock)
    objs += [et_mon, is_mon]
    return Brian2BTSPExport(
        b2.Network(*objs), syn, ca3, ca1, et_mon, is_mon, T, float(dt), a_et, periodic,
        codegen, getattr(rule, "name", type(rule).__name__),
    )
