r"""Input sources for the network engine: Poisson spikes, explicit spike times, rate traces,
place-cell inputs on a track and plateau (instructive) events.

Spike sources deliver, for each chunk of steps, a sorted list of events ``(step, instance,
neuron)``; rate sources deliver a dense ``(T, batch, n)`` tensor. Times are in seconds, rates
in Hz, positions in metres.

Randomness (DESIGN.md, "Determinism"): each Poisson neuron ``i`` of instance ``b`` draws from its
own counter-based stream (SplitMix64, Steele, Lea & Flood 2014, as a counter-based generator in
the sense of Salmon et al. 2011, SC'11 "Parallel random numbers: as easy as 1, 2, 3"): the ``k``-th
uniform of the stream is a fixed hash of ``(seed_b, source, i, k)``. An instance therefore gets
the same spikes whatever else is in the batch, whatever the batch size and however the run is
chunked, and the complete generator state is two integer tensors (checkpoint/resume is exact).

Poisson spikes on the time grid: the spike indicator of step ``n`` is Bernoulli with
``p_n = 1 - exp(-rate(t_n) dt)`` (the probability of at least one event of a Poisson process in
the bin). Candidate steps are drawn at ``p_max`` with geometric gaps
``G = 1 + floor(ln u / ln(1 - p_max))`` (so work is proportional to the number of spikes, not to
``n * steps``), and a candidate is kept with probability ``p_n / p_max`` (thinning, exact for
Bernoulli processes; Lewis & Shedler 1979).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from ._params import check_value, is_swept

__all__ = [
    "PoissonInput",
    "SpikeTimesInput",
    "RateInput",
    "PlaceCellInput",
    "PlateauInput",
    "Events",
    "splitmix_uniform",
]

_GOLD = 0x9E3779B97F4A7C15 - (1 << 64)  # signed int64 views of the SplitMix64 constants
_M1 = 0xBF58476D1CE4E5B9 - (1 << 64)
_M2 = 0x94D049BB133111EB - (1 << 64)


def _srl(z: torch.Tensor, s: int) -> torch.Tensor:
    """Logical right shift of int64 (torch's >> is arithmetic)."""
    return (z >> s) & ((1 << (64 - s)) - 1)


def _mix(z: torch.Tensor) -> torch.Tensor:
    """SplitMix64 finaliser (wrapping int64 arithmetic)."""
    z = (z ^ _srl(z, 30)) * _M1
    z = (z ^ _srl(z, 27)) * _M2
    return z ^ _srl(z, 31)


def splitmix_uniform(key: torch.Tensor, counter: torch.Tensor) -> torch.Tensor:
    """The ``counter``-th uniform in (0, 1) (float64) of the stream ``key`` (int64 tensors)."""
    z = _mix(key + (counter + 1) * _GOLD)
    return (_srl(z, 11).to(torch.float64) + 0.5) * (1.0 / (1 << 53))


def _stream_keys(instance_seeds: torch.Tensor, source_id: int, n: int) -> torch.Tensor:
    """One int64 key per (instance, neuron): ``(batch, n)``."""
    s = _mix(instance_seeds.reshape(-1, 1) * _GOLD + source_id)
    return _mix(s + torch.arange(n, dtype=torch.int64).reshape(1, -1) * _M1)


@dataclass
class Events:
    """Spikes of one chunk: ``step`` (relative to the chunk start), ``b``, ``i`` (int64), sorted by
    step, then instance, then neuron; ``n`` neurons per instance."""

    step: torch.Tensor
    b: torch.Tensor
    i: torch.Tensor
    n: int

    def split(self, T: int) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None]:
        """Per step of the chunk: ``(b, i, flat)`` of its spikes (``flat = b n + i``), or
        ``None`` for a step without spikes."""
        out: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None] = [None] * T
        if self.step.numel() == 0:
            return out
        counts = torch.bincount(self.step, minlength=T).tolist()
        bs = torch.split(self.b, counts)
        is_ = torch.split(self.i, counts)
        fl = torch.split(self.b * self.n + self.i, counts)
        for t, c in enumerate(counts):
            if c:
                out[t] = (bs[t], is_[t], fl[t])
        return out


def _sorted_events(step: torch.Tensor, b: torch.Tensor, i: torch.Tensor, batch: int,
                   n: int) -> Events:
    key = (step * batch + b) * n + i
    order = torch.argsort(key)
    return Events(step[order], b[order], i[order], n)


