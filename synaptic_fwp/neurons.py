r"""Neuron populations for the batched network engine: rate units, conductance-based LIF and
adaptive exponential integrate-and-fire (AdEx, :class:`AdExPopulation`).

Every population holds ``n`` neurons per instance; states have shape ``(batch, n)``. Parameters
are SI (s, V, S, F, A) and may be given per instance (tensor of shape ``(batch,)``). Initial
values (``V_init``, ``r_init``) may also be given per neuron, as a tensor of shape ``(batch, n)``
or ``(1, n)`` (the same for every instance): e.g. potentials drawn uniformly between reset and
threshold, so that a recurrent network does not start in lockstep (Brette et al. 2007, J Comput
Neurosci 23:349, benchmark networks).

Rate population (Dayan & Abbott 2001, Sec. 7.2)::

    tau dr/dt = -r + f(I),     I = sum_proj W r_pre + I_ext

integrated exactly with ``I`` held over a step: ``r <- f(I) + (r - f(I)) exp(-dt/tau)``.

Conductance-based leaky integrate-and-fire (Dayan & Abbott 2001, Sec. 5.4 and 5.8)::

    C dV/dt = g_L (E_L - V) + g_A (E_A - V) + g_N B(V) (E_N - V) + g_G (E_G - V) + I_ext
    dg_X/dt = -g_X / tau_X  (X = A, N, G),   g_X += W_X s_pre at presynaptic spikes
    B(V) = 1 / (1 + exp(-0.062 V/mV) [Mg2+] / 3.57 mM)      (Jahr & Stevens 1990)

Between spikes, with the conductances (and the Mg block ``B(V)``) held over a step, the membrane
equation is linear in ``V`` and is advanced exactly (exponential integrator)::

    g_tot = g_L + g_A + g_N B(V) + g_G
    V_inf = (g_L E_L + g_A E_A + g_N B E_N + g_G E_G + I) / g_tot
    V(t + dt) = V_inf + (V(t) - V_inf) exp(-dt g_tot / C)

and each conductance decays exactly by ``exp(-dt/tau_X)``. A spike is emitted when
``V > V_th``; ``V`` is then set to ``V_reset`` and held there for ``t_ref`` (rounded to whole
steps). With constant current ``I`` and no synapses, the rate is the closed form
``1 / (t_ref + tau_m ln((V_inf - V_reset)/(V_inf - V_th)))``, ``tau_m = C/g_L`` (see
:func:`lif_rate`).

``ampa_drive``: ``None`` (default) is the conductance-based AMPA current ``g_A (E_A - V)``;
a voltage (e.g. ``E_A - V_reset``) gives the fixed-driving-force form ``g_A * ampa_drive`` used by
Brian2's ``examples/synapses/STDP.py`` (``dv/dt = (ge (Ee - vr) + El - v)/taum``, with
``g_A = ge g_L``); that form keeps ``g_tot = g_L``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from ._params import (
    check_initial,
    check_value,
    exp_factor,
    initial_to_batch,
    is_swept,
    min_value,
    to_batch,
)

__all__ = ["RatePopulation", "LIFPopulation", "AdExPopulation", "mg_block", "lif_rate", "F_KINDS",
           "DT_FRACTION", "NAUD2008"]

F_KINDS = ("linear", "rectified", "sigmoid", "saturating")

#: dt may be at most this fraction of the smallest time constant of a model (the step holds
#: conductances and inputs constant, so it must resolve the fastest dynamics).
DT_FRACTION = 0.5


def mg_block(V: torch.Tensor, mg: float | torch.Tensor = 1.0) -> torch.Tensor:
    """Jahr & Stevens 1990 NMDA Mg2+ block ``1/(1 + exp(-0.062 V/mV) [Mg]/3.57 mM)``; ``V`` in
    volts, ``mg`` in mM."""
    return 1.0 / (1.0 + torch.exp(-62.0 * V) * (mg / 3.57))


def lif_rate(
    I: float, *, C: float, g_L: float, E_L: float, V_th: float, V_reset: float, t_ref: float = 0.0
) -> float:
    """Closed-form firing rate (Hz) of the LIF neuron with constant current ``I`` (A):
    ``1/(t_ref + tau_m ln((V_inf - V_reset)/(V_inf - V_th)))`` if ``V_inf = E_L + I/g_L > V_th``,
    else 0 (Dayan & Abbott 2001, Eq. 5.11 with a refractory period)."""
    V_inf = E_L + I / g_L
    if V_inf <= V_th:
        return 0.0
    tau = C / g_L
    return 1.0 / (t_ref + tau * math.log((V_inf - V_reset) / (V_inf - V_th)))


def _check_dt(owner: str, dt: float, taus: dict[str, object]) -> None:
    for name, tau in taus.items():
        if tau is None:
            continue
        t = min_value(tau)  # type: ignore[arg-type]
        if dt > DT_FRACTION * t:
            raise ValueError(
                f"dt={dt} s is larger than the smallest time constant allows: {owner}.{name}="
                f"{t} s requires dt <= {DT_FRACTION} * {name} = {DT_FRACTION * t} s"
            )


class Population:
    """Base class: ``n`` neurons per instance, bound to a network by :meth:`bind`."""

    kind = "rate"  # "rate" or "spikes": what the population sends to its projections
    n: int
    name: str

    def swept(self) -> dict[str, torch.Tensor]:
        """Parameters given per instance (become coordinates on ``batch``)."""
        return {k: v for k, v in self.params().items() if is_swept(v)}

    def params(self) -> dict[str, object]:
        """The population's parameters by name (subclasses list theirs)."""
        return {}


