"""A fast-weight rule over a sequence, batched: :func:`scan` and :func:`attention_form`.

The design's *scan* layer. The subpackage is named ``sequence`` so that ``synaptic_fwp.scan``
stays the function (``sf.scan(q, k, v, rule)``) and every submodule still imports by its path
(``import synaptic_fwp.sequence.chunk as chunk``); a function and a subpackage of one name made
``import synaptic_fwp.scan.chunk as m`` fail.

Backends: ``"recurrent"`` (torch loop, the oracle), ``"chunk"`` (chunk-wise parallel torch,
Primer Box 1; WY/UT form for the delta rules), ``"triton"`` (fused GPU kernels, CUDA tensors or
``TRITON_INTERPRET=1``); ``"auto"`` picks Triton on a GPU, else ``chunk`` where the rule has a
chunk form and the sequence is long enough, else ``recurrent``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator

import torch

from .._validation import (
    NonFiniteError,
    all_finite,
    check_choice,
    check_finite,
    check_range,
    check_tensor,
    same_device_dtype,
)
from ..rules import BCMRule, LinearRule, get, get_feature_map
from .recurrent import scan_recurrent

__all__ = ["scan", "attention_form", "BACKENDS", "default_threads", "prepare",
           "RECURRENT_PARALLEL_MIN"]

BACKENDS = ("auto", "recurrent", "chunk", "triton")


#: Per-step state size (``B H V K`` elements) from which the recurrence keeps torch's thread
#: setting: twice torch's intra-op grain (32,768 elements), the smallest op two threads split.
RECURRENT_PARALLEL_MIN = 65536


def default_threads(backend: str, state_size: int = 0) -> int | None:
    """Intra-op thread count the library uses for a CPU backend (None: leave torch's setting).

    Set only for the duration of a :func:`scan` call; the caller's ``torch`` setting is
    restored afterwards. ``state_size`` is the number of fast weights updated per step,
    ``B H V K``. Measured on the 2-core development machine (``delta`` and ``gla``, T=512,
    float32, best of 3, 2026-11-22):

    - the recurrence is a loop of per-step ops on the state. Below
      :data:`RECURRENT_PARALLEL_MIN` elements 2 threads were 1-10% *slower* than 1 (torch
      cannot split such ops, and pays for the thread team anyway), so ``"recurrent"`` uses 1
      thread there. From it on, 2 threads were 1.3x (65,536), 1.6x (131,072) and 1.7-1.8x
      (262,144) faster on a quiet machine, so it keeps torch's setting. With one core busy with
      another job, 2 threads were about 2x slower at every size: set ``SYNAPTIC_FWP_THREADS=1``
      on a shared machine.
    - the chunk-wise path (batched 64 x 64 products) runs ~2x faster on 2 threads than on 1
      when quiet, so ``"chunk"`` keeps torch's setting (all cores).
    - the network engine (``"engine"``, :meth:`synaptic_fwp.engine.Network.run`) keeps torch's
      setting: on the quiet machine 2 threads were 0.6-0.9x the time of 1 for feed-forward,
      rate and plastic recurrent networks and 1.06x for a static recurrent one (0.2 s runs,
      2026-11-22); on a busy one 1 thread was up to 7x faster (``benchmarks/README.md``).

    ``SYNAPTIC_FWP_THREADS`` (a positive int) overrides all three.
    """
    env = os.environ.get("SYNAPTIC_FWP_THREADS")
    if env:
        try:
            n = int(env)
        except ValueError:
            n = 0
        if n < 1:
            raise ValueError(f"SYNAPTIC_FWP_THREADS must be a positive int, got {env!r}")
        return n
    if backend == "recurrent" and state_size < RECURRENT_PARALLEL_MIN:
        return 1
    return None


@contextlib.contextmanager
def _threads(n: int | None) -> Iterator[None]:
    """Run with ``n`` intra-op threads and restore the caller's setting afterwards."""
    if n is None or n == torch.get_num_threads():
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _gate(
    name: str, x: object, B: int, T: int, H: int, ref: torch.Tensor, last: int | None = None
) -> torch.Tensor | None:
    """Validate a gate and broadcast it to ``(B, T, H)`` (or ``(B, T, H, last)``)."""
    if x is None:
        return None
    if isinstance(x, bool) or not isinstance(x, (int, float, torch.Tensor)):
        raise TypeError(f"{name} must be a float or a torch.Tensor, got {type(x).__name__}")
    if isinstance(x, torch.Tensor):
        if x.device != ref.device:
            raise ValueError(f"{name} is on {x.device} but q, k, v are on {ref.device}")
        if not x.is_floating_point():
            raise TypeError(f"{name} must have a floating dtype, got {x.dtype}")
        t = x.to(ref.dtype)
    else:
        t = torch.tensor(float(x), dtype=ref.dtype, device=ref.device)
    shape = (B, T, H) if last is None else (B, T, H, last)
    try:
        return torch.broadcast_to(t, shape)
    except RuntimeError:
        raise ValueError(
            f"{name} has shape {tuple(t.shape)}, which does not broadcast to {shape} "
            f"(B, T, H{', ' + str(last) if last is not None else ''})"
        ) from None


def prepare(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    rule: str | LinearRule | BCMRule,
    *,
    eta: torch.Tensor | float | None = None,
    decay: torch.Tensor | float | None = None,
    gate: torch.Tensor | None = None,
    initial_state: torch.Tensor | None = None,
) -> tuple[LinearRule | BCMRule, dict[str, torch.Tensor | None], torch.Tensor]:
    """Validate the inputs of :func:`scan` and return ``(rule, gates, W0)`` with the gates
    broadcast to full shape and ``W0: (B, H, V, K)`` (zeros if no initial state)."""
    rule = get(rule)
    for n, x in (("q", q), ("k", k), ("v", v)):
        check_tensor(n, x, ndim=4)
    B, T, H, K = k.shape
    if q.shape != k.shape:
        raise ValueError(
            f"q has shape {tuple(q.shape)} but k has {tuple(k.shape)}; "
            "they must match (B, T, H, K)"
        )
    if v.shape[:3] != (B, T, H):
        raise ValueError(
            f"v has shape {tuple(v.shape)}; its first three dims must equal k's "
            f"(B, T, H) = {(B, T, H)}"
        )
    V = v.shape[-1]
    same_device_dtype({"q": q, "k": k, "v": v})
    if T == 0:
        raise ValueError("the sequences are empty (T = 0); need at least one time step")
    for n, x in (("q", q), ("k", k), ("v", v)):
        check_finite(n, x)
    needs = rule.needs
    for n, x in (("eta", eta), ("decay", decay), ("gate", gate)):
        if x is not None and n not in needs:
            raise ValueError(
                f"rule {rule.name!r} takes no {n}; it takes {list(needs) or 'no gates'}"
            )
    g: dict[str, torch.Tensor | None] = {"eta": None, "decay": None, "gate": None}
    if "eta" in needs:
        g["eta"] = _gate("eta", 1.0 if eta is None else eta, B, T, H, q)
        check_range("eta", g["eta"], 0.0, None)
    if "decay" in needs:
        if decay is None:
            lam = getattr(rule, "constant_decay", None)
            if lam is None:
                raise ValueError(
                    f"rule {rule.name!r} needs decay (per-step factor lambda_t in [0, 1], shape "
                    f"(B, T, H) or broadcastable), got None"
                )
            decay = lam
        g["decay"] = _gate("decay", decay, B, T, H, q)
        check_range("decay", g["decay"], 0.0, 1.0)
    if "gate" in needs:
        if gate is None:
            side = "V" if rule.decay == "post" else "K"
            raise ValueError(
                f"rule {rule.name!r} needs gate (per-step vector a_t in [0, 1], "
                f"shape (B, T, H, {side}))"
            )
        last = V if rule.decay == "post" else K
        g["gate"] = _gate("gate", gate, B, T, H, q, last)
        check_range("gate", g["gate"], 0.0, 1.0)
    if initial_state is None:
        W0 = q.new_zeros((B, H, V, K))
    else:
        check_tensor("initial_state", initial_state, ndim=4)
        if tuple(initial_state.shape) != (B, H, V, K):
            raise ValueError(
                f"initial_state has shape {tuple(initial_state.shape)}, expected (B, H, V, K) = "
                f"{(B, H, V, K)}"
            )
        if initial_state.device != q.device:
            raise ValueError(f"initial_state is on {initial_state.device} but q is on {q.device}")
        if initial_state.dtype != q.dtype:
            raise TypeError(f"initial_state has dtype {initial_state.dtype} but q has {q.dtype}")
        check_finite("initial_state", initial_state)
        W0 = initial_state
    return rule, g, W0


#: Shortest sequence for which ``backend="auto"`` takes the chunk-wise path on the CPU. Measured
#: (2 cores, delta/gla/hebbian): at T = 32 the chunk path ran 1.8-2.4x faster than the
#: recurrence without autograd and 3.6-5.7x with it for B H <= 16, K = V = 16..64; at T = 16,
#: 1.1-1.6x; at T = 8 the recurrence was as fast or faster. (Many instances of tiny states,
#: B H = 1024, K = V = 8, with autograd: the recurrence 1.1-1.5x faster at T = 32, the chunk
#: path 1.6-2.2x faster from T = 63.)
_AUTO_CHUNK_MIN_T = 32

#: Without autograd, the delta rules' recurrence beats their chunk form (whose UT transform
#: costs ``~S^2`` per step and instance whatever the state's size) for many instances of small
#: states: ``K V <= 64`` and ``B H >= 32 K V``. Measured on the CPU (2 cores, ``delta`` and
#: ``gated_delta``, T = 64-2048, 2026-11-22): there the recurrence took 0.44-0.95x the chunk
#: path's time (``K = V = 4``, ``B H`` 512-8192; ``K = V = 8``, ``B H`` 2048-8192; ``K = V =
#: 2``, ``B H = 256``); below that batch the chunk path was up to 7x faster, and at
#: ``K = V = 16`` it was as fast or faster at every batch tried (up to 8192). With autograd the
#: recurrence keeps every step's state for the backward pass and the chunk path won or tied.
_AUTO_RECURRENT_MAX_KV = 64
_AUTO_RECURRENT_MIN_BH_PER_KV = 32


def _pick_backend(rule: LinearRule | BCMRule, q: torch.Tensor, backend: str,
                  V: int | None = None, grad: bool = True) -> str:
    """The backend ``backend="auto"`` stands for (any other value is returned as it is):
    ``"triton"`` for CUDA tensors when Triton is installed; on the CPU ``"chunk"`` for rules
    with a chunk form from ``T >= 32`` on, except the delta rules' many small instances without
    autograd (``grad``; ``V`` defaults to ``K``); else ``"recurrent"``."""
    if backend != "auto":
        return backend
    if (q.is_cuda and not isinstance(rule, BCMRule)
            and q.dtype in (torch.float32, torch.float16, torch.bfloat16)):  # kernels' dtypes
        with contextlib.suppress(ImportError):
            import triton  # noqa: F401

            return "triton"
    from .chunk import supports

    if not supports(rule) or q.shape[1] < _AUTO_CHUNK_MIN_T:
        return "recurrent"
    B, _, H, K = q.shape
    KV = K * (K if V is None else V)
    if (not grad and rule.correction == "delta" and q.device.type == "cpu"
            and KV <= _AUTO_RECURRENT_MAX_KV and B * H >= _AUTO_RECURRENT_MIN_BH_PER_KV * KV):
        return "recurrent"
    return "chunk"


def scan(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    rule: str | LinearRule | BCMRule,
    *,
    eta: torch.Tensor | float | None = None,
    decay: torch.Tensor | float | None = None,
    gate: torch.Tensor | None = None,
    initial_state: torch.Tensor | None = None,
    return_states: bool | int = False,
    backend: str = "auto",
    phi: str | Callable[[torch.Tensor], torch.Tensor] | None = None,
    chunk_size: int | None = None,
    check_finite: bool = True,
):
    """Apply ``rule`` over a batch of sequences; return ``(y, W_T)`` (or ``(y, W_T, states)``).

    Parameters
    ----------
    q, k : (B, T, H, K) queries and keys (presynaptic activity).
    v : (B, T, H, V) values (the postsynaptic signal that programs ``W``).
    rule : a name from :func:`synaptic_fwp.rules.names` or a rule object.
    eta, decay : (B, T, H) or broadcastable (a float is fine): learning rate ``eta_t >= 0``,
        scalar decay ``lambda_t`` in ``[0, 1]``; per-step factors as in the Primer.
    gate : (B, T, H, V) for ``gla_table1`` or (B, T, H, K) for ``gla``, entries in ``[0, 1]``.
    initial_state : (B, H, V, K) ``W_0``; zeros if omitted.
    return_states : ``True`` for every state, an int ``n`` for the states after steps
        ``n, 2n, ...`` (shape ``(B, T // n, H, V, K)``), for weight trajectories.
    backend : ``"auto"``, ``"recurrent"``, ``"chunk"`` or ``"triton"``. ``"auto"`` takes the
        Triton kernels for CUDA tensors, else the chunk form from ``T >= 32`` on, except for
        the delta rules' many small instances without autograd (``K V <= 64``,
        ``B H >= 32 K V``), where the recurrence was faster; otherwise the recurrence.
    phi : feature map applied to ``q`` and ``k``: ``"identity"`` (default), ``"elu1"``,
        ``"relu"``, ``"silu_l2"`` or a callable.
    chunk_size : chunk length ``S`` of the chunk-wise backends; by default, on the CPU, a power
        of two from 16 to 64 chosen from ``K``, ``V``, the rule and whether autograd records
        (:func:`.chunk.default_chunk_size`: 64 at ``K = V = 64``, less for smaller states),
        and 64 for the Triton kernels.
    check_finite : raise :class:`~synaptic_fwp._validation.NonFiniteError` naming the first
        step, instance and head where ``y`` became NaN or infinite (a diverging delta rule, an
        unbounded Hebbian growth), instead of returning it. One reduction over ``y`` and
        ``W_T``; on a GPU also a host synchronisation, which a training loop may skip with
        ``False``.

    Returns
    -------
    y : (B, T, H, V) with ``y_t = W_t phi(q_t)``, ``W_t`` after the step-t write (Eq. 14).
    W_T : (B, H, V, K) the final state.
    states : only with ``return_states``.

    Autograd flows through every backend.
    """
    check_choice("backend", backend, BACKENDS)
    if not isinstance(check_finite, bool):
        raise TypeError(f"check_finite must be a bool, got {check_finite!r}")
    if isinstance(return_states, bool):
        stride = 1 if return_states else 0
    elif isinstance(return_states, int) and return_states > 0:
        stride = return_states
    else:
        raise ValueError(f"return_states must be a bool or a positive int, got {return_states!r}")
    if chunk_size is not None and (
        not isinstance(chunk_size, int) or isinstance(chunk_size, bool) or chunk_size < 1
    ):
        raise ValueError(f"chunk_size must be a positive int or None, got {chunk_size!r}")
    rule, g, W0 = prepare(
        q, k, v, rule, eta=eta, decay=decay, gate=gate, initial_state=initial_state
    )
    f = get_feature_map(phi)
    q, k = f(q), f(k)
    from .chunk import needs_grad

    grad = needs_grad(q, k, v, W0, *g.values())
    name = _pick_backend(rule, q, backend, v.shape[-1], grad)
    if name == "chunk":
        if not rule.has_chunk_form:
            raise ValueError(
                f"rule {rule.name!r} has no chunk-wise form; use backend='recurrent' "
                "(rules with one: every LinearRule except 'oja')"
            )
        from .chunk import default_chunk_size, scan_chunk

        S = chunk_size
        if S is None:
            S = default_chunk_size(rule, k.shape[-1], v.shape[-1], grad)
        with _threads(default_threads("chunk")):
            y, W, st = scan_chunk(q, k, v, rule, g, W0, stride=stride, chunk_size=S)
    elif name == "triton":
        from ..kernels import scan_triton

        S = 64 if chunk_size is None else chunk_size  # the kernels round it to 16..64
        y, W, st = scan_triton(q, k, v, rule, g, W0, stride=stride, chunk_size=S)
    else:
        with _threads(default_threads("recurrent", W0.numel())):
            y, W, st = scan_recurrent(q, k, v, rule, g, W0, stride=stride)
    if check_finite and not (all_finite(y) and all_finite(W)):
        _raise_nonfinite(q, k, v, rule, g, W0, y, W, name)
    if stride:
        return y, W, st
    return y, W


def _first_nonfinite(y: torch.Tensor, W: torch.Tensor | None) -> str | None:
    """Where ``y: (B, T, H, V)`` first (in time) stops being finite, else where ``W: (B, H, V,
    K)`` is not finite; ``None`` if both are finite."""
    bad = ~torch.isfinite(y.detach())
    if bool(bad.any()):
        rows = bad.any(-1).nonzero()  # (b, t, h)
        b, t, h = rows[rows[:, 1].argmin()].tolist()
        return f"at step {t} (instance {b}, head {h}; 0-based)"
    if W is not None and not all_finite(W):
        b, h = (~torch.isfinite(W.detach())).flatten(2).any(-1).nonzero()[0].tolist()
        return f"in the final state W_T (instance {b}, head {h})"
    return None


def _raise_nonfinite(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, rule: LinearRule,
                     g: dict, W0: torch.Tensor, y: torch.Tensor, W: torch.Tensor | None,
                     backend: str) -> None:
    """:class:`NonFiniteError` for a scan whose output is not finite, naming the first step,
    instance and head: those of the recurrence (re-run, without autograd, when another backend
    failed: a chunk's outputs are computed together, so the chunk form cannot tell which of its
    steps diverged), or saying that only the fast path overflowed."""
    if backend == "recurrent":
        where = _first_nonfinite(y, W)
    else:
        with torch.no_grad():
            yr, Wr, _ = scan_recurrent(q.detach(), k.detach(), v.detach(), rule,
                                       {n: x.detach() if isinstance(x, torch.Tensor) else x
                                        for n, x in g.items()}, W0.detach())
        where = _first_nonfinite(yr, Wr)
        if where is None:
            raise NonFiniteError(
                f"scan with rule {rule.name!r}: backend {backend!r} overflowed "
                f"({_first_nonfinite(y, W)}) where the recurrence stays finite (a decay "
                "product too small for the dtype within a chunk); use backend='recurrent', a "
                "smaller chunk_size or float64"
            )
    if rule.correction == "delta":
        hint = ("the delta rule diverges when eta_t |phi(k_t)|^2 > 2 (Primer Sec. 3.6: an "
                "eigenvalue of I - eta k k^T below -1); L2-normalise the keys (phi='silu_l2') "
                "or lower eta")
    else:
        hint = ("the fast weights grew past the dtype's range; use a decay, a smaller learning "
                "rate, smaller inputs or float64")
    raise NonFiniteError(
        f"scan with rule {rule.name!r} (backend {backend!r}) became non-finite {where}: {hint}. "
        "check_finite=False returns the output as it is"
    )


def attention_form(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    rule: str | LinearRule = "hebbian",
    *,
    decay: torch.Tensor | float | None = None,
    eta: torch.Tensor | float | None = None,
    normalize: bool = False,
    phi: str | Callable[[torch.Tensor], torch.Tensor] | None = None,
    check_finite: bool = True,
) -> torch.Tensor:
    """The dual (attention) form, Primer Eqs. 15-22.

    ``y_t = sum_{s<=t} w_{ts} (phi(k_s) . phi(q_t)) v_s``.

    For the Hebbian family with scalar decay, ``w_{ts} = c_s prod_{s<r<=t} lambda_r`` (``c_s`` the
    write coefficient). ``normalize=True`` divides by ``z_t^T phi(q_t)``, ``z_t = sum_s w_{ts}
    phi(k_s)``, i.e. ``z_t = lambda_t z_{t-1} + c_t phi(k_t)`` (Eqs. 19-22, the linear
    transformer of Katharopoulos et al. 2020; use a positive ``phi`` such as ``"elu1"``).
    Rules with a state-dependent correction (delta, Oja, BCM) or vector gates (GLA) have no
    attention form of this kind and raise ``ValueError``.
    The decay products are formed exactly (a cumulative product of a masked ``T x T`` matrix, no
    logarithms), so decays of exactly 0 are fine. Returns ``y: (B, T, H, V)``; memory is
    ``O(T^2)`` per head (it is the quadratic dual of :func:`scan`). ``check_finite`` as in
    :func:`scan` (a normaliser ``z_t^T phi(q_t)`` of 0 gives inf).
    """
    r = get(rule)
    if isinstance(r, BCMRule) or r.correction != "none" or r.decay in ("post", "pre"):
        raise ValueError(
            f"rule {r.name!r} has no attention form; allowed: hebbian, retnet, mamba2, "
            "gated_rfa, mlstm (no correction, no vector gate)"
        )
    if not isinstance(normalize, bool):
        raise TypeError(f"normalize must be a bool, got {normalize!r}")
    if not isinstance(check_finite, bool):
        raise TypeError(f"check_finite must be a bool, got {check_finite!r}")
    rule, g, _ = prepare(q, k, v, r, eta=eta, decay=decay)
    f = get_feature_map(phi)
    q, k = f(q), f(k)
    B, T, H, _ = q.shape
    c = rule.write_coef(g)
    if not isinstance(c, torch.Tensor):
        c = q.new_full((B, T, H), float(c))
    mask = torch.ones(T, T, dtype=torch.bool, device=q.device).tril()
    zero = q.new_zeros(())
    weight = c.permute(0, 2, 1).unsqueeze(-2)  # (B, H, 1, S): c_s
    if g["decay"] is not None:
        from .chunk import _decay_matrix

        lam = g["decay"].permute(0, 2, 1).unsqueeze(-1)  # (B, H, T, 1)
        weight = weight * _decay_matrix(lam)[..., 0]  # prod_{s<r<=t} lambda_r
    weight = torch.where(mask, weight, zero)  # (B, H, T, S)
    scores = torch.einsum("bthk,bshk->bhts", q, k)
    y = torch.einsum("bhts,bshv->bthv", scores * weight, v)
    if normalize:
        den = torch.einsum("bhts,bhts->bth", weight, scores)
        y = y / den.unsqueeze(-1)
    if check_finite and not all_finite(y):
        hint = ("the normaliser z_t^T phi(q_t) is 0 or of mixed sign there: use a positive "
                "feature map (phi='elu1')" if normalize else
                "the inputs or learning rates are too large for the dtype")
        raise NonFiniteError(
            f"attention_form with rule {rule.name!r} became non-finite "
            f"{_first_nonfinite(y, None)}: {hint}. check_finite=False returns it as it is")
    return y