class Source:
    """Base class of inputs: ``n`` channels per instance, ``kind`` in {"spikes", "rate"}."""

    n: int
    name: str
    kind: str

    def params(self) -> dict[str, object]:
        return {}

    def swept(self) -> dict[str, torch.Tensor]:
        """Per-instance parameters: 1-d tensors of length batch (a 1-d tensor whose length is
        not the batch size is per neuron; when ``batch == n`` it is per instance)."""
        B = getattr(self, "_B", None)
        return {k: v for k, v in self.params().items() if is_swept(v) and v.shape[0] == B}


RateSpec = float | torch.Tensor | Callable[[torch.Tensor], torch.Tensor]


def _check_rate_tensor(name: str, rate: torch.Tensor) -> None:
    if not rate.is_floating_point():
        raise TypeError(f"{name} must have a floating dtype, got {rate.dtype}")
    if not bool(torch.isfinite(rate).all()):
        raise ValueError(f"{name} must be finite, got NaN or inf")
    if bool((rate < 0).any()):
        raise ValueError(
            f"{name} must be >= 0 (rates in Hz), got a value of {float(rate.min())}"
        )


@dataclass(eq=False)
class PoissonInput(Source):
    """``n`` Poisson spike trains per instance (module docstring for the sampling).

    ``rate`` (Hz): a number; a tensor of shape ``(batch,)`` (per instance, swept), ``(n,)`` (per
    neuron) or ``(batch, n)``; a trace of shape ``(T_trace, n)`` or ``(T_trace, batch, n)`` sampled
    every ``rate_dt`` seconds (held between samples, last value after the end); or a callable
    ``rate(t)`` taking the times ``t`` (s, shape ``(T,)``) and returning rates broadcastable to
    ``(T, batch, n)``, with ``max_rate`` its upper bound (Hz).
    """

    n: int
    rate: RateSpec = 10.0
    rate_dt: float | None = None
    max_rate: float | None = None
    name: str = "poisson"
    kind: str = field(default="spikes", init=False)

    def __post_init__(self) -> None:
        _check_n(self.n)
        r = self.rate
        if callable(r) and not isinstance(r, torch.Tensor):
            if self.max_rate is None:
                raise ValueError(
                    "max_rate is required (an upper bound in Hz) when rate is callable"
                )
            check_value("max_rate", self.max_rate, positive=True)
            self._mode = "callable"
        elif isinstance(r, torch.Tensor):
            _check_rate_tensor("rate", r)
            if self.rate_dt is not None:
                check_value("rate_dt", self.rate_dt, positive=True)
                if r.ndim not in (2, 3) or r.shape[-1] != self.n:
                    raise ValueError(
                        f"rate with rate_dt is a trace of shape (T, {self.n}) or (T, batch, "
                        f"{self.n}), got shape {tuple(r.shape)}"
                    )
                self._mode = "trace"
            else:
                if r.ndim > 2:
                    raise ValueError(
                        f"rate must be a number or a tensor of shape (batch,), ({self.n},) or "
                        f"(batch, {self.n}); got shape {tuple(r.shape)} (give rate_dt for a trace)"
                    )
                self._mode = "const"
        else:
            check_value("rate", r, nonneg=True)
            self._mode = "const"
        if self.max_rate is not None:
            check_value("max_rate", self.max_rate, positive=True)

    def params(self) -> dict[str, object]:
        if self._mode == "const":
            return {"rate": self.rate}
        return {}

    def bind(self, net, source_id: int) -> None:  # noqa: ANN001 - engine.Network
        B, n, dt = net.batch, self.n, net.dt
        self._dt = dt
        self._B = B
        dtype = torch.float64
        if self._mode == "const":
            r = self.rate
            if isinstance(r, torch.Tensor):
                r = r.detach().to(dtype)
                if r.ndim == 1 and r.shape[0] == B:
                    r = r.reshape(B, 1)
                elif r.ndim == 1 and r.shape[0] == n:
                    r = r.reshape(1, n)
                elif r.ndim == 2 and r.shape != (B, n):
                    raise ValueError(
                        f"rate has shape {tuple(r.shape)}; allowed: ({B},), ({n},), ({B}, {n})"
                    )
                elif r.ndim == 1:
                    raise ValueError(
                        f"rate has shape {tuple(r.shape)}; allowed: ({B},) per instance or "
                        f"({n},) per neuron"
                    )
                r = r.expand(B, n)
            else:
                r = torch.full((B, n), float(r), dtype=dtype)
            self._p = -torch.expm1(-r * dt)  # (B, n) per-step probability
            self._pmax = self._p
            self._thin = False
        else:
            if self._mode == "trace":
                rmax = float(self.rate.max())
                if self.rate.ndim == 3 and self.rate.shape[1] != B:
                    raise ValueError(
                        f"rate trace has batch size {self.rate.shape[1]} but the network has "
                        f"batch={B}"
                    )
            else:
                rmax = float(self.max_rate)  # type: ignore[arg-type]
            if self.max_rate is not None:
                rmax = max(rmax, float(self.max_rate))
            self._pmax = torch.full((B, n), -math.expm1(-rmax * dt), dtype=dtype)
            self._thin = True
        if bool((self._pmax >= 1.0).any()):
            raise ValueError(f"rate * dt is too large: rates must be well below 1/dt = {1 / dt} Hz")
        self._logq = torch.log1p(-self._pmax)  # (B, n), <= 0
        self._key = _stream_keys(net.instance_seeds, source_id, n)
        self._key2 = _stream_keys(net.instance_seeds, source_id + 7919, n)

    def rate_at(self, steps: torch.Tensor, b: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
        """Rates (Hz, float64) at the given absolute steps for the given (instance, neuron)."""
        if self._mode == "trace":
            r = self.rate.detach().to(torch.float64)
            pos = steps.to(torch.float64) * self._dt / self.rate_dt + 1e-9
            k = torch.clamp(pos.floor().long(), max=r.shape[0] - 1)
            return r[k, b, i] if r.ndim == 3 else r[k, i]
        t = steps.to(torch.float64) * self._dt
        uniq, inv = torch.unique(t, return_inverse=True)
        val = torch.as_tensor(self.rate(uniq), dtype=torch.float64)  # type: ignore[operator]
        val = torch.broadcast_to(val, (uniq.shape[0], self._B, self.n))
        r = val[inv, b, i]
        if bool((r < 0).any()):
            raise ValueError(f"rate(t) returned a negative rate ({float(r.min())} Hz)")
        if self.max_rate is not None and bool((r > self.max_rate * (1 + 1e-12)).any()):
            raise ValueError(
                f"rate(t) returned {float(r.max())} Hz, above max_rate={self.max_rate} Hz"
            )
        return r

    def init_state(self) -> dict[str, torch.Tensor]:
        zero = torch.zeros(self._key.shape, dtype=torch.int64)
        first = self._gap(zero) - 1  # step of the first candidate
        return {"next": first, "count": zero + 1}

    def _gap(self, counter: torch.Tensor, idx: torch.Tensor | None = None) -> torch.Tensor:
        """Geometric gap (steps, >= 1) to the next candidate, from the ``counter``-th uniform of
        each stream (all streams, or the flat stream indices ``idx``)."""
        key = self._key if idx is None else self._key.view(-1).index_select(0, idx)
        logq = self._logq if idx is None else self._logq.reshape(-1).index_select(0, idx)
        u = splitmix_uniform(key, counter)
        g = torch.floor(torch.log(u) / logq)
        return g.clamp(max=2**52).to(torch.int64) + 1

    def events(self, state: dict[str, torch.Tensor], s0: int, T: int) -> Events:
        """The spikes of steps ``[s0, s0 + T)``; advances ``state`` in place."""
        nxt, cnt = state["next"].view(-1), state["count"].view(-1)
        end = s0 + T
        steps, flats, ks = [], [], []
        active = (nxt < end).nonzero().squeeze(-1)  # only neurons with a spike left in the chunk
        while active.numel():
            st = nxt.index_select(0, active)
            k = cnt.index_select(0, active)
            steps.append(st)
            flats.append(active)
            ks.append(k)
            st = st + self._gap(k, active)
            nxt.index_copy_(0, active, st)
            cnt.index_copy_(0, active, k + 1)
            active = active[st < end]
        if not steps:
            e = torch.zeros(0, dtype=torch.int64)
            return Events(e, e, e, self.n)
        step = torch.cat(steps)
        flat = torch.cat(flats)
        b, i = flat // self.n, flat % self.n
        if self._thin:
            k = torch.cat(ks)
            u = splitmix_uniform(self._key2[b, i], k)
            p = -torch.expm1(-self.rate_at(step, b, i) * self._dt)
            keep = u * self._pmax[b, i] < p
            step, b, i = step[keep], b[keep], i[keep]
        return _sorted_events(step - s0, b, i, self._B, self.n)


@dataclass(eq=False)
class SpikeTimesInput(Source):
    """Spikes at given times (pairing protocols): ``times`` (s) and ``indices`` (neuron ids) of
    equal length; ``instances`` (instance ids, same length) or ``None`` for every instance.
    Times are rounded to the nearest step; two spikes of one neuron in one step are an error."""

    n: int
    times: Sequence[float] | torch.Tensor = ()
    indices: Sequence[int] | torch.Tensor = ()
    instances: Sequence[int] | torch.Tensor | None = None
    name: str = "spike_times"
    kind: str = field(default="spikes", init=False)

    def __post_init__(self) -> None:
        _check_n(self.n)
        t = torch.as_tensor(self.times, dtype=torch.float64).reshape(-1)
        i = torch.as_tensor(self.indices, dtype=torch.int64).reshape(-1)
        if t.shape != i.shape:
            raise ValueError(
                f"times and indices must have the same length, got {t.shape[0]} and {i.shape[0]}"
            )
        if t.numel() and (not bool(torch.isfinite(t).all()) or float(t.min()) < 0):
            raise ValueError("times must be finite and >= 0 (seconds)")
        if i.numel() and (int(i.min()) < 0 or int(i.max()) >= self.n):
            raise ValueError(
                f"indices must lie in [0, {self.n}), got {int(i.min())}..{int(i.max())}"
            )
        if self.instances is not None:
            bb = torch.as_tensor(self.instances, dtype=torch.int64).reshape(-1)
            if bb.shape != t.shape:
                raise ValueError(
                    f"instances must have the same length as times, got {bb.shape[0]} and "
                    f"{t.shape[0]}"
                )
            self._b = bb
        else:
            self._b = None
        self._t, self._i = t, i

    def bind(self, net, source_id: int) -> None:  # noqa: ANN001
        B = net.batch
        step = torch.round(self._t / net.dt).to(torch.int64)
        if self._b is None:
            b = torch.arange(B).repeat_interleave(step.numel())
            step, i = step.repeat(B), self._i.repeat(B)
        else:
            b, i = self._b, self._i
            if b.numel() and (int(b.min()) < 0 or int(b.max()) >= B):
                raise ValueError(f"instances must lie in [0, {B}), got {int(b.max())}")
        ev = _sorted_events(step, b, i, B, self.n)
        key = (ev.step * B + ev.b) * self.n + ev.i
        if key.numel() > 1 and bool((key[1:] == key[:-1]).any()):
            raise ValueError(
                f"times: two spikes of one neuron fall in one step of dt={net.dt} s; use a smaller "
                "dt or separate the spikes"
            )
        self._ev = ev
        self._B = B

    def init_state(self) -> dict[str, torch.Tensor]:
        return {}

    def events(self, state: dict[str, torch.Tensor], s0: int, T: int) -> Events:
        ev = self._ev
        lo = int(torch.searchsorted(ev.step, s0))
        hi = int(torch.searchsorted(ev.step, s0 + T))
        return Events(ev.step[lo:hi] - s0, ev.b[lo:hi], ev.i[lo:hi], self.n)


@dataclass(eq=False)
class RateInput(Source):
    """A deterministic rate signal (Hz): a number, a tensor ``(batch,)``, ``(n,)`` or
    ``(batch, n)``, a trace ``(T, n)`` / ``(T, batch, n)`` with ``rate_dt``, or a callable
    ``rate(t) -> (T, batch or 1, n)``."""

    n: int
    rate: RateSpec = 0.0
    rate_dt: float | None = None
    name: str = "rate_input"
    kind: str = field(default="rate", init=False)

    def __post_init__(self) -> None:
        _check_n(self.n)
        if isinstance(self.rate, torch.Tensor):
            _check_rate_tensor("rate", self.rate)
            if self.rate_dt is not None:
                check_value("rate_dt", self.rate_dt, positive=True)
        elif not callable(self.rate):
            check_value("rate", self.rate, nonneg=True)

    def params(self) -> dict[str, object]:
        return {"rate": self.rate} if is_swept(self.rate) and self.rate_dt is None else {}

    def bind(self, net, source_id: int) -> None:  # noqa: ANN001
        self._B, self._dt, self._dtype = net.batch, net.dt, net.dtype

    def init_state(self) -> dict[str, torch.Tensor]:
        return {}

    def values(self, s0: int, T: int) -> torch.Tensor:
        """Rates of steps ``[s0, s0 + T)``: ``(T, batch, n)``."""
        B, n = self._B, self.n
        t = (torch.arange(s0, s0 + T, dtype=torch.float64)) * self._dt
        r = self.rate
        if callable(r) and not isinstance(r, torch.Tensor):
            v = torch.as_tensor(r(t), dtype=torch.float64)
            v = torch.broadcast_to(v, (T, B, n))
            if bool((v < 0).any()):
                raise ValueError(f"rate(t) returned a negative rate ({float(v.min())} Hz)")
        elif isinstance(r, torch.Tensor) and self.rate_dt is not None:
            k = torch.clamp((t / self.rate_dt + 1e-9).floor().long(), max=r.shape[0] - 1)
            v = r.to(torch.float64)[k]
            v = torch.broadcast_to(v if v.ndim == 3 else v.unsqueeze(1), (T, B, n))
        elif isinstance(r, torch.Tensor):
            rr = r.to(torch.float64)
            if rr.ndim == 1 and rr.shape[0] == B:
                rr = rr.reshape(B, 1)
            v = torch.broadcast_to(rr, (B, n)).unsqueeze(0).expand(T, B, n)
        else:
            v = torch.full((T, B, n), float(r), dtype=torch.float64)
        return v.to(self._dtype)


@dataclass(eq=False)
class PlaceCellInput(Source):
    """CA3-like place cells on a track (O'Keefe & Dostrovsky 1971; BTSP protocols of Bittner et
    al. 2017 and Milstein et al. 2021).

    The animal runs at ``speed`` (m/s) from ``x0``; on a ``circular`` track of length
    ``track_length`` the position wraps, on a linear track each lap restarts at 0. Cell ``i`` has
    its field centre at ``centers[i]`` (default: evenly spaced) and rate
    ``baseline + peak_rate exp(-d^2 / (2 width^2))``, ``d`` the (wrapped, if circular) distance.
    ``spiking=True`` gives Poisson spikes at that rate, ``False`` the rate itself.
    """

    n: int
    track_length: float = 1.87
    speed: float = 0.25
    width: float = 0.2
    peak_rate: float = 20.0
    baseline: float = 0.0
    circular: bool = False
    x0: float = 0.0
    centers: torch.Tensor | None = None
    spiking: bool = True
    name: str = "place_cells"
    kind: str = field(default="spikes", init=False)

    def __post_init__(self) -> None:
        _check_n(self.n)
        check_value("track_length", self.track_length, positive=True)
        check_value("speed", self.speed, positive=True)
        check_value("width", self.width, positive=True)
        check_value("peak_rate", self.peak_rate, nonneg=True)
        check_value("baseline", self.baseline, nonneg=True)
        check_value("x0", self.x0)
        if self.centers is None:
            c = (torch.arange(self.n, dtype=torch.float64) + 0.5) * (self.track_length / self.n)
        else:
            c = torch.as_tensor(self.centers, dtype=torch.float64).reshape(-1)
            if c.shape[0] != self.n:
                raise ValueError(f"centers must have length n={self.n}, got {c.shape[0]}")
        self._c = c
        self.kind = "spikes" if self.spiking else "rate"
        self._poisson = PoissonInput(self.n, rate=self._rate, max_rate=max(
            self.peak_rate + self.baseline, 1e-12), name=self.name)

    def position(self, t: torch.Tensor) -> torch.Tensor:
        """Position (m) at times ``t`` (s)."""
        return torch.remainder(self.x0 + self.speed * t.to(torch.float64), self.track_length)

    def _rate(self, t: torch.Tensor) -> torch.Tensor:
        x = self.position(t).unsqueeze(-1)  # (T, 1)
        d = (x - self._c).abs()
        if self.circular:
            d = torch.minimum(d, self.track_length - d)
        r = self.baseline + self.peak_rate * torch.exp(-0.5 * (d / self.width) ** 2)
        return r.unsqueeze(1)  # (T, 1, n)

    def bind(self, net, source_id: int) -> None:  # noqa: ANN001
        self._B, self._dtype = net.batch, net.dtype
        self._dt = net.dt
        if self.spiking:
            self._poisson.bind(net, source_id)

    def init_state(self) -> dict[str, torch.Tensor]:
        return self._poisson.init_state() if self.spiking else {}

    def events(self, state: dict[str, torch.Tensor], s0: int, T: int) -> Events:
        return self._poisson.events(state, s0, T)

    def values(self, s0: int, T: int) -> torch.Tensor:
        t = torch.arange(s0, s0 + T, dtype=torch.float64) * self._dt
        return self._rate(t).expand(T, self._B, self.n).to(self._dtype)


@dataclass(eq=False)
class PlateauInput(Source):
    """Plateau potentials / instructive events (EC3 input of BTSP; Bittner et al. 2017): a signal
    of ``amplitude`` during ``[t_k, t_k + duration)`` and 0 otherwise, on ``n`` channels.

    Give either ``times`` (s; a list for all instances or a tensor ``(batch, K)`` per instance;
    NaN entries are ignored) or ``positions`` (m) together with ``track`` (a
    :class:`PlaceCellInput`): a plateau starts when the animal first reaches each position on each
    lap listed in ``laps`` (0-based; default every lap).
    """

    n: int = 1
    times: Sequence[float] | torch.Tensor | None = None
    positions: Sequence[float] | None = None
    track: PlaceCellInput | None = None
    laps: Sequence[int] | None = None
    duration: float = 0.3
    amplitude: float = 1.0
    name: str = "plateau"
    kind: str = field(default="rate", init=False)

    def __post_init__(self) -> None:
        _check_n(self.n)
        check_value("duration", self.duration, positive=True)
        check_value("amplitude", self.amplitude)
        if (self.times is None) == (self.positions is None):
            raise ValueError("give exactly one of times (s) or positions (m) for PlateauInput")
        if self.positions is not None and self.track is None:
            raise ValueError("positions requires track (a PlaceCellInput giving the trajectory)")

    def _start_times(self, t0: float, t1: float) -> torch.Tensor:
        """Plateau onsets (s) that can overlap ``[t0, t1)``: ``(1 or batch, K)``."""
        if self.times is not None:
            t = torch.as_tensor(self.times, dtype=torch.float64)
            return t if t.ndim == 2 else t.reshape(1, -1)
        tr = self.track
        assert tr is not None
        L = tr.track_length
        lo = max(0, int(math.floor(max(t0 - self.duration, 0.0) * tr.speed / L)) - 1)
        hi = int(math.ceil(t1 * tr.speed / L)) + 1
        laps = range(lo, hi + 1) if self.laps is None else [lap for lap in self.laps
                                                           if lo <= lap <= hi]
        out = []
        for lap in laps:
            for x in self.positions:  # type: ignore[union-attr]
                # first time t >= 0 at which x0 + speed t reaches x on lap ``lap``
                d = (float(x) - tr.x0) % L
                out.append((d + lap * L) / tr.speed)
        return torch.tensor(sorted(out), dtype=torch.float64).reshape(1, -1)

    def bind(self, net, source_id: int) -> None:  # noqa: ANN001
        self._B, self._dt, self._dtype = net.batch, net.dt, net.dtype
        st = self._start_times(0.0, 0.0)
        if st.shape[0] not in (1, net.batch):
            raise ValueError(
                f"times has {st.shape[0]} rows but the network has batch={net.batch}; give a list "
                f"or a tensor of shape ({net.batch}, K)"
            )
        self._len = max(1, int(round(self.duration / net.dt)))

    def init_state(self) -> dict[str, torch.Tensor]:
        return {}

    def values(self, s0: int, T: int) -> torch.Tensor:
        steps = torch.arange(s0, s0 + T, dtype=torch.float64).reshape(T, 1, 1)
        start = torch.round(self._start_times(s0 * self._dt, (s0 + T) * self._dt) / self._dt)
        st = start.unsqueeze(0)  # (1, B|1, K); NaN never matches
        on = ((steps >= st) & (steps < st + self._len)).any(-1)  # (T, B|1)
        v = on.to(self._dtype) * self.amplitude
        return v.unsqueeze(-1).expand(T, self._B, self.n)


def _check_n(n: object) -> None:
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"n must be an int (number of channels), got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