@dataclass(eq=False)
class RatePopulation(Population):
    """Rate units ``tau dr/dt = -r + f(I)`` (module docstring).

    ``f``: ``"linear"`` (``gain I``), ``"rectified"`` (``gain [I - theta]_+``), ``"sigmoid"``
    (``r_max / (1 + exp(-gain (I - theta)))``), ``"saturating"``
    (``r_max tanh(gain [I - theta]_+ / r_max)``). ``tau`` in s; ``r`` and ``r_max`` in Hz;
    ``gain`` in Hz per unit of input; ``I_ext`` a constant input; ``r_init`` (Hz) the initial
    rate: a number, per instance ``(batch,)`` or per neuron ``(batch, n)`` / ``(1, n)``.
    """

    n: int
    tau: float | torch.Tensor = 10e-3
    f: str = "linear"
    gain: float | torch.Tensor = 1.0
    theta: float | torch.Tensor = 0.0
    r_max: float | torch.Tensor = 100.0
    I_ext: float | torch.Tensor = 0.0
    r_init: float | torch.Tensor = 0.0
    name: str = "rate"
    kind: str = field(default="rate", init=False)

    def __post_init__(self) -> None:
        _check_n("n", self.n)
        if self.f not in F_KINDS:
            raise ValueError(f"f must be one of {list(F_KINDS)}, got {self.f!r}")
        check_value("tau", self.tau, positive=True)
        check_value("gain", self.gain)
        check_value("theta", self.theta)
        check_value("r_max", self.r_max, positive=True)
        check_value("I_ext", self.I_ext)
        check_initial("r_init", self.r_init, self.n)

    def params(self) -> dict[str, object]:
        return {k: getattr(self, k) for k in ("tau", "gain", "theta", "r_max", "I_ext", "r_init")}

    variables = {
        "r": ("Hz", "firing rate"),
        "I": ("1", "total input (synaptic + external)"),
    }

    def bind(self, dt: float, batch: int, dtype: torch.dtype, device: torch.device) -> None:
        _check_dt(self.name, dt, {"tau": self.tau})
        p = {k: to_batch(k, v, batch, dtype, device) for k, v in self.params().items()
             if k != "r_init"}
        p["r_init"] = initial_to_batch("r_init", self.r_init, self.n, batch, dtype, device)
        p["lam"] = exp_factor("tau", self.tau, dt, batch, dtype, device)
        self._p = p
        self._batch = batch

    def init_state(self) -> dict[str, torch.Tensor]:
        p = self._p
        r = p["r_init"].expand(self._batch, self.n).clone()
        return {"r": r, "I": torch.zeros_like(r), "I_syn": torch.zeros_like(r)}

    def f_of(self, I: torch.Tensor) -> torch.Tensor:
        p = self._p
        if self.f == "linear":
            return p["gain"] * I
        if self.f == "rectified":
            return p["gain"] * torch.relu(I - p["theta"])
        if self.f == "sigmoid":
            return p["r_max"] * torch.sigmoid(p["gain"] * (I - p["theta"]))
        return p["r_max"] * torch.tanh(p["gain"] * torch.relu(I - p["theta"]) / p["r_max"])

    def step(self, s: dict[str, torch.Tensor]) -> torch.Tensor:
        """Advance one step with the synaptic input accumulated in ``s["I_syn"]`` (then zeroed);
        ``s["I"]`` keeps the total input. Returns the new rates."""
        I = s["I_syn"] + self._p["I_ext"]
        target = self.f_of(I)
        s["I"] = I
        s["I_syn"] = torch.zeros_like(I)
        s["r"] = torch.lerp(target, s["r"], self._p["lam"])
        return s["r"]

    def output(self, s: dict[str, torch.Tensor]) -> torch.Tensor:
        return s["r"]


