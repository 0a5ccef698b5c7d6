r"""Fused spiking projection: pre spikes in, LIF post update, traces, STDP weight update; and
optionally an inhibitory (GABA) projection onto the same neurons, static or plastic by Vogels et
al. 2011's inhibitory STDP.

One launch runs ``T`` steps of a feed-forward projection ``pre -> post`` for every instance;
each program owns one instance and a block of ``BP`` postsynaptic neurons and keeps their weight
rows ``W[post block, :]`` (``BP x n_pre``), membrane potentials, AMPA conductances, refractory
counters and the rule's traces on-chip for the whole run. Only the presynaptic spikes of each
step are read (``n_pre`` bytes) and the postsynaptic spikes written (``BP`` bytes).

Step ``n`` (the order of :mod:`synaptic_fwp.engine`, i.e. Brian2's schedule):

1. LIF (:class:`synaptic_fwp.neurons.LIFPopulation`), exact exponential integrator with the
   conductances held over the step (AMPA; with ``GABA`` also ``g_G``, which adds ``g_G`` to
   ``g_tot`` and ``g_G E_G`` to the numerator, the fixed-drive neuron then taking this form with
   ``g_A E_A`` replaced by ``g_A drive`` and ``g_A`` left out of ``g_tot``)::

       V <- lerp(V_inf, V, exp(-dt g_tot / C)),  g_tot = g_L + g_A,
       V_inf = (g_L E_L + I_ext + g_A E_A) / g_tot          (conductance-based AMPA), or
       V <- lerp(V_rest + g_A drive / g_L, V, exp(-dt g_L / C))      (fixed driving force);
       refractory: V <- V_reset while ref > 0, ref <- max(ref - 1, 0);
       spike if V > V_th: V <- V_reset, ref <- n_ref;  g_A <- g_A exp(-dt / tau_A)

   or AdEx (:class:`synaptic_fwp.neurons.AdExPopulation`, ``ADEX``): its exponential
   Rosenbrock-Euler step for ``V`` (``V += dt phi1(dt J) F / C``, ``phi1(z) = (e^z - 1)/z``
   evaluated as ``(u - 1)/log u``, ``u = e^z``, Kahan's accurate form), the exact relaxation of
   the adaptation ``w`` towards ``a (V - E_L)``, and ``w <- w + b`` at a spike;

2. the rule's traces decay by their exact per-step factors ``exp(-dt / tau)``;
3. transmission with the weights before this step's plasticity: ``g_A += W s_pre`` (and
   ``g_G += W_G s_G`` from the inhibitory inputs);
4. ``on_pre`` (depression ``o1 (A2- + A3- r2)`` at each presynaptic spike, then the pre traces
   jump), then ``on_post`` (potentiation ``r1 (A2+ + A3+ o2)`` at each postsynaptic spike, then
   the post traces jump), with the rule's bounds (none, hard clip, soft); on a plastic GABA
   projection the same steps of :class:`synaptic_fwp.plasticity.InhibitorySTDP` (``on_pre``:
   ``W_G += eta y_G - eta alpha`` at each inhibitory spike; ``on_post``: ``W_G += eta x_G``).

Rules: :class:`synaptic_fwp.plasticity.PairSTDP` (``x = r1``, ``y = o1``, no triplet terms) and
:class:`synaptic_fwp.plasticity.TripletSTDP` (Pfister & Gerstner 2006), all-to-all or nearest spike;
on the GABA projection none or ``InhibitorySTDP`` (Vogels et al. 2011, Science 334:1569). Rule
parameters may differ per instance (a sweep of thousands of parameter sets in one launch): each
program reads its instance's row of the rule tables. The trace factors and the jumps are taken from
the rule object itself (``rule.decay``), the neuron's factors from ``LIFPopulation.bind`` /
``AdExPopulation.bind``: one definition of each.

The kernel applies the plasticity densely (zero updates where nothing spiked), which equals the
engine's event path bit for bit for the weights as long as they lie within the rule's bounds
(checked on entry). Transmission sums ``W s_pre`` as a tree, the engine in spike order: the
conductances may differ in the last bit, so states agree to ~1e-15 (float64) and spikes agree
unless a membrane potential lands within that distance of threshold.

Sources: Dayan & Abbott 2001 (LIF, Sec. 5.4, 5.8); Brette & Gerstner 2005, J Neurophysiol
94:3637 (AdEx); Song, Miller & Abbott 2000 (pair STDP);
Pfister & Gerstner 2006, J Neurosci 26:9673 (triplet STDP).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

__all__ = ["lif_stdp_kernel", "run_lif_stdp"]


@triton.jit
def _lerp(a, b, w):
    """torch.lerp(a, b, w) exactly as torch computes it (two branches for accuracy)."""
    return tl.where(w < 0.5, a + w * (b - a), b - (b - a) * (1.0 - w))


@triton.jit
def _jump(x, s, NEAREST: tl.constexpr):
    if NEAREST:
        return x * (1.0 - s) + s
    return x + s


@triton.jit
def _bounds(W, dwp, dwm, w_min, w_max, BOUNDS: tl.constexpr):
    """``W + dwp - dwm`` with bounds 0 none / 1 hard / 2 soft (plasticity.base.apply_bounds)."""
    if BOUNDS == 2:
        W = W + dwp * (w_max - W) - dwm * (W - w_min)
        W = tl.minimum(tl.maximum(W, w_min), w_max)
    else:
        W = W + dwp - dwm
        if BOUNDS == 1:
            W = tl.minimum(tl.maximum(W, w_min), w_max)
    return W


@triton.jit
def lif_stdp_kernel(
    pre_ptr, lif_ptr, rule_ptr,
    w_ptr, v_ptr, ga_ptr, ref_ptr, o1_ptr, o2_ptr, r1_ptr, r2_ptr, spk_ptr,
    rv_ptr, rg_ptr, rw_ptr, ro1_ptr, ro2_ptr, rr1_ptr, rr2_ptr, wad_ptr, rwad_ptr,
    prei_ptr, wi_ptr, gg_ptr, rgg_ptr,
    rulei_ptr, xi_ptr, yi_ptr, rwi_ptr, rxi_ptr, ryi_ptr,
    T, NPOST, NPRE, REC_FIRST, REC_EVERY, NREC, REC_W, NPREI, REC_WI,
    FIXED: tl.constexpr, HAS_REF: tl.constexpr, NEAREST: tl.constexpr, BOUNDS: tl.constexpr,
    TRIPLET: tl.constexpr, BP: tl.constexpr, BN: tl.constexpr, ADEX: tl.constexpr = False,
    Z_MAX: tl.constexpr = 30.0, GABA: tl.constexpr = False, BNI: tl.constexpr = 1,
    GABA_RULE: tl.constexpr = False, NEAREST_I: tl.constexpr = False,
    BOUNDS_I: tl.constexpr = 0,
):
    """Grid ``(B, cdiv(n_post, BP))``. ``pre``: (B, T, n_pre) uint8; ``lif``: (B, 24) per-instance
    constants [V_th, V_reset, n_ref, dec_ampa, a, b, c, E_ampa] with (a, b, c) = (V_rest,
    drive/g_L, exp(-dt g_L/C)) when FIXED without GABA, else (g_L, g_L E_L + I_ext, dt/C) (and
    with FIXED and GABA, slot 7 the AMPA drive); with ``GABA`` also [16: dec_gaba, 17: E_gaba];
    for ``ADEX``
    [V_th, V_reset, n_ref, dec_ampa, g_L, g_L E_L + I_ext, dt/C, E_ampa (or the drive when
    FIXED), E_L, V_T, Delta_T, x_max, a, b, exp(-dt/tau_w), 0] (``x_max = (V_th - V_T) /
    Delta_T``, the exponent's cap); ``wad``: the adaptation current (B, n_post), recorded in
    ``rwad`` like V; ``rule``: (B, 10) per-instance
    [A2+, A3+, A2-, A3-, f_r1, f_r2, f_o1, f_o2, w_min, w_max]. State tensors are updated in
    place: W (B, n_post, n_pre), V, g_A, ref, o1, o2 (B, n_post), r1, r2 (B, NP, n_pre) (one
    copy of the pre traces per post block, identical). Output spikes (B, T, n_post) uint8.
    Records (runtime switch ``REC_EVERY > 0``): after steps ``REC_FIRST + k REC_EVERY`` (k < NREC)
    the state is stored as record ``k``: V, g_A, o1, o2 (B, NREC, n_post), r1, r2 (B, NREC,
    n_pre; by the first post block) and, if ``REC_W``, W (B, NREC, n_post, n_pre).
    ``GABA``: an inhibitory projection as well: its spikes ``prei`` (B, T, NPREI) uint8,
    weights ``wi`` (B, n_post, NPREI) kept on-chip (``BNI`` >= NPREI), conductance ``gg`` (B,
    n_post; recorded in ``rgg`` like V); ``g_G`` joins ``g_tot`` with reversal ``E_gaba``, decays
    with ``dec_gaba`` after the spike test and receives ``W_i s_i`` with the AMPA transmission.
    ``GABA_RULE``: ``W_i`` follows Vogels et al. 2011's inhibitory STDP (``rulei``: (B, 5)
    per-instance [eta, eta alpha, exp(-dt/tau), w_min, w_max]) with pre traces ``xi`` (B, NP,
    NPREI) and post traces ``yi`` (B, n_post), in the AMPA rule's order; records ``rwi`` (if
    ``REC_WI``), ``rxi``, ``ryi`` like W, r1 and o1."""
    i_b = tl.program_id(0).to(tl.int64)
    i_p = tl.program_id(1)
    NP = tl.num_programs(1)
    op = i_p * BP + tl.arange(0, BP)
    on = tl.arange(0, BN)
    mp = op < NPOST
    mn = on < NPRE
    mw = mp[:, None] & mn[None, :]
    mn0 = mn & ((on * 0 + i_p) == 0)  # pre-trace records: written by the first post block
    woff = i_b * NPOST * NPRE + op[:, None] * NPRE + on[None, :]
    poff = i_b * NPOST + op
    toff = (i_b * NP + i_p) * NPRE + on
    W = tl.load(w_ptr + woff, mask=mw, other=0.0)
    V = tl.load(v_ptr + poff, mask=mp, other=0.0)
    ga = tl.load(ga_ptr + poff, mask=mp, other=0.0)
    ref = tl.load(ref_ptr + poff, mask=mp, other=0)
    o1 = tl.load(o1_ptr + poff, mask=mp, other=0.0)
    r1 = tl.load(r1_ptr + toff, mask=mn, other=0.0)
    o2 = o1 * 0.0
    r2 = r1 * 0.0
    if TRIPLET:
        o2 = tl.load(o2_ptr + poff, mask=mp, other=0.0)
        r2 = tl.load(r2_ptr + toff, mask=mn, other=0.0)
    L = lif_ptr + i_b * 24
    v_th = tl.load(L)
    v_reset = tl.load(L + 1)
    n_ref = tl.load(L + 2).to(tl.int64)
    dec_a = tl.load(L + 3)
    pa = tl.load(L + 4)
    pb = tl.load(L + 5)
    pc = tl.load(L + 6)
    e_a = tl.load(L + 7)
    wad = V * 0.0
    gg = V * 0.0
    if GABA:
        oni = tl.arange(0, BNI)
        mni = oni < NPREI
        Wi = tl.load(wi_ptr + i_b * NPOST * NPREI + op[:, None] * NPREI + oni[None, :],
                     mask=mp[:, None] & mni[None, :], other=0.0)
        gg = tl.load(gg_ptr + poff, mask=mp, other=0.0)
        dec_g = tl.load(L + 16)
        e_g = tl.load(L + 17)
        mwi = mp[:, None] & mni[None, :]
        mni0 = mni & ((oni * 0 + i_p) == 0)
        if GABA_RULE:
            tioff = (i_b * NP + i_p) * NPREI + oni
            xi = tl.load(xi_ptr + tioff, mask=mni, other=0.0)
            yi = tl.load(yi_ptr + poff, mask=mp, other=0.0)
            Ri = rulei_ptr + i_b * 5  # per-instance constants of the inhibitory rule
            eta_i = tl.load(Ri)
            eta_alpha = tl.load(Ri + 1)
            f_i = tl.load(Ri + 2)
            wi_min = tl.load(Ri + 3)
            wi_max = tl.load(Ri + 4)
    if ADEX:
        e_l = tl.load(L + 8)
        v_t = tl.load(L + 9)
        d_t = tl.load(L + 10)
        x_max = tl.load(L + 11)
        a_w = tl.load(L + 12)
        b_w = tl.load(L + 13)
        dec_w = tl.load(L + 14)
        wad = tl.load(wad_ptr + poff, mask=mp, other=0.0)
    R = rule_ptr + i_b * 10  # per-instance constants of the rule (a parameter sweep)
    a2p = tl.load(R)
    a3p = tl.load(R + 1)
    a2m = tl.load(R + 2)
    a3m = tl.load(R + 3)
    f_r1 = tl.load(R + 4)
    f_r2 = tl.load(R + 5)
    f_o1 = tl.load(R + 6)
    f_o2 = tl.load(R + 7)
    w_min = tl.load(R + 8)
    w_max = tl.load(R + 9)
    for t in range(T):
        # 1. the neuron
        if ADEX:  # pa, pb, pc = g_L, g_L E_L + I_ext, dt/C; e_a the reversal or the drive
            w_inf = a_w * (V - e_l)
            spike_g = tl.exp(tl.minimum((V - v_t) / d_t, x_max)) * pa
            if FIXED:
                g_tot = pa + ga * 0.0
            else:
                g_tot = pa + ga
            num = pb + spike_g * d_t - wad + ga * e_a
            if GABA:
                g_tot = g_tot + gg
                num = num + gg * e_g
            z = tl.minimum((spike_g - g_tot) * pc, Z_MAX)
            u = tl.exp(z)
            lg = tl.log(u)
            # Kahan: (u - 1)/log u; where u underflows, (u - 1)/z (no cancellation there)
            lg = tl.where((u > 0.0) & (lg != 0.0), lg, z)
            phi1 = tl.where(tl.abs(z) < 1e-6, 1.0 + 0.5 * z, (u - 1.0) / lg)
            V = V + (num - g_tot * V) * pc * phi1
            wad = _lerp(w_inf, wad, dec_w)
        elif FIXED and not GABA:
            V = _lerp(pa + ga * pb, V, pc)
        else:  # pa, pb, pc = g_L, g_L E_L + I_ext, dt/C; e_a the reversal or (FIXED) the drive
            if FIXED:
                g_tot = pa + ga * 0.0
            else:
                g_tot = pa + ga
            num = pb + ga * e_a
            if GABA:
                g_tot = g_tot + gg
                num = num + gg * e_g
            V = _lerp(num / g_tot, V, tl.exp(-g_tot * pc))
        if HAS_REF:
            V = tl.where(ref > 0, v_reset, V)
            ref = tl.maximum(ref - 1, 0)
        spk = (V > v_th) & mp
        V = tl.where(spk, v_reset, V)
        if HAS_REF:
            ref = tl.where(spk, n_ref, ref)
        ga = ga * dec_a
        if GABA:
            gg = gg * dec_g
        if ADEX:
            wad = tl.where(spk, wad + b_w, wad)
        tl.store(spk_ptr + (i_b * T + t) * NPOST + op, spk.to(tl.uint8), mask=mp)
        # 2. traces decay
        r1 = r1 * f_r1
        o1 = o1 * f_o1
        if TRIPLET:
            r2 = r2 * f_r2
            o2 = o2 * f_o2
        # 3. transmission with the weights before this step's plasticity
        s = tl.load(pre_ptr + (i_b * T + t) * NPRE + on, mask=mn, other=0).to(W.dtype)
        ga += tl.sum(W * s[None, :], 1)
        if GABA:
            si = tl.load(prei_ptr + (i_b * T + t) * NPREI + oni, mask=mni, other=0).to(W.dtype)
            gg += tl.sum(Wi * si[None, :], 1)
            if GABA_RULE:  # Vogels et al. 2011: traces decay, on_pre, then on_post
                xi = xi * f_i
                yi = yi * f_i
                Wi = _bounds(Wi, (eta_i * yi)[:, None] * si[None, :], eta_alpha * si[None, :],
                             wi_min, wi_max, BOUNDS_I)
                xi = _jump(xi, si, NEAREST_I)
                pi = spk.to(W.dtype)
                Wi = _bounds(Wi, (eta_i * pi)[:, None] * xi[None, :], 0.0, wi_min, wi_max,
                             BOUNDS_I)
                yi = _jump(yi, pi, NEAREST_I)
        # 4. on_pre, then on_post
        if TRIPLET:
            amp_m = a2m + a3m * r2
        else:
            amp_m = a2m + r2 * 0.0
        W = _bounds(W, 0.0, o1[:, None] * (amp_m * s)[None, :], w_min, w_max, BOUNDS)
        r1 = _jump(r1, s, NEAREST)
        if TRIPLET:
            r2 = _jump(r2, s, NEAREST)
        p = spk.to(W.dtype)
        if TRIPLET:
            amp_p = a2p + a3p * o2
        else:
            amp_p = a2p + o2 * 0.0
        W = _bounds(W, (amp_p * p)[:, None] * r1[None, :], 0.0, w_min, w_max, BOUNDS)
        o1 = _jump(o1, p, NEAREST)
        if TRIPLET:
            o2 = _jump(o2, p, NEAREST)
        # 5. records of the state after this step
        if REC_EVERY > 0:
            if t >= REC_FIRST:
                if (t - REC_FIRST) % REC_EVERY == 0:
                    ri = i_b * NREC + (t - REC_FIRST) // REC_EVERY
                    tl.store(rv_ptr + ri * NPOST + op, V, mask=mp)
                    tl.store(rg_ptr + ri * NPOST + op, ga, mask=mp)
                    if ADEX:
                        tl.store(rwad_ptr + ri * NPOST + op, wad, mask=mp)
                    if GABA:
                        tl.store(rgg_ptr + ri * NPOST + op, gg, mask=mp)
                        if GABA_RULE:
                            tl.store(rxi_ptr + ri * NPREI + oni, xi, mask=mni0)
                            tl.store(ryi_ptr + ri * NPOST + op, yi, mask=mp)
                            if REC_WI != 0:
                                tl.store(rwi_ptr + (ri * NPOST + op[:, None]) * NPREI
                                         + oni[None, :], Wi, mask=mwi)
                    tl.store(ro1_ptr + ri * NPOST + op, o1, mask=mp)
                    tl.store(rr1_ptr + ri * NPRE + on, r1, mask=mn0)
                    if TRIPLET:
                        tl.store(ro2_ptr + ri * NPOST + op, o2, mask=mp)
                        tl.store(rr2_ptr + ri * NPRE + on, r2, mask=mn0)
                    if REC_W != 0:
                        tl.store(rw_ptr + (ri * NPOST + op[:, None]) * NPRE + on[None, :], W,
                                 mask=mw)
    tl.store(w_ptr + woff, W, mask=mw)
    tl.store(v_ptr + poff, V, mask=mp)
    tl.store(ga_ptr + poff, ga, mask=mp)
    tl.store(ref_ptr + poff, ref, mask=mp)
    if ADEX:
        tl.store(wad_ptr + poff, wad, mask=mp)
    if GABA:
        tl.store(gg_ptr + poff, gg, mask=mp)
        if GABA_RULE:
            tl.store(wi_ptr + i_b * NPOST * NPREI + op[:, None] * NPREI + oni[None, :], Wi,
                     mask=mwi)
            tl.store(xi_ptr + tioff, xi, mask=mni)
            tl.store(yi_ptr + poff, yi, mask=mp)
    tl.store(o1_ptr + poff, o1, mask=mp)
    tl.store(r1_ptr + toff, r1, mask=mn)
    if TRIPLET:
        tl.store(o2_ptr + poff, o2, mask=mp)
        tl.store(r2_ptr + toff, r2, mask=mn)


def _per_instance(cols: list, B: int, dtype: torch.dtype, dev: torch.device) -> torch.Tensor:
    """A contiguous ``(B, len(cols))`` table of per-instance constants from floats and tensors
    of ``B`` (or 1) values each."""
    return torch.stack([torch.as_tensor(c, dtype=dtype, device=dev).reshape(-1).expand(B)
                        for c in cols], 1).contiguous()


def run_lif_stdp(
    pre_spikes: torch.Tensor,
    W: torch.Tensor,
    rule: object,
    post: object,
    dt: float,
    state: dict[str, torch.Tensor] | None = None,
    block_post: int | None = None,
    record_every: int = 0,
    record_first: int = 0,
    record_W: bool = False,
    gaba: tuple | None = None,
    record_W_gaba: bool = False,
) -> dict[str, torch.Tensor]:
    """Run a plastic feed-forward projection onto a LIF population for ``T`` steps, one launch.

    Parameters
    ----------
    pre_spikes : (B, T, n_pre) bool or 0/1 tensor: the presynaptic spikes of each step.
    W : (B, n_post, n_pre) or (n_post, n_pre) initial AMPA weights (siemens, or volts per unit
        for the fixed-driving-force neuron), float32 or float64; not modified.
    rule : :class:`~synaptic_fwp.plasticity.PairSTDP` or
        :class:`~synaptic_fwp.plasticity.TripletSTDP`; its parameters may be per instance
        (tensors of ``B`` values: a parameter sweep, time constants included).
    post : :class:`~synaptic_fwp.neurons.LIFPopulation` or
        :class:`~synaptic_fwp.neurons.AdExPopulation` with ``n = n_post`` (AMPA input only);
        a copy is bound to ``(dt, B)``, the object itself is left as it is.
    dt : time step (s).
    state : the ``state`` entry of a previous result, to continue a run; else the population's
        and the rule's initial states.
    block_post : post neurons per program (a power of two; default from the sizes).
    record_every, record_first : if ``record_every > 0``, the state after steps
        ``record_first, record_first + record_every, ...`` (< T) is recorded in the same launch.
    record_W : also record the weights (``n_post x n_pre`` per record).
    gaba : optional inhibitory projection ``(spikes, W_gaba)`` or ``(spikes, W_gaba, rule)``:
        its presynaptic spikes ``(B, T, n_gaba)``, weights ``(B, n_post, n_gaba)`` or
        ``(n_post, n_gaba)`` (siemens; conductance-based, reversal ``post.E_gaba``, decay
        ``post.tau_gaba``; not modified) and ``rule``: ``None`` (static) or an
        :class:`~synaptic_fwp.plasticity.InhibitorySTDP` (parameters scalar or per instance), as a
        ``connect(..., target="gaba")`` projection in the engine. Its traces continue from
        ``state["gaba_x"]``, ``state["gaba_y"]`` when given.
    record_W_gaba : also record the inhibitory weights (with a rule).

    Returns a dict: ``spikes`` (B, T, n_post) bool; ``W``; ``W_gaba`` (with ``gaba``); ``state``
    (``V``, ``g_ampa``, ``ref``, AdEx's ``w``, ``g_gaba`` with ``gaba``, the rule's traces under
    their own names and the inhibitory rule's as ``gaba_x``, ``gaba_y``); with ``record_every >
    0`` also ``records`` (``V``, ``g_ampa``, AdEx's ``w``, ``g_gaba``, the traces and, with
    ``record_W`` / ``record_W_gaba``, ``W`` / ``W_gaba``; each with a record axis after the
    batch axis).
    """
    import copy

    from synaptic_fwp.neurons import _Z_MAX, AdExPopulation, LIFPopulation
    from synaptic_fwp.plasticity import InhibitorySTDP, PairSTDP, TripletSTDP

    from .launch import INTERPRETED

    if not isinstance(pre_spikes, torch.Tensor) or pre_spikes.ndim != 3:
        raise ValueError("pre_spikes must be a (B, T, n_pre) tensor, got "
                         f"{getattr(pre_spikes, 'shape', type(pre_spikes).__name__)}")
    B, T, n_pre = pre_spikes.shape
    if not isinstance(W, torch.Tensor) or W.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"W must be a float32 or float64 tensor, got {getattr(W, 'dtype', W)}")
    if W.ndim == 2:
        W = W.expand(B, *W.shape)
    if W.ndim != 3 or W.shape[0] != B or W.shape[2] != n_pre:
        raise ValueError(f"W has shape {tuple(W.shape)}; expected (B, n_post, n_pre) with B={B}, "
                         f"n_pre={n_pre}")
    n_post = W.shape[1]
    if type(post) not in (LIFPopulation, AdExPopulation) or post.n != n_post:
        raise ValueError(f"post must be a LIFPopulation or AdExPopulation with n={n_post} (W's "
                         f"n_post), got {post!r}")
    if not isinstance(rule, (PairSTDP, TripletSTDP)):
        raise TypeError(f"rule must be a PairSTDP or TripletSTDP, got {type(rule).__name__}")
    if rule.batch_shape() not in ((), (1,), (B,)):
        raise ValueError(f"the rule's per-instance parameters have batch shape "
                         f"{rule.batch_shape()}; allowed: scalars, (1,) or ({B},)")
    dev, dtype = W.device, W.dtype
    if pre_spikes.device != dev:
        raise ValueError(f"pre_spikes is on {pre_spikes.device} but W is on {dev}")
    if dev.type == "cuda" and INTERPRETED:
        raise ValueError("the kernels were imported with TRITON_INTERPRET=1 (CPU interpreter) "
                         "but the tensors are on CUDA")
    if dev.type != "cuda" and not INTERPRETED:
        raise ValueError(f"the fused spiking kernel needs CUDA tensors (got {dev}); on the CPU "
                         "set TRITON_INTERPRET=1 before the first Triton import")
    rule_i = None
    if gaba is not None:
        if not isinstance(gaba, tuple) or len(gaba) not in (2, 3):
            raise TypeError("gaba must be a (spikes, W_gaba) or (spikes, W_gaba, rule) tuple, "
                            f"got {type(gaba).__name__}")
        pre_i, W_i = gaba[:2]
        rule_i = gaba[2] if len(gaba) == 3 else None
        if rule_i is not None:
            if not isinstance(rule_i, InhibitorySTDP):
                raise TypeError("the gaba rule must be None or an InhibitorySTDP, got "
                                f"{type(rule_i).__name__}")
            if rule_i.batch_shape() not in ((), (1,), (B,)):
                raise ValueError("the gaba rule's per-instance parameters have batch shape "
                                 f"{rule_i.batch_shape()}; allowed: scalars, (1,) or ({B},)")
        if not isinstance(pre_i, torch.Tensor) or pre_i.ndim != 3 or pre_i.shape[:2] != (B, T):
            raise ValueError("gaba spikes must be a (B, T, n_gaba) tensor with B, T = "
                             f"{B}, {T}, got {getattr(pre_i, 'shape', type(pre_i).__name__)}")
        n_i = pre_i.shape[2]
        if not isinstance(W_i, torch.Tensor) or W_i.dtype != W.dtype:
            raise TypeError(f"gaba W must be a {W.dtype} tensor (as W), got "
                            f"{getattr(W_i, 'dtype', type(W_i).__name__)}")
        if W_i.ndim == 2:
            W_i = W_i.expand(B, *W_i.shape)
        if W_i.shape != (B, n_post, n_i):
            raise ValueError(f"gaba W has shape {tuple(W_i.shape)}; expected (B, n_post, "
                             f"n_gaba) = {(B, n_post, n_i)}")
        if pre_i.device != dev or W_i.device != dev:
            raise ValueError(f"gaba tensors must be on {dev} (as W), got {pre_i.device} and "
                             f"{W_i.device}")
        if rule_i is not None and rule_i.bounds != "none" and bool(
                ((W_i < rule_i.w_min) | (W_i > rule_i.w_max)).any()):
            raise ValueError(f"gaba W must lie within its rule's bounds [{rule_i.w_min}, "
                             f"{rule_i.w_max}] (bounds={rule_i.bounds!r})")
    if rule.bounds != "none" and bool(((W < rule.w_min) | (W > rule.w_max)).any()):
        raise ValueError(f"W must lie within the rule's bounds [{rule.w_min}, {rule.w_max}] "
                         f"(bounds={rule.bounds!r})")
    pop = copy.copy(post)
    pop.bind(float(dt), B, dtype, dev)
    p = pop._p
    fixed = post.ampa_drive is not None
    adex = isinstance(post, AdExPopulation)
    cols = [p["V_th"], p["V_reset"], p["n_ref"].to(dtype), p["dec_ampa"]]
    if adex:
        cols += [p["g_L"], p["gLEL"], p["dt_over_C"], p["ampa_drive"] if fixed else p["E_ampa"],
                 p["E_L"], p["V_T"], p["Delta_T"], p["x_max"], p["a"], p["b"], p["dec_w"]]
    elif fixed and gaba is None:  # the fixed-drive LIF's constant membrane factor
        cols += [p["V_rest"], p["drive_over_gL"], p["fac_m"], p["E_ampa"]]
    else:  # with GABA the conductance varies: g_tot = g_L + g_G (the engine's general step)
        cols += [p["g_L"], p["gLEL"], p["dt_over_C"], p["ampa_drive"] if fixed else p["E_ampa"]]
    cols += [torch.zeros((B, 1), dtype=dtype, device=dev)] * (16 - len(cols))
    cols += [p["dec_gaba"], p["E_gaba"]]
    cols += [torch.zeros((B, 1), dtype=dtype, device=dev)] * (24 - len(cols))
    lif = torch.cat([c.reshape(B, 1).to(dtype) for c in cols], 1).contiguous()
    W_run = W.detach().clone().contiguous()
    trip = isinstance(rule, TripletSTDP)
    if state is None:
        s0 = pop.init_state()
        tr = rule.init_state(W_run)
    else:
        s0 = {k: state[k] for k in ("V", "g_ampa", "ref", *(("w",) if adex else ()),
                                    *(("g_gaba",) if gaba is not None else ()))}
        tr = {k: state[k] for k in rule.state_shapes}
    # per-instance (B, 10) table: amplitudes, the rule's own per-step trace factors, bounds
    ones = {k: torch.ones((B, 1), dtype=dtype, device=dev) for k in rule.state_shapes}
    fac = dict(rule.decay(ones, float(dt)))
    if trip:
        names = {"r1": "r1", "r2": "r2", "o1": "o1", "o2": "o2"}
        amps = [rule.A2_plus, rule.A3_plus, rule.A2_minus, rule.A3_minus]
    else:
        names = {"r1": "x", "r2": None, "o1": "y", "o2": None}
        amps = [rule.A_plus, 0.0, rule.A_minus, 0.0]
    f = [fac[names[n]] if names[n] else 1.0 for n in ("r1", "r2", "o1", "o2")]
    rt = _per_instance([*amps, *f, rule.w_min, rule.w_max], B, dtype, dev)
    for arg, v in (("record_every", record_every), ("record_first", record_first)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(f"{arg} must be an int >= 0, got {v!r}")
    nrec = 0 if record_every == 0 or record_first >= T else (
        (T - 1 - record_first) // record_every + 1)
    bn = triton.next_power_of_2(n_pre)
    bni = triton.next_power_of_2(n_i) if gaba is not None else 0  # W_gaba's block, on-chip too
    bp = block_post or max(1, min(triton.next_power_of_2(n_post), max(1, 4096 // (bn + bni))))
    npb = triton.cdiv(n_post, bp)

    def post_t(name: str | None) -> torch.Tensor:
        if name is None:
            return torch.zeros((B, n_post), dtype=dtype, device=dev)
        return tr[name].to(dtype).expand(B, n_post).contiguous().clone()

    def pre_t(name: str | None) -> torch.Tensor:
        if name is None:
            return torch.zeros((B, npb, n_pre), dtype=dtype, device=dev)
        return tr[name].to(dtype).reshape(B, 1, n_pre).expand(B, npb, n_pre).contiguous()

    V = s0["V"].to(dtype).contiguous().clone()
    ga = s0["g_ampa"].to(dtype).contiguous().clone()
    ref = s0["ref"].to(torch.int64).contiguous().clone()
    wad = (s0["w"].to(dtype).contiguous().clone() if adex
           else torch.zeros(1, dtype=dtype, device=dev))  # never read or written for the LIF
    o1, o2 = post_t(names["o1"]), post_t(names["o2"])
    r1, r2 = pre_t(names["r1"]), pre_t(names["r2"])
    spk = torch.empty((B, T, n_post), dtype=torch.uint8, device=dev)
    pre_u8 = (pre_spikes != 0).to(torch.uint8).contiguous()
    dummy = torch.zeros(1, dtype=dtype, device=dev)  # never read or written
    xi = yi = rulei = dummy
    if gaba is not None:
        prei_u8 = (pre_i != 0).to(torch.uint8).contiguous()
        Wi_run = W_i.detach().to(dtype).clone().contiguous()
        gg = s0["g_gaba"].to(dtype).contiguous().clone()
        n_gaba = n_i
        if rule_i is not None:
            if state is not None and "gaba_x" in state:
                ti = {"x": state["gaba_x"], "y": state["gaba_y"]}
            else:
                ti = rule_i.init_state(Wi_run)
            xi = ti["x"].to(dtype).reshape(B, 1, n_i).expand(B, npb, n_i).contiguous()
            yi = ti["y"].to(dtype).expand(B, n_post).contiguous().clone()
            one = torch.ones((B, 1), dtype=dtype, device=dev)
            f_i = rule_i.decay({"x": one, "y": one}, float(dt))["x"]  # the rule's own factor
            eta, alpha = rule_i.eta, rule_i.alpha
            if isinstance(eta, torch.Tensor) or isinstance(alpha, torch.Tensor):
                # as the rule computes it: both in W's dtype, then the product
                eta_alpha = (torch.as_tensor(eta, dtype=dtype, device=dev)
                             * torch.as_tensor(alpha, dtype=dtype, device=dev))
            else:
                eta_alpha = eta * alpha
            rulei = _per_instance([eta, eta_alpha, f_i, rule_i.w_min, rule_i.w_max], B, dtype,
                                  dev)
    else:
        prei_u8, Wi_run, gg, n_gaba = torch.zeros(1, dtype=torch.uint8, device=dev), dummy, \
            dummy, 0

    def rec_t(*shape: int, on: bool = True) -> torch.Tensor:
        if nrec == 0 or not on:
            return torch.zeros(1, dtype=dtype, device=dev)  # never written
        return torch.zeros((B, nrec, *shape), dtype=dtype, device=dev)

    recs = {"V": rec_t(n_post), "g_ampa": rec_t(n_post), "o1": rec_t(n_post),
            "o2": rec_t(n_post, on=trip), "r1": rec_t(n_pre), "r2": rec_t(n_pre, on=trip),
            "W": rec_t(n_post, n_pre, on=record_W), "w": rec_t(n_post, on=adex),
            "g_gaba": rec_t(n_post, on=gaba is not None),
            "gaba_x": rec_t(n_gaba, on=rule_i is not None),
            "gaba_y": rec_t(n_post, on=rule_i is not None),
            "W_gaba": rec_t(n_post, n_gaba, on=rule_i is not None and record_W_gaba)}
    lif_stdp_kernel[(B, npb)](
        pre_u8, lif, rt, W_run, V, ga, ref, o1, o2, r1, r2, spk,
        recs["V"], recs["g_ampa"], recs["W"], recs["o1"], recs["o2"], recs["r1"], recs["r2"],
        wad, recs["w"], prei_u8, Wi_run, gg, recs["g_gaba"],
        rulei, xi, yi, recs["W_gaba"], recs["gaba_x"], recs["gaba_y"],
        T, n_post, n_pre, record_first, record_every if nrec else 0, nrec, int(record_W), n_gaba,
        int(record_W_gaba and rule_i is not None),
        FIXED=fixed, HAS_REF=bool((p["n_ref"] > 0).any()), NEAREST=rule.pairing == "nearest",
        BOUNDS={"none": 0, "hard": 1, "soft": 2}[rule.bounds], TRIPLET=trip, BP=bp, BN=bn,
        ADEX=adex, Z_MAX=_Z_MAX, GABA=gaba is not None, BNI=max(bni, 1),
        GABA_RULE=rule_i is not None,
        NEAREST_I=rule_i is not None and rule_i.pairing == "nearest",
        BOUNDS_I={"none": 0, "hard": 1, "soft": 2}[rule_i.bounds] if rule_i is not None else 0,
    )
    out_state = {"V": V, "g_ampa": ga, "ref": ref}
    if adex:
        out_state["w"] = wad
    if gaba is not None:
        out_state["g_gaba"] = gg
        if rule_i is not None:
            out_state["gaba_x"], out_state["gaba_y"] = xi[:, 0], yi
    for n, k in names.items():
        if k is not None:
            out_state[k] = (r1 if n == "r1" else r2)[:, 0] if n.startswith("r") else (
                o1 if n == "o1" else o2)
    out = {"spikes": spk.bool(), "W": W_run, "state": out_state}
    if gaba is not None:
        out["W_gaba"] = Wi_run
    if record_every > 0:
        rec = {"V": recs["V"], "g_ampa": recs["g_ampa"]}
        if adex:
            rec["w"] = recs["w"] if nrec else torch.zeros((B, 0, n_post), dtype=dtype, device=dev)
        if gaba is not None:
            rec["g_gaba"] = (recs["g_gaba"] if nrec
                             else torch.zeros((B, 0, n_post), dtype=dtype, device=dev))
        if rule_i is not None:
            shapes = {"gaba_x": (n_gaba,), "gaba_y": (n_post,), "W_gaba": (n_post, n_gaba)}
            for k, sh in shapes.items():
                if k != "W_gaba" or record_W_gaba:
                    rec[k] = recs[k] if nrec else torch.zeros((B, 0, *sh), dtype=dtype,
                                                              device=dev)
        for n, k in names.items():
            if k is not None:
                rec[k] = recs[n] if nrec else torch.zeros((B, 0, n_pre if n[0] == "r" else n_post),
                                                          dtype=dtype, device=dev)
        if record_W:
            rec["W"] = recs["W"] if nrec else torch.zeros((B, 0, n_post, n_pre), dtype=dtype,
                                                          device=dev)
        if nrec == 0:
            rec["V"] = rec["g_ampa"] = torch.zeros((B, 0, n_post), dtype=dtype, device=dev)
        out["records"] = rec
    return out