@dataclass(eq=False)
class LIFPopulation(Population):
    """Conductance-based LIF with AMPA, NMDA (Mg2+ block) and GABA conductances (module
    docstring). Units: ``C`` F, ``g_L`` S, potentials V, times s, ``I_ext`` A, ``mg`` mM.

    Defaults: a point neuron with ``tau_m = C/g_L = 20 ms``. ``V_init`` (V): the initial
    potential, ``E_L`` if ``None``; a number, per instance ``(batch,)`` or per neuron
    ``(batch, n)`` / ``(1, n)``.
    """

    n: int
    C: float | torch.Tensor = 200e-12
    g_L: float | torch.Tensor = 10e-9
    E_L: float | torch.Tensor = -70e-3
    V_th: float | torch.Tensor = -50e-3
    V_reset: float | torch.Tensor = -60e-3
    t_ref: float | torch.Tensor = 2e-3
    E_ampa: float | torch.Tensor = 0.0
    tau_ampa: float | torch.Tensor = 5e-3
    E_nmda: float | torch.Tensor = 0.0
    tau_nmda: float | torch.Tensor = 100e-3
    mg: float | torch.Tensor = 1.0
    E_gaba: float | torch.Tensor = -80e-3
    tau_gaba: float | torch.Tensor = 10e-3
    I_ext: float | torch.Tensor = 0.0
    V_init: float | torch.Tensor | None = None
    ampa_drive: float | torch.Tensor | None = None
    name: str = "lif"
    kind: str = field(default="spikes", init=False)

    def __post_init__(self) -> None:
        _check_n("n", self.n)
        for k in ("C", "g_L", "tau_ampa", "tau_nmda", "tau_gaba"):
            check_value(k, getattr(self, k), positive=True)
        check_value("t_ref", self.t_ref, nonneg=True)
        check_value("mg", self.mg, nonneg=True)
        for k in ("E_L", "V_th", "V_reset", "E_ampa", "E_nmda", "E_gaba", "I_ext"):
            check_value(k, getattr(self, k))
        check_initial("V_init", self.V_init, self.n, allow_none=True)
        check_value("ampa_drive", self.ampa_drive, allow_none=True)
        vth = torch.as_tensor(self.V_th, dtype=torch.float64)
        vr = torch.as_tensor(self.V_reset, dtype=torch.float64)
        if bool((vr >= vth).any()):
            raise ValueError(
                f"V_reset must be below V_th, got V_reset={self.V_reset}, V_th={self.V_th}"
            )

    _PARAMS = ("C", "g_L", "E_L", "V_th", "V_reset", "t_ref", "E_ampa", "tau_ampa", "E_nmda",
               "tau_nmda", "mg", "E_gaba", "tau_gaba", "I_ext")

    def params(self) -> dict[str, object]:
        out = {k: getattr(self, k) for k in self._PARAMS}
        if self.V_init is not None:
            out["V_init"] = self.V_init
        if self.ampa_drive is not None:
            out["ampa_drive"] = self.ampa_drive
        return out

    variables = {
        "V": ("V", "membrane potential"),
        "g_ampa": ("S", "AMPA conductance"),
        "g_nmda": ("S", "NMDA conductance (before the Mg2+ block)"),
        "g_gaba": ("S", "GABA conductance"),
        "spikes": ("1", "spike count in the recording interval"),
    }

    def bind(self, dt: float, batch: int, dtype: torch.dtype, device: torch.device) -> None:
        tau_m = (torch.as_tensor(self.C, dtype=torch.float64)
                 / torch.as_tensor(self.g_L, dtype=torch.float64))
        _check_dt(self.name, dt, {"tau_ampa": self.tau_ampa, "tau_nmda": self.tau_nmda,
                                  "tau_gaba": self.tau_gaba, "tau_m (C/g_L)": tau_m})
        p = {k: to_batch(k, v, batch, dtype, device) for k, v in self.params().items()
             if k != "V_init"}
        if self.V_init is not None:
            p["V_init"] = initial_to_batch("V_init", self.V_init, self.n, batch, dtype, device)
        p["dec_ampa"] = exp_factor("tau_ampa", self.tau_ampa, dt, batch, dtype, device)
        p["dec_nmda"] = exp_factor("tau_nmda", self.tau_nmda, dt, batch, dtype, device)
        p["dec_gaba"] = exp_factor("tau_gaba", self.tau_gaba, dt, batch, dtype, device)
        p["dt_over_C"] = dt / p["C"]
        p["gLEL"] = p["g_L"] * p["E_L"] + p["I_ext"]
        # refractory period in whole steps (per instance)
        tr = self.t_ref if isinstance(self.t_ref, torch.Tensor) else torch.tensor(self.t_ref)
        nref = torch.round(tr.to(torch.float64) / dt).to(torch.int64).reshape(-1, 1)
        p["n_ref"] = (nref.expand(batch, 1) if nref.shape[0] == 1 else nref).to(device).clone()
        self.has_ref = bool((p["n_ref"] > 0).any())
        if self.ampa_drive is not None:
            # fixed driving force: g_tot = g_L, constant membrane factor, exactly precomputed
            taum = (torch.as_tensor(self.C, dtype=torch.float64).reshape(-1)
                    / torch.as_tensor(self.g_L, dtype=torch.float64).reshape(-1)).tolist()
            taum = taum * batch if len(taum) == 1 else taum
            p["fac_m"] = torch.tensor([[math.exp(-dt / t)] for t in taum], dtype=dtype,
                                      device=device)
            p["drive_over_gL"] = p["ampa_drive"] / p["g_L"]
            p["V_rest"] = p["E_L"] + p["I_ext"] / p["g_L"]
        self._p = p
        self._batch = batch
        self.uses = {"ampa": True, "nmda": False, "gaba": False}

    def init_state(self) -> dict[str, torch.Tensor]:
        p = self._p
        V0 = p["V_init"] if "V_init" in p else p["E_L"]
        V = V0.expand(self._batch, self.n).clone()
        z = torch.zeros_like(V)
        s = {"V": V, "g_ampa": z.clone(), "g_nmda": z.clone(), "g_gaba": z.clone()}
        s["ref"] = torch.zeros(V.shape, dtype=torch.int64, device=V.device)
        return s

    def step(self, s: dict[str, torch.Tensor]) -> torch.Tensor:
        """Advance one step (module docstring); returns the spike mask ``(batch, n)`` (bool).
        ``s`` is updated in place."""
        return self.stepper(s)()

    def stepper(self, s: dict[str, torch.Tensor]):  # noqa: ANN201 - returns a closure
        """A closure advancing the state ``s`` in place by one step (the engine's hot path)."""
        p = self._p
        V, ga = s["V"], s["g_ampa"]
        fast = self.ampa_drive is not None and not self.uses["nmda"] and not self.uses["gaba"]
        gLEL, neg_dtC = p["gLEL"], -p["dt_over_C"]  # exp(g (-dt/C)): no negation per step
        V_rest, d_over_gL, fac_m = p.get("V_rest"), p.get("drive_over_gL"), p.get("fac_m")
        synaptic, fire = self._parts(s)

        def f() -> torch.Tensor:
            if fast:
                # fixed driving force: V_inf = E_L + I/g_L + g_A drive/g_L, factor exp(-dt/tau_m)
                torch.lerp(torch.addcmul(V_rest, ga, d_over_gL), V, fac_m, out=V)
            else:
                g_tot, num = synaptic(gLEL)
                torch.lerp(num / g_tot, V, torch.exp(g_tot * neg_dtC), out=V)
            return fire()

        return f

    def _parts(self, s: dict[str, torch.Tensor]) -> tuple[Callable, Callable]:
        """Two closures over the state ``s`` that the LIF and AdEx steps share:

        ``synaptic(num)``: ``(g_tot, num + sum_X g_X E_X)`` at the current ``V`` (``g_tot =
        g_L + sum_X g_X``, the NMDA term with its Mg2+ block; with ``ampa_drive`` the AMPA
        term is ``g_A * ampa_drive`` and adds nothing to ``g_tot``);
        ``fire()``: the refractory hold, the threshold and reset, and the exact decay of the
        conductances; returns the spike mask.
        """
        p = self._p
        V, ga, gn, gg, ref = s["V"], s["g_ampa"], s["g_nmda"], s["g_gaba"], s["ref"]
        Vth, Vr, nref = p["V_th"], p["V_reset"], p["n_ref"]
        dec_a, dec_n, dec_g = p["dec_ampa"], p["dec_nmda"], p["dec_gaba"]
        use_n, use_g, has_ref = self.uses["nmda"], self.uses["gaba"], self.has_ref
        gL, Ea, En, Eg, mg = p["g_L"], p["E_ampa"], p["E_nmda"], p["E_gaba"], p["mg"]
        drive = p.get("ampa_drive")

        def synaptic(num: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            if drive is not None:
                g_tot = gL
                num = torch.addcmul(num, ga, drive)
            else:
                g_tot = gL + ga
                num = torch.addcmul(num, ga, Ea)
            if use_n:
                gnb = gn * mg_block(V, mg)
                g_tot = g_tot + gnb
                num = torch.addcmul(num, gnb, En)
            if use_g:
                g_tot = g_tot + gg
                num = torch.addcmul(num, gg, Eg)
            return g_tot, num

        def fire() -> torch.Tensor:
            if has_ref:
                torch.where(ref > 0, Vr, V, out=V)
                ref.sub_(1).clamp_(min=0)
            spk = V > Vth
            torch.where(spk, Vr, V, out=V)
            if has_ref:
                torch.where(spk, nref, ref, out=ref)
            ga.mul_(dec_a)
            if use_n:
                gn.mul_(dec_n)
            if use_g:
                gg.mul_(dec_g)
            return spk

        return synaptic, fire

    def output(self, s: dict[str, torch.Tensor]) -> torch.Tensor:
        return s["V"]


def _check_n(name: str, n: object) -> None:
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"{name} must be an int (number of neurons), got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"{name} must be >= 1, got {n}")


#: Naud, Marcille, Clopath & Gerstner 2008 (Biol Cybern 99:335), Table 1: the AdEx parameters of
#: eight firing patterns and the step current that elicits each from rest, as
#: ``(C pF, g_L nS, E_L mV, V_T mV, Delta_T mV, a nS, tau_w ms, b pA, V_reset mV, I pA)``
#: (the same values as Brian2's example of these firing patterns).
NAUD2008: dict[str, tuple[float, ...]] = {
    "tonic": (200, 10, -70, -50, 2, 2, 30, 0, -58, 500),
    "adapting": (200, 12, -70, -50, 2, 2, 300, 60, -58, 500),
    "initial_burst": (130, 18, -58, -50, 2, 4, 150, 120, -50, 400),
    "regular_bursting": (200, 10, -58, -50, 2, 2, 120, 100, -46, 210),
    "delayed_accelerating": (200, 12, -70, -50, 2, -10, 300, 0, -58, 300),
    "delayed_regular_bursting": (100, 10, -65, -50, 2, -10, 90, 30, -47, 110),
    "transient": (100, 10, -65, -50, 2, 10, 90, 100, -47, 180),
    "irregular": (100, 12, -60, -50, 2, -11, 130, 30, -48, 160),
}

#: Largest ``dt J`` of the AdEx step (class docstring): beyond it ``V`` is on its upswing and
#: crosses the cut-off within the step anyway; the cap keeps ``expm1`` finite.
_Z_MAX = 30.0


@dataclass(eq=False)
class AdExPopulation(LIFPopulation):
    r"""Adaptive exponential integrate-and-fire neurons (Brette & Gerstner 2005, J Neurophysiol
    94:3637) with the synaptic conductances of :class:`LIFPopulation`::

        C dV/dt = g_L (E_L - V) + g_L Delta_T exp((V - V_T)/Delta_T) - w + I_syn + I_ext
        tau_w dw/dt = a (V - E_L) - w
        V > V_th:  V <- V_reset,  w <- w + b

    ``I_syn`` is the LIF's ``g_A (E_A - V) + g_N B(V) (E_N - V) + g_G (E_G - V)`` (or the fixed
    driving force, ``ampa_drive``). ``V_T`` is the soft threshold where the exponential term
    takes over; ``V_th`` is the cut-off at which a spike is counted (``V_peak``; Brian2's
    ``examples/frompapers/Brette_Gerstner_2005.py`` uses ``V_T + 5 Delta_T``, the paper 20 mV:
    the upswing above the cut-off lasts a small fraction of a millisecond either way). Units:
    ``Delta_T`` V, ``a`` S, ``b`` A, ``w`` A, ``tau_w`` s; the rest as :class:`LIFPopulation`.

    Defaults: the paper's regular-spiking cell (C = 281 pF, g_L = 30 nS, E_L = V_reset =
    -70.6 mV, V_T = -50.4 mV, Delta_T = 2 mV, tau_w = 144 ms, a = 4 nS, b = 80.5 pA), cut-off
    ``V_T + 5 Delta_T`` = -40.4 mV, no refractory period. Brian2's example also gives bursting
    (``tau_w = 20 ms, b = 0.5 nA, V_reset = V_T + 5 mV``) and fast spiking
    (``a = 2 C / 144 ms, b = 0``). :meth:`naud2008` builds the eight firing patterns of Naud et
    al. 2008 (tonic, adapting, bursting, irregular, ...), one per batch instance if asked.

    Integration (exponential Rosenbrock-Euler for ``V``): over a step the conductances and ``w``
    are held and the right-hand side is linearised about the step's start ``V``, exponential
    term included: ``C dV'/dt ~ F + C J (V' - V)``, ``F`` the right-hand side at ``V`` and
    ``C J = g_L exp((V - V_T)/Delta_T) - g_tot``. That linear equation is solved exactly,
    ``V <- V + dt phi1(dt J) F / C``,
    ``phi1(z) = (e^z - 1)/z``. Without the exponential term this is the LIF's exact step. Then
    ``w`` relaxes exactly towards ``a (V - E_L)`` (``V`` from the start of the step) with
    factor ``exp(-dt/tau_w)``. The exponent is capped at its value at the cut-off, and
    ``dt J`` at 30: past either, ``V`` is on its upswing and crosses the cut-off within the
    step. Holding the exponential term instead (plain exponential Euler) put the spikes 4x
    further from the exact ones. Regular spiking at 1 nA: every spike of 0.2 s within 0.09 ms
    (dt = 20 us) and 0.05 ms (10 us) of scipy's solution of the ODE; Brian2's forward Euler,
    0.23 and 0.11 ms (``tests/test_adex.py`` checks ours against both).
    """

    n: int
    C: float | torch.Tensor = 281e-12
    g_L: float | torch.Tensor = 30e-9
    E_L: float | torch.Tensor = -70.6e-3
    V_th: float | torch.Tensor = -40.4e-3
    V_reset: float | torch.Tensor = -70.6e-3
    t_ref: float | torch.Tensor = 0.0
    V_T: float | torch.Tensor = -50.4e-3
    Delta_T: float | torch.Tensor = 2e-3
    a: float | torch.Tensor = 4e-9
    b: float | torch.Tensor = 80.5e-12
    tau_w: float | torch.Tensor = 144e-3
    name: str = "adex"

    def __post_init__(self) -> None:
        super().__post_init__()
        for k in ("Delta_T", "tau_w"):
            check_value(k, getattr(self, k), positive=True)
        for k in ("V_T", "a", "b"):
            check_value(k, getattr(self, k))
        vt = torch.as_tensor(self.V_T, dtype=torch.float64)
        if bool((vt >= torch.as_tensor(self.V_th, dtype=torch.float64)).any()):
            raise ValueError(f"V_T (soft threshold) must be below V_th (the spike cut-off), got "
                             f"V_T={self.V_T}, V_th={self.V_th}")

    _PARAMS = (*LIFPopulation._PARAMS, "V_T", "Delta_T", "a", "b", "tau_w")

    @classmethod
    def naud2008(cls, pattern: str | Sequence[str], n: int = 1, **overrides: object
                 ) -> AdExPopulation:
        """A population with the parameters of one firing pattern of Naud, Marcille, Clopath &
        Gerstner 2008 (Biol Cybern 99:335, Table 1), or one pattern per batch instance.

        ``pattern``: a name of :data:`NAUD2008` (``"tonic"``, ``"adapting"``,
        ``"initial_burst"``, ``"regular_bursting"``, ``"delayed_accelerating"``,
        ``"delayed_regular_bursting"``, ``"transient"``, ``"irregular"``), or a sequence of
        names: then every parameter is a ``(batch,)`` tensor and a network of
        ``batch = len(pattern)`` runs all of them at once. ``I_ext`` defaults to the table's
        step current, which gives the pattern from rest; the cut-off is ``V_T + 5 Delta_T``
        (-40 mV), as for the class defaults (the patterns barely depend on it: with a 0 mV
        cut-off, the same spike counts in 0.5 s but tonic's 51 against 52). ``overrides``
        go to the constructor (``name``, ``I_ext``, ``V_th``, synaptic parameters, ...).
        Tested against scipy's solution of the ODE, pattern by pattern
        (``tests/test_adex.py``).
        """
        names = [pattern] if isinstance(pattern, str) else list(pattern)
        bad = [x for x in names if x not in NAUD2008]
        if not names or bad:
            raise ValueError(f"pattern must be one of {list(NAUD2008)} or a non-empty sequence of "
                             f"them, got {pattern!r}")
        si = {"C": 1e-12, "g_L": 1e-9, "E_L": 1e-3, "V_T": 1e-3, "Delta_T": 1e-3, "a": 1e-9,
              "tau_w": 1e-3, "b": 1e-12, "V_reset": 1e-3, "I_ext": 1e-12}  # table unit -> SI
        rows = [{k: v * si[k] for k, v in zip(si, NAUD2008[x], strict=True)} for x in names]
        for r in rows:
            r["V_th"] = r["V_T"] + 5 * r["Delta_T"]
        kw: dict[str, object] = {
            k: rows[0][k] if isinstance(pattern, str)
            else torch.tensor([r[k] for r in rows], dtype=torch.float64)
            for k in rows[0]
        }
        return cls(n, **{**kw, **overrides})  # type: ignore[arg-type]

    variables = {**LIFPopulation.variables, "w": ("A", "adaptation current")}

    def bind(self, dt: float, batch: int, dtype: torch.dtype, device: torch.device) -> None:
        _check_dt(self.name, dt, {"tau_w": self.tau_w})
        super().bind(dt, batch, dtype, device)
        p = self._p
        p["dec_w"] = exp_factor("tau_w", self.tau_w, dt, batch, dtype, device)
        p["x_max"] = (p["V_th"] - p["V_T"]) / p["Delta_T"]

    def init_state(self) -> dict[str, torch.Tensor]:
        s = super().init_state()
        s["w"] = torch.zeros_like(s["V"])
        return s

    def stepper(self, s: dict[str, torch.Tensor]):  # noqa: ANN201 - returns a closure
        """A closure advancing the state ``s`` in place by one step (class docstring)."""
        p = self._p
        V, w = s["V"], s["w"]
        gL, gLEL, dtC, b, dec_w = p["g_L"], p["gLEL"], p["dt_over_C"], p["b"], p["dec_w"]
        EL, VT, DT, x_max, a = p["E_L"], p["V_T"], p["Delta_T"], p["x_max"], p["a"]
        synaptic, fire = self._parts(s)

        def f() -> torch.Tensor:
            w_inf = a * (V - EL)  # the adaptation's target, from V at the start of the step
            spike_g = torch.exp(torch.minimum((V - VT) / DT, x_max)) * gL  # d(spike term)/dV
            g_tot, num = synaptic(gLEL + spike_g * DT - w)
            # exponential Rosenbrock-Euler: V += dt phi1(dt J) F / C, J = (spike_g - g_tot)/C
            z = ((spike_g - g_tot) * dtC).clamp_(max=_Z_MAX)
            phi1 = torch.where(z.abs() < 1e-6, 1.0 + 0.5 * z, torch.expm1(z) / z)
            V.add_((num - g_tot * V) * dtC * phi1)
            torch.lerp(w_inf, w, dec_w, out=w)
            spk = fire()
            w.add_(torch.where(spk, b, 0.0))
            return spk

        return f
