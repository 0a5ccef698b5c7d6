r"""The batched network engine: ``Network(dt, batch, seed, device, dtype)``.

Add inputs (:mod:`synaptic_fwp.inputs`), populations (:mod:`synaptic_fwp.neurons`) and
projections (:func:`synaptic_fwp.synapses.connect`), then ``run(duration, record=..., every=...)``
returns an :class:`xarray.Dataset` in the schema of :mod:`synaptic_fwp.records`. ``batch``
independent instances are simulated as one tensor program; any parameter may be given per
instance (shape ``(batch,)``) and then becomes a coordinate on ``batch``.

One step ``n`` (time ``t_n = n dt``), in Brian2's schedule order (groups, thresholds, synapses,
resets):

1. every population advances over ``dt`` with the conductances/inputs delivered so far (exact
   exponential integration, :mod:`synaptic_fwp.neurons`), emits spikes and resets;
2. the inputs emit the spikes/rates of step ``n``;
3. every projection delivers the (delayed) presynaptic activity of step ``n`` (``g += W[:, :, i]``
   for each presynaptic spike; ``I += W r`` for rates), then its plasticity acts: a spiking rule
   decays its traces by one step, applies ``on_pre`` for step ``n``'s presynaptic spikes, then
   ``on_post`` for the postsynaptic spikes (Brian2's pathway order); a rate rule applies its
   ``step``.

Records are taken every ``every`` seconds at the end of a step; the record of step ``n`` is
stamped ``(n + 1) dt``. Spike records count the spikes since the previous record.

Speed: input spikes are drawn per chunk of steps (work proportional to the number of spikes);
spike transmission and ``on_pre`` act only on the synapses of the spiking inputs (the rule is
called on the gathered synapses, so nothing ``n_post x n_pre`` is touched on a step unless a
postsynaptic neuron spikes, and then only for the instances where it did); traces decay by
exact per-step factors computed once from the rule itself. Feed-forward networks (spiking
inputs onto one LIF population with AMPA and GABA synapses through static or trace-rule
projections) take the event-window path (:class:`_WindowPath`, ``run(method="auto")``):
between postsynaptic spikes the whole network is linear and known in advance, so windows of up
to 200 steps are solved at once and per-step Python work disappears; it equals the step path up
to rounding (tested). Rule parameters may differ between instances there (a sweep of amplitudes
or target rates, time constants included), and plastic projections may have a connection mask
(absent synapses stay 0).

Backends: ``run(backend="torch")`` uses the paths above. ``run(backend="triton")`` runs one input of
spikes onto one LIF or AdEx population through one pair/triplet STDP or static AMPA projection (rule
parameters scalar or per instance, no delay), plus at most one GABA projection from an input
(feed-forward inhibition, as in Song, Miller & Abbott 2000; static or with Vogels et al.'s
inhibitory STDP), with the fused kernel :func:`synaptic_fwp.kernels.spiking.run_lif_stdp`
(:class:`_TritonPath`): one launch per chunk of time, records stored by the kernel, state written
back so records, streaming and checkpoints are unchanged; it equals the step path spike for spike
(float64, tested under ``TRITON_INTERPRET=1``). It needs CUDA tensors, or the interpreter on the
CPU; anything else is a ``ValueError`` before any work. ``backend="auto"`` (default) takes Triton
only on CUDA tensors, for networks it runs, with ``method="auto"``. Devices: inputs draw their
spikes on the CPU (counter-based streams) and the step path moves each chunk's events to the
network's device; the event-window path runs on CPU tensors only.

Determinism: an instance's result does not depend on the rest of the batch, on the batch size
or on how the run is chunked or interrupted (random streams are counter-based per instance;
every operation is elementwise or reduces within an instance). ``seed`` gives instance ``b`` the
seed ``seed + b``, so ``Network(batch=1, seed=seed + b)`` reproduces instance ``b``; or pass one
seed per instance.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import zlib
from collections import deque
from collections.abc import Callable, Sequence

import numpy as np
import torch

from . import records as _rec
from ._validation import NonFiniteError, all_finite
from .inputs import Source
from .neurons import AdExPopulation, LIFPopulation, Population, RatePopulation
from .sequence import default_threads
from .synapses import Projection, connect

__all__ = ["Network", "NonFiniteError"]

_UNITS = {"C": "F", "g_L": "S", "I_ext": "A", "mg": "mM", "rate": "Hz", "eta": "1/s",
          "r_max": "Hz", "gain": "1", "theta": "1", "r_init": "Hz"}


def _units_of(param: str) -> str:
    if param in _UNITS:
        return _UNITS[param]
    if param.startswith("tau") or param in ("t_ref", "delay") or param.startswith("rule_tau"):
        return "s"
    if param.startswith(("E_", "V_")) or param == "ampa_drive":
        return "V"
    return "1"


def _clone(x: object) -> object:
    if isinstance(x, torch.Tensor):
        return x.clone()
    if isinstance(x, dict):
        return {k: _clone(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_clone(v) for v in x]
    if isinstance(x, tuple):
        return tuple(_clone(v) for v in x)
    if isinstance(x, deque):
        return deque((_clone(v) for v in x), maxlen=x.maxlen)
    return copy.copy(x)


class Network:
    """A batch of independent networks simulated together (module docstring).

    Parameters: ``dt`` (s, > 0), ``batch`` (number of instances), ``seed`` (int, or one int per
    instance), ``device``, ``dtype`` (``torch.float32`` default, ``torch.float64`` for
    reference runs).
    """

    def __init__(
        self,
        dt: float,
        batch: int = 1,
        seed: int | Sequence[int] = 0,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if isinstance(dt, bool) or not isinstance(dt, (int, float)):
            raise TypeError(f"dt must be a float (seconds), got {type(dt).__name__}")
        if not math.isfinite(dt) or dt <= 0:
            raise ValueError(f"dt must be a finite number > 0 (seconds), got {dt}")
        if isinstance(batch, bool) or not isinstance(batch, int):
            raise TypeError(f"batch must be an int, got {type(batch).__name__}")
        if batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        if isinstance(seed, bool):
            raise TypeError("seed must be an int or a sequence of ints, got bool")
        if isinstance(seed, int):
            seeds = [seed + b for b in range(batch)]
        else:
            seeds = list(seed)
            if len(seeds) != batch or not all(isinstance(s, int) for s in seeds):
                raise ValueError(
                    f"seed must be an int or a sequence of {batch} ints (one per instance), got "
                    f"{seed!r}"
                )
        self.dt = float(dt)
        self.batch = batch
        self.seed = seed if isinstance(seed, int) else seeds
        self.instance_seeds = torch.tensor(seeds, dtype=torch.int64)
        self.device = torch.device(device)
        self.dtype = dtype
        self.inputs: dict[str, Source] = {}
        self.populations: dict[str, Population] = {}
        self.projections: dict[str, Projection] = {}
        self._state: dict | None = None
        self._step = 0
        # set when method="auto" found the event windows too short (frequent postsynaptic
        # spikes): later chunks and runs take the step path (_WindowPath.run_chunk)
        self._windows_short = False

    # ------------------------------------------------------------------ building
    def _name_ok(self, name: str) -> None:
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"name must be a Python identifier, got {name!r}")
        if name in self.inputs or name in self.populations or name in self.projections:
            raise ValueError(f"name {name!r} is already used in this network; names must be unique")

    def add(self, *objs: object) -> object:
        """Add inputs, populations and projections (in any order that adds a projection after its
        pre and post); returns the object (or the tuple of objects)."""
        for obj in objs:
            name = getattr(obj, "name", None)
            self._name_ok(name)  # type: ignore[arg-type]
            if self._state is not None:
                raise RuntimeError("the network has already run; build a new Network to add "
                                   "objects (or call reset() first)")
            if isinstance(obj, Projection):
                for arg, o in (("pre", obj.pre), ("post", obj.post), ("value", obj.value)):
                    if o is None and arg == "value":
                        continue
                    if not any(o is x for x in (*self.inputs.values(),
                                                *self.populations.values())):
                        raise ValueError(
                            f"projection {name!r}: its {arg} ({getattr(o, 'name', o)!r}) is not "
                            "in this network; add it first"
                        )
                obj.bind(self.dt, self.batch, self.dtype, self.device)
                if isinstance(obj.post, LIFPopulation):
                    if obj.U0 is not None:
                        obj.post.uses["nmda"] = True
                    if obj.target == "gaba":
                        obj.post.uses["gaba"] = True
                self.projections[name] = obj  # type: ignore[index]
            elif isinstance(obj, Population):
                obj.bind(self.dt, self.batch, self.dtype, self.device)  # type: ignore[attr-defined]
                self.populations[name] = obj  # type: ignore[index]
            elif isinstance(obj, Source):
                obj.bind(self, zlib.crc32(name.encode()))  # type: ignore[union-attr,attr-defined]
                self.inputs[name] = obj  # type: ignore[index]
            else:
                raise TypeError(
                    f"add() takes inputs, populations and projections, got {type(obj).__name__}"
                )
        return objs[0] if len(objs) == 1 else objs

    def connect(self, pre: object, post: object, W0: torch.Tensor | float, rule: object = None,
                **kwargs: object) -> Projection:
        """:func:`synaptic_fwp.synapses.connect` and :meth:`add` in one call."""
        default = f"{getattr(pre, 'name', 'pre')}_to_{getattr(post, 'name', 'post')}"
        kwargs.setdefault("name", default)
        p = connect(pre, post, W0, rule, **kwargs)
        self.add(p)
        return p

    def reset(self) -> None:
        """Forget the simulated state (the next run starts at t = 0)."""
        self._state = None
        self._step = 0

    @property
    def t(self) -> float:
        """Current simulated time (s)."""
        return self._step * self.dt

    # ------------------------------------------------------------------ state
    def _init_state(self) -> dict:
        st: dict = {"inp": {}, "pop": {}, "proj": {}, "buf": {}}
        for n, i in self.inputs.items():
            st["inp"][n] = i.init_state()  # type: ignore[attr-defined]
        for n, p in self.populations.items():
            st["pop"][n] = p.init_state()  # type: ignore[attr-defined]
        for n, p in self.projections.items():
            st["proj"][n] = p.init_state()
            if p.delay_steps > 0:
                st["buf"][n] = deque([None] * p.delay_steps, maxlen=p.delay_steps)
        return st

    def state_dict(self) -> dict:
        """A copy of the complete simulation state (step counter included)."""
        if self._state is None:
            self._state = self._init_state()
        return {"step": self._step, "state": _clone(self._state)}

    def _static_keys(self) -> dict[str, tuple[str, ...]]:
        """The weights of static projections, by projection: they never change during a run,
        so the engine's per-chunk snapshots share them instead of copying (in a recurrent
        network they are most of the state: 4,000 neurons at 2% connectivity hold 16 million
        weights per instance) and the per-chunk finiteness check skips them (they were checked
        when the projection was built)."""
        return {n: ("W", "U") for n, p in self.projections.items() if p.kind == "static"}

    def _snapshot(self) -> dict:
        """:meth:`state_dict`, but sharing the static weights (:meth:`_static_keys`): the
        engine's copy for rolling back a chunk and for checkpoints, never handed to users."""
        if self._state is None:
            self._state = self._init_state()
        static = self._static_keys()
        st = {g: d for g, d in self._state.items() if g != "proj"}
        proj = {}
        for n, d in self._state["proj"].items():
            keep = static.get(n, ())
            proj[n] = {k: (v if k in keep else _clone(v)) for k, v in d.items()}
        return {"step": self._step, "state": _clone(st) | {"proj": proj}}

    def load_state_dict(self, d: dict) -> None:
        self._step = int(d["step"])
        self._state = _clone(d["state"])  # type: ignore[assignment]

    # ------------------------------------------------------------------ records
    def _parse_record(self, record: Sequence[str] | str) -> list[tuple[str, str, str]]:
        if isinstance(record, str):
            record = [record]
        out = []
        for r in record:
            if not isinstance(r, str) or r.count(".") != 1:
                raise ValueError(
                    f"record entries must be 'object.variable' strings, got {r!r}"
                )
            obj, var = r.split(".")
            if obj in self.populations:
                allowed = list(self.populations[obj].variables)  # type: ignore[attr-defined]
                kind = "pop"
            elif obj in self.inputs:
                allowed = ["spikes"] if self.inputs[obj].kind == "spikes" else ["rate"]
                kind = "inp"
            elif obj in self.projections:
                p = self.projections[obj]
                allowed = ["W"]
                if p.U0 is not None:
                    allowed.append("U")
                if p.tau_pre is not None:
                    allowed.append("x_pre")
                if p.tau_post is not None:
                    allowed.append("y_post")
                if p.kind == "rate":
                    allowed.append("v")
                    if "theta" in self._probe_state(p):
                        allowed.append("theta")
                if p.kind == "spiking":
                    allowed += list(p.rule.state_shapes)
                kind = "proj"
            else:
                names = [*self.inputs, *self.populations, *self.projections]
                raise ValueError(f"record: unknown object {obj!r} in {r!r}; objects: {names}")
            if var not in allowed:
                raise ValueError(f"record: {obj!r} has no variable {var!r}; allowed: {allowed}")
            out.append((kind, obj, var))
        return out

    def _probe_state(self, p: Projection) -> dict:
        return p.init_state()

    def _rec_value(self, st: dict, kind: str, obj: str, var: str, counters: dict) -> torch.Tensor:
        if var == "spikes":
            c = counters[(kind, obj)]
            v = c.clone()
            c.zero_()
            return v
        if kind == "pop":
            return st["pop"][obj][var].clone()
        if kind == "inp":
            return self._last_rate[obj].clone()
        s = st["proj"][obj]
        if var in s:
            return s[var].clone()
        return s[f"rule.{var}"].clone()

    def _rec_spec(self, items: list[tuple[str, str, str]]) -> tuple[dict, dict]:
        """Names, dims, units, long names and neuron coords of the recorded variables."""
        dims_used: dict[str, int] = {}

        def dim(pref: str, size: int, obj: str) -> str:
            if dims_used.get(pref, size) == size:
                dims_used[pref] = size
                return pref
            q = f"{pref}_{obj}"
            dims_used[q] = size
            return q

        posts = {id(p.post) for p in self.projections.values()}
        specs: dict[str, tuple[tuple[str, ...], str, str]] = {}
        for kind, obj, var in items:
            name = f"{obj}_{var}"
            if kind == "pop":
                pop = self.populations[obj]
                d = dim("post" if id(pop) in posts else "neuron", pop.n, obj)
                units, ln = pop.variables[var]  # type: ignore[attr-defined]
                specs[name] = (("batch", "time", d), units, f"{obj}: {ln}")
            elif kind == "inp":
                inp = self.inputs[obj]
                d = dim("pre", inp.n, obj)
                if var == "spikes":
                    specs[name] = (("batch", "time", d), "1",
                                   f"{obj}: spike count in the recording interval")
                else:
                    specs[name] = (("batch", "time", d), "Hz or 1", f"{obj}: input signal")
            else:
                p = self.projections[obj]
                dpost = dim("post", p.n_post, obj)
                dpre = dim("pre", p.n_pre, obj)
                if var in ("W", "U"):
                    units = "S" if isinstance(p.post, LIFPopulation) else "1"
                    ln = Projection.variables_base[var][1]
                    specs[name] = (("batch", "time", dpost, dpre), units, f"{obj}: {ln}")
                elif var in ("x_pre",):
                    specs[name] = (("batch", "time", dpre), "Hz",
                                   f"{obj}: {Projection.variables_base[var][1]}")
                elif var in ("y_post", "v", "theta"):
                    units, ln = Projection.variables_base[var]
                    specs[name] = (("batch", "time", dpost), units, f"{obj}: {ln}")
                else:
                    where = p.rule.state_shapes[var]
                    dd = {"pre": (dpre,), "post": (dpost,), "syn": (dpost, dpre)}[where]
                    specs[name] = (("batch", "time", *dd), "1",
                                   f"{obj}: {where} state {var!r} of rule {p.rule.name}")
        coords = {d: ((d,), np.arange(n), {"units": "1", "long_name": f"{d} index"})
                  for d, n in dims_used.items()}
        return specs, coords

    def _coords_attrs(self) -> tuple[dict, dict]:
        coords = {"batch": (("batch",), np.arange(self.batch),
                            {"units": "1", "long_name": "instance index"})}
        coords["seed"] = (("batch",), self.instance_seeds.numpy(),
                          {"units": "1", "long_name": "random seed of the instance"})
        for objs in (self.inputs, self.populations, self.projections):
            for n, o in objs.items():
                for k, v in o.swept().items():  # type: ignore[attr-defined]
                    coords[f"{n}_{k}"] = (("batch",), v.detach().cpu().numpy(),
                                          {"units": _units_of(k),
                                           "long_name": f"{n}.{k} (per instance)"})
        from . import __version__

        attrs: dict[str, object] = {"dt": self.dt, "dt_units": "s", "seed": json_seed(self.seed),
                                    "package": "synaptic_fwp", "version": __version__}
        for n, p in self.projections.items():
            ra = p.rule_attrs()
            attrs[f"{n}_rule"] = ra["rule"]
            if p.rule is not None:
                attrs[f"{n}_rule_params"] = {"rule": ra["rule_params"],
                                             "projection": ra["projection_params"]}
        attrs["rules"] = {n: p.rule_attrs()["rule"] for n, p in self.projections.items()}
        return coords, attrs

    # ------------------------------------------------------------------ running
    def run(
        self,
        duration: float,
        record: Sequence[str] | str = (),
        every: float | None = None,
        progress: bool = True,
        out: str | None = None,
        resume: bool | str | None = None,
        chunk: int | None = None,
        on_chunk: Callable[[int], None] | None = None,
        method: str = "auto",
        backend: str = "auto",
    ):
        """Simulate ``duration`` seconds and return the records as an ``xarray.Dataset``.

        ``record``: ``"object.variable"`` names (e.g. ``"lif.V"``, ``"S.W"``, ``"inp.spikes"``);
        ``every``: the recording interval (s, a multiple of ``dt``; default ``dt``);
        ``progress``: a tqdm bar; ``out``: stream the records to ``*.nc`` (NetCDF4) or
        ``*.zarr`` chunk by chunk, with a checkpoint ``<out>.ckpt.pt`` after each chunk;
        ``resume``: ``True`` (the checkpoint next to ``out``) or a checkpoint path: continue an
        interrupted streamed run with the same arguments, giving the same Dataset as an
        uninterrupted run; ``chunk``: steps per chunk (default about 2000, a multiple of the
        recording interval); ``on_chunk(step)``: called after each chunk is written;
        ``method``: ``"step"`` (every ``dt``, any network), ``"window"`` (the event-window path of
        :class:`_WindowPath`: feed-forward spiking inputs onto one LIF population (AMPA and GABA
        synapses) with static or trace-rule projections; equal to the step path up to rounding) or
        ``"auto"`` (the window path where it applies and the recording interval allows windows of at
        least 8 steps, as long as its windows stay long: when postsynaptic spikes come more often
        than every :data:`WINDOW_MIN_STEPS` steps on average, as in a population of 100 neurons
        at 80 Hz, the run goes on with the step path, decided after the first windows and kept
        for the network's later runs); ``backend``: ``"torch"`` (the torch paths chosen by
        ``method``), ``"triton"`` (the fused spiking kernel
        :func:`synaptic_fwp.kernels.spiking.run_lif_stdp`, see :class:`_TritonPath`: one input of
        spikes onto one LIF or AdEx population through one pair/triplet STDP or static AMPA
        projection with no delay, plus
        at most one GABA projection from an input (static or InhibitorySTDP); on CUDA tensors, or on
        the CPU under ``TRITON_INTERPRET=1``; ``method`` must then be ``"auto"``) or ``"auto"``
        (Triton on CUDA tensors for networks it runs when Triton is installed and ``method="auto"``,
        the torch paths otherwise). Records, Dataset, streaming and checkpoints are the same for
        every backend; the Triton path equals the step path spike for spike (float64, tested) up to
        the last bit of the conductances. A run keeps torch's thread setting, or uses
        ``SYNAPTIC_FWP_THREADS`` threads if that is set (restoring yours afterwards; set it to 1
        on a machine whose cores other jobs share: :func:`synaptic_fwp.sequence.default_threads`).
        """
        if method not in ("auto", "step", "window"):
            raise ValueError(f"method must be one of ['auto', 'step', 'window'], got {method!r}")
        if backend not in ("auto", "torch", "triton"):
            raise ValueError(
                f"backend must be one of ['auto', 'torch', 'triton'], got {backend!r}"
            )
        if backend == "triton" and method != "auto":
            raise ValueError(
                f"method={method!r} selects among the torch paths; with backend='triton' leave "
                "method='auto' (or use backend='torch')"
            )
        if isinstance(duration, bool) or not isinstance(duration, (int, float)):
            raise TypeError(f"duration must be a float (seconds), got {type(duration).__name__}")
        if not math.isfinite(duration) or duration <= 0:
            raise ValueError(f"duration must be a finite number > 0 (seconds), got {duration}")
        n_steps = int(round(duration / self.dt))
        if n_steps < 1 or abs(n_steps * self.dt - duration) > 1e-6 * self.dt + 1e-12 * duration:
            raise ValueError(
                f"duration={duration} s must be a whole number of steps of dt={self.dt} s"
            )
        if every is None:
            every_steps = 1
        else:
            if isinstance(every, bool) or not isinstance(every, (int, float)) or every <= 0:
                raise ValueError(f"every must be a positive number of seconds, got {every!r}")
            every_steps = int(round(every / self.dt))
            if every_steps < 1 or abs(every_steps * self.dt - every) > 1e-6 * self.dt:
                raise ValueError(f"every={every} s must be a whole multiple of dt={self.dt} s")
        if every_steps > n_steps:
            raise ValueError(
                f"every={every} s is longer than duration={duration} s; nothing would be recorded"
            )
        items = self._parse_record(record)
        if chunk is None:
            chunk_steps = every_steps * max(1, round(2000 / every_steps))
        else:
            if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
                raise ValueError(f"chunk must be a positive int (steps), got {chunk!r}")
            chunk_steps = every_steps * max(1, chunk // every_steps)
        kmax = 200
        for pop in self.populations.values():
            if isinstance(pop, LIFPopulation):  # keep d^-K = exp(K dt/tau_ampa) <= e^300
                kmax = min(kmax, max(1, int(300 * float(torch.as_tensor(pop.tau_ampa).min())
                                            / self.dt)))
        K = _window_size(every_steps, chunk_steps, kmax)
        triton_path = None
        if backend == "triton" or (backend == "auto" and method == "auto"
                                   and self.device.type == "cuda"):
            why_t = _triton_ok(self)
            if why_t is None:
                why_t = _triton_ready(self.device)
            if backend == "triton" and why_t is not None:
                raise ValueError(f"backend='triton' is not available: {why_t}. {_TRITON_RUNS}")
            if why_t is None:
                triton_path = _TritonPath(self)
        why = _window_ok(self, items)
        if method == "window" and why is not None:
            raise ValueError(f"method='window' is not available for this network: it {why}")
        use_window = triton_path is None and (method == "window" or (
            method == "auto" and why is None and K >= 8 and not self._windows_short))
        window = _WindowPath(self, K) if use_window else None
        writer = _rec.RecordWriter(out) if out is not None else None
        if resume and writer is None:
            raise ValueError("resume needs out= (the streamed records of the interrupted run)")
        if resume not in (None, False, True) and not isinstance(resume, str):
            raise TypeError(f"resume must be True, False, None or a path, got {resume!r}")
        fingerprint = {"duration_steps": n_steps, "every_steps": every_steps, "dt": self.dt,
                       "batch": self.batch, "record": [list(i) for i in items],
                       "chunk_steps": chunk_steps, "seeds": self.instance_seeds.tolist(),
                       "method": "triton" if triton_path is not None else (
                           "window" if use_window else "step")}
        ckpt = _rec.checkpoint_path(out) if out is not None else None
        if isinstance(resume, str):
            ckpt = resume
        elif resume and not os.path.exists(ckpt):  # type: ignore[arg-type]
            resume = False  # nothing was checkpointed yet: start from the beginning
        n_written = 0
        if resume:
            payload = _rec.load_checkpoint(ckpt)  # type: ignore[arg-type]
            if payload["fingerprint"] != fingerprint:
                raise ValueError(
                    "resume: the checkpoint was written by a run with other arguments "
                    f"({payload['fingerprint']}); got {fingerprint}"
                )
            self.load_state_dict(payload["net"])
            start = payload["start_step"]
            n_written = payload["n_records"]
            if payload.get("windows_short") and method == "auto":
                self._windows_short, window = True, None  # as the interrupted run went on
        else:
            if self._state is None:
                self._state = self._init_state()
            start = self._step
        end = start + n_steps
        if writer is not None:
            writer.start(n_written)
        specs, dim_coords = self._rec_spec(items)
        coords, attrs = self._coords_attrs()
        coords.update(dim_coords)
        attrs["t_start"] = start * self.dt
        mem_chunks: list = []
        from tqdm.auto import tqdm

        bar = tqdm(total=n_steps, initial=self._step - start, disable=not progress, unit="step",
                   desc="synaptic_fwp", leave=False)
        n_threads, old_threads = default_threads("engine"), torch.get_num_threads()
        if n_threads is not None:  # SYNAPTIC_FWP_THREADS, for this run only
            torch.set_num_threads(n_threads)
        try:
            while self._step < end:
                T = min(chunk_steps, end - self._step)
                if window is not None and T >= K:
                    T -= T % K  # whole windows; a remainder shorter than K takes the step path
                snap = self._snapshot()
                if triton_path is not None:
                    data, times = triton_path.run_chunk(self._step, T, items, every_steps, start)
                elif window is not None and T % K == 0:
                    s_before = self._step
                    data, times = window.run_chunk(self._step, T, items, every_steps, start,
                                                   probe=method == "auto")
                    if window.short:  # it stopped early: the rest takes the step path
                        T, window, self._windows_short = self._step - s_before, None, True
                else:
                    data, times = self._run_chunk(self._step, T, items, every_steps, start)
                bad = self._first_nonfinite()
                if bad is not None:
                    self.load_state_dict(snap)
                    self._run_chunk(self._step, T, items, every_steps, start, check=True)
                    raise NonFiniteError(f"state became non-finite: {bad}")  # pragma: no cover
                ds = _rec.make_dataset(data, specs, times, coords, attrs) if len(times) else None
                if writer is not None:
                    if ds is not None:
                        writer.append(ds)
                    _rec.save_checkpoint(ckpt, {  # type: ignore[arg-type]
                        "net": self._snapshot(), "start_step": start,
                        "n_records": writer.n, "fingerprint": fingerprint,
                        "windows_short": self._windows_short})
                elif ds is not None:
                    mem_chunks.append(ds)
                bar.update(T)
                if on_chunk is not None:
                    on_chunk(self._step)
        finally:
            bar.close()
            if n_threads is not None:
                torch.set_num_threads(old_threads)
        if writer is not None:
            return _rec.open_records(out, writer.n)  # type: ignore[arg-type]
        if len(mem_chunks) == 1:
            return mem_chunks[0]
        import xarray as xr

        return xr.concat(mem_chunks, dim="time", data_vars="minimal", coords="minimal",
                         compat="override", combine_attrs="override")

    def _first_nonfinite(self) -> str | None:
        st = self._state
        static = self._static_keys()
        for group in ("pop", "proj"):
            for obj, d in st[group].items():  # type: ignore[index]
                for k, v in d.items():
                    if group == "proj" and k in static.get(obj, ()):
                        continue
                    if isinstance(v, torch.Tensor) and v.is_floating_point():
                        if all_finite(v):
                            continue
                        idx = (~torch.isfinite(v)).nonzero()[0].tolist()
                        return f"variable {obj}.{k}, instance {idx[0]}, index {idx[1:]}"
        return None

    def _run_chunk(self, s0: int, T: int, items: list, every_steps: int, start: int,
                   check: bool = False, counts: dict | None = None) -> tuple[dict, np.ndarray]:
        """The step path over steps ``[s0, s0 + T)``; ``counts``: spike counts of the current
        recording interval so far, by ``(kind, object)`` (a chunk that starts mid-interval)."""
        st = self._state
        assert st is not None
        dt = self.dt
        dev = self.device
        ev = {n: _events_on(i.events(st["inp"][n], s0, T), dev).split(T)  # type: ignore[attr-defined]
              for n, i in self.inputs.items() if i.kind == "spikes"}
        vals = {n: i.values(s0, T).to(dev)  # type: ignore[attr-defined]
                for n, i in self.inputs.items() if i.kind == "rate"}
        # spike counters for records
        counters = {}
        for kind, obj, var in items:
            if var == "spikes":
                nn = (self.populations[obj] if kind == "pop" else self.inputs[obj]).n
                counters[(kind, obj)] = torch.zeros(self.batch, nn, dtype=torch.int32,
                                                    device=self.device)
                if counts is not None and (kind, obj) in counts:
                    counters[(kind, obj)] += counts[(kind, obj)].to(self.device)
        self._last_rate = {}
        rec_steps = [t for t in range(T) if (s0 + t - start + 1) % every_steps == 0]
        rec_set = set(rec_steps)
        buffers: dict[str, list] = {f"{o}_{v}": [] for _, o, v in items}
        spk_pops = {n for n, p in self.populations.items() if p.kind == "spikes"}
        need_bi = {p.pre.name for p in self.projections.values()  # type: ignore[attr-defined]
                   if p.pre.name in spk_pops}  # type: ignore[attr-defined]
        pop_fns = []
        for n, p in self.populations.items():
            s = st["pop"][n]
            fn = p.stepper(s) if isinstance(p, LIFPopulation) else (
                lambda p=p, s=s: p.step(s))  # type: ignore[misc]
            pop_fns.append((n, fn, n in need_bi))
        proj_fns = [self._proj_fn(n, p, st) for n, p in self.projections.items()]
        for t in range(T):
            act: dict = {}
            for n, fn, bi in pop_fns:
                out = fn()
                act[n] = out
                if bi:
                    b_, i_ = out.nonzero(as_tuple=True)
                    act[(n, "bi")] = (b_, i_, b_ * out.shape[1] + i_) if b_.numel() else None
            for n, lst in ev.items():
                act[(n, "bi")] = lst[t]
            for n, v in vals.items():
                act[n] = v[t]
                self._last_rate[n] = v[t]
            for fn in proj_fns:
                fn(act)
            for (kind, obj), c in counters.items():
                if kind == "pop":
                    c += act[obj]
                else:
                    e = act[(obj, "bi")]
                    if e is not None:
                        c.index_put_(e[:2], torch.ones_like(e[0], dtype=torch.int32),
                                     accumulate=True)
            if check:
                bad = self._first_nonfinite()
                if bad is not None:
                    self._step = s0 + t
                    raise NonFiniteError(
                        f"state became non-finite at step {s0 + t} (t = {(s0 + t + 1) * dt:.6g} "
                        f"s): {bad}"
                    )
            if t in rec_set:
                for kind, obj, var in items:
                    buffers[f"{obj}_{var}"].append(self._rec_value(st, kind, obj, var, counters))
        self._step = s0 + T
        data = {}
        for k, lst in buffers.items():
            if lst:
                data[k] = torch.stack(lst, 1).cpu().numpy()
            else:
                data[k] = np.zeros((self.batch, 0), dtype=np.float32)
        times = (np.array(rec_steps, dtype=np.float64) + s0 + 1) * dt
        return data, times

    def _proj_fn(self, n: str, p: Projection, st: dict):  # noqa: ANN202 - a closure
        """The per-step work of projection ``p`` as a closure over its state."""
        s = st["proj"][n]
        pre = p.pre.name  # type: ignore[attr-defined]
        post = p.post.name  # type: ignore[attr-defined]
        post_s = st["pop"][post]
        valn = p.value.name if p.value is not None else None  # type: ignore[attr-defined]
        pre_bi = (pre, "bi")
        if (p.kind == "spiking" and p.compact and p.delay_steps == 0
                and isinstance(p.post, LIFPopulation)):
            core = p.spike_stepper(s, post_s)

            def fast(act: dict) -> None:
                spk = act[post]
                core(act[pre_bi], spk, bool(spk.any()))

            return fast
        buf = st["buf"].get(n)
        delayed = self._delayed
        batch, dtype, device = self.batch, self.dtype, self.device

        def general(act: dict) -> None:
            a = None
            if p.pre.kind == "spikes":  # type: ignore[attr-defined]
                a = act[pre_bi]
                if buf is not None:
                    a = delayed(buf, a)
                if p.tau_pre is not None:
                    p.update_pre_trace(s, a)
                if a is not None:
                    p.transmit_spikes(s, post_s, a[0], a[1])
                if isinstance(p.post, RatePopulation):
                    p.transmit_rates(s, post_s, s["x_pre"])
                r_pre = None
            else:
                r_pre = act[pre]
                if buf is not None:
                    r_pre = delayed(buf, r_pre)
                    if r_pre is None:
                        r_pre = torch.zeros(batch, p.n_pre, dtype=dtype, device=device)
                p.transmit_rates(s, post_s, r_pre)
            if p.kind == "spiking":
                p.spike_decay(s)
                if a is not None:
                    p.spike_on_pre(s, a[0], a[1])
                spk = act[post]
                if bool(spk.any()):
                    p.spike_on_post(s, spk)
            elif p.kind == "rate":
                if p.tau_post is not None:
                    p.update_post_trace(s, act[post])
                k = p.pre_signal(s, r_pre)
                p.rate_plasticity(s, k, post_s, act[valn] if valn is not None else None)

        return general

    @staticmethod
    def _delayed(buf: deque, a: object) -> object:
        """Push this step's activity into the delay line and return the one ``d`` steps old."""
        old = buf[0]
        buf.append(a)
        return old


def _events_on(ev: object, device: torch.device) -> object:
    """The events of a chunk (drawn on the CPU by :mod:`synaptic_fwp.inputs`) on ``device``."""
    if device.type == "cpu":
        return ev
    return type(ev)(ev.step.to(device), ev.b.to(device), ev.i.to(device), ev.n)  # type: ignore[attr-defined]


def json_seed(seed: int | list[int]) -> int | str:
    return seed if isinstance(seed, int) else ",".join(str(s) for s in seed)


# --------------------------------------------------------------------------------------------
# The event-window path: exact linear dynamics between postsynaptic spikes, vectorised in time.
# --------------------------------------------------------------------------------------------


def _window_size(every_steps: int, chunk_steps: int, kmax: int = 64) -> int:
    """Largest divisor of the recording interval (and of the chunk) that is <= ``kmax``."""
    for k in range(min(kmax, every_steps), 0, -1):
        if every_steps % k == 0 and chunk_steps % k == 0:
            return k
    return 1


def _window_ok(net: Network, items: list) -> str | None:
    """Why the event-window path cannot run this network (``None`` if it can)."""
    if net.device.type != "cpu":
        return f"runs on CPU tensors only (the network is on {net.device})"
    if len(net.populations) != 1:
        return "needs exactly one population"
    pop = next(iter(net.populations.values()))
    if type(pop) is not LIFPopulation or pop.uses["nmda"]:
        return "needs a LIF population with AMPA (and GABA) synapses only"
    for i in net.inputs.values():
        if i.kind != "spikes":
            return "needs spiking inputs only"
    for p in net.projections.values():
        if p.pre not in net.inputs.values() or p.post is not pop:
            return "needs feed-forward projections from inputs"
        if p.target not in ("ampa", "gaba") or p.U0 is not None or p.delay_steps \
                or p.tau_pre is not None or p.tau_post is not None:
            return "needs plain AMPA or GABA projections (no U, delay or rate-rule traces)"
        if p.kind == "rate":
            return "rate rules step every dt"
        if p.kind == "spiking":
            r = p.rule
            if r.has_continuous_dynamics or p.has_syn:
                return "needs spiking rules with pre/post traces only"
            if not p.compact and (not dataclasses.is_dataclass(r)
                                  or getattr(r, "taus", None) is None):
                return "needs trace rules whose parameters are dataclass fields"
    for kind, _obj, _var in items:
        if kind == "inp":
            return "does not record input spikes"
    return None


#: ``method="auto"`` leaves the event-window path when its windows are cut, on average, into
#: segments (between postsynaptic spike steps of an instance) shorter than this many steps.
#: Window / step path time on this machine, 1,000 Poisson inputs onto 1-100 LIF neurons with
#: pair STDP, 8 instances, K = 128 (steps per segment: ratio): 25-37: 0.5; 11.6: 0.88; 4-6:
#: 2.4; 2.6: 7.7; 1.9: 22 (32 instances, 24: 0.72).
WINDOW_MIN_STEPS = 10

#: Windows a probing chunk runs before it judges their length (at worst each costs some 20
#: times what the step path would; one tells).
WINDOW_PROBE = 1


class _WindowPath:
    """Advance a feed-forward network (spiking inputs -> one LIF population with AMPA and
    optionally GABA synapses, static or trace-rule projections) by windows of ``K`` steps.

    Between postsynaptic spikes everything is known in advance: the input spikes (drawn per
    chunk), the weights at each presynaptic spike (the rule's ``on_pre``, applied to the spiking
    synapses in order of occurrence, on traces decayed lazily by the rule's own ``decay`` with
    per-synapse intervals, as Brian2's event-driven variables), hence the conductances (AMPA and
    GABA, each a linear recurrence), and the membrane potential, which is linear in ``V`` with
    the conductances held over each step (the same exponential integrator as the step path). All
    recurrences are solved for the whole window at once in float64 (cumulative sums of the
    scaled increments), the first threshold crossing of each instance is found, and each
    instance commits up to its own spike; instances that spiked apply ``on_post`` and continue
    from the next step. Window boundaries are fixed multiples of ``K`` and every instance's
    arithmetic depends only on its own spikes, so results are batch-independent and equal for
    any chunking; they equal the step path's up to rounding. Per-instance rule parameters are
    taken at each event's instance (:func:`_rule_at`), and the decay tables are per instance, so
    time constants may be swept too.
    """

    def __init__(self, net: Network, K: int) -> None:
        self.net = net
        self.K = K
        self.rounds = 0  # commit rounds (one per postsynaptic spike step of an instance, + 1)
        self.short = False  # set by a probing run_chunk that found the windows too short
        self.pop = next(iter(net.populations.values()))
        self.projs = list(net.projections.items())
        # decay factors for intervals of 0..K steps, from the rule itself, per instance (time
        # constants may differ between instances): table[k][b (K + 1) + lag] =
        # rule.decay(1, lag dt) of instance b, so x * that == rule.decay(x, lag dt)
        self.tables: dict[str, dict[str, torch.Tensor]] = {}
        self.stride: dict[str, int] = {}  # K + 1 with per-instance rows, else 0
        pp = self.pop._p
        self.c64 = {k: pp[k].to(torch.float64) for k in (
            "dec_ampa", "V_th", "V_reset", "V_rest", "drive_over_gL", "fac_m", "g_L", "gLEL",
            "E_ampa", "dt_over_C", "ampa_drive", "dec_gaba", "E_gaba") if k in pp}
        self.gaba = bool(self.pop.uses["gaba"])
        if "fac_m" in self.c64 and not self.gaba:
            self.c64["loga_fixed"] = torch.log(self.c64["fac_m"]).unsqueeze(0).expand(
                K, net.batch, self.pop.n)
        # the rule of a projection at given instances (per-instance parameters gathered)
        self.rule_at: dict[str, Callable[[torch.Tensor], object]] = {}
        for n, p in self.projs:
            if p.kind == "spiking":
                taus = getattr(p.rule, "taus", {}) or {}
                rows = net.batch if any(isinstance(t, torch.Tensor) and t.numel() > 1
                                        for t in taus.values()) else 1
                self.stride[n] = K + 1 if rows > 1 else 0  # shared time constants: one row
                ones = {k: torch.ones(rows, 1, dtype=net.dtype) for k in p.rule.state_shapes}
                cols = [p.rule.decay(ones, lag * net.dt) for lag in range(K + 1)]
                # flat (B (K + 1),): the factor of instance b and lag l at b (K + 1) + l
                self.tables[n] = {k: torch.cat([c[k] for c in cols], 1).reshape(-1)
                                  for k in ones}
                self.rule_at[n] = _rule_at(p.rule)

    def run_chunk(self, s0: int, T: int, items: list, every_steps: int, start: int,  # noqa: ANN201
                  probe: bool = False):
        """Advance ``T`` steps (whole windows) from step ``s0``; return the records. With
        ``probe`` (``method="auto"``), stop after the first :data:`WINDOW_PROBE` windows or any
        later one if postsynaptic spikes cut the windows into segments shorter than
        :data:`WINDOW_MIN_STEPS` steps on average: each segment costs a round of the window's
        work, and then the step path is faster (1,000 Poisson inputs onto 100 LIF neurons at
        80 Hz, 8 instances, K = 128: 66 rounds a window, 22x slower than the step path; one
        neuron at 150-300 Hz: 3.5-5 rounds, 2x faster). ``self.short`` then says so; the step
        path finishes the recording interval it stopped in (its spike counts carried on), and
        ``net._step`` says how far the chunk got."""
        net, K = self.net, self.K
        st = net._state
        assert st is not None and T % K == 0
        # the inputs' stream states at s0: an early stop redraws its steps from them
        inp0 = {n: {k: v.clone() for k, v in st["inp"][n].items()} for n in net.inputs} \
            if probe else {}
        ev = {n: i.events(st["inp"][n], s0, T) for n, i in net.inputs.items()}
        bounds = {n: torch.searchsorted(e.step, torch.arange(0, T + 1, K)).tolist()
                  for n, e in ev.items()}
        counters = {}
        for kind, obj, var in items:
            if var == "spikes":
                counters[(kind, obj)] = torch.zeros(net.batch, self.pop.n, dtype=torch.int32)
        buffers: dict[str, list] = {f"{o}_{v}": [] for _, o, v in items}
        rec_steps = []
        rounds0 = self.rounds
        for w in range(T // K):
            wev = {}
            for n, e in ev.items():
                lo, hi = bounds[n][w], bounds[n][w + 1]
                wev[n] = (e.step[lo:hi] - w * K, e.b[lo:hi], e.i[lo:hi])
            self._window(st, wev, counters)
            n_end = s0 + (w + 1) * K  # steps done
            if (n_end - start) % every_steps == 0:
                rec_steps.append(n_end - 1 - s0)
                for kind, obj, var in items:
                    buffers[f"{obj}_{var}"].append(net._rec_value(st, kind, obj, var, counters))
            rounds = self.rounds - rounds0  # in this chunk
            if probe and w + 1 >= WINDOW_PROBE and (w + 1) * K < rounds * WINDOW_MIN_STEPS:
                self.short = True
                done = (w + 1) * K
                for n, i in net.inputs.items():  # the streams as of s0 + done, not the chunk's end
                    for k, v in st["inp"][n].items():
                        v.copy_(inp0[n][k])
                    i.events(st["inp"][n], s0, done)
                # the step path finishes the recording interval, carrying its spike counts on
                rest = min(T - done, -(s0 + done - start) % every_steps)
                net._step = s0 + done
                data, times = self._records(buffers, rec_steps, s0)
                if not rest:
                    return data, times
                d2, t2 = net._run_chunk(s0 + done, rest, items, every_steps, start,
                                        counts=counters)
                for k, x in d2.items():
                    if x.shape[1]:
                        data[k] = np.concatenate([data[k], x], 1) if k in data else x
                return data, np.concatenate([times, t2])
        net._step = s0 + T
        return self._records(buffers, rec_steps, s0)

    def _records(self, buffers: dict, rec_steps: list, s0: int) -> tuple[dict, np.ndarray]:
        """The chunk's records as arrays (batch first) and their times (s)."""
        data = {k: torch.stack(v, 1).cpu().numpy() for k, v in buffers.items() if v}
        return data, (np.array(rec_steps, dtype=np.float64) + s0 + 1) * self.net.dt

    # ---------------------------------------------------------------- one window
    def _window(self, st: dict, wev: dict, counters: dict) -> None:  # noqa: C901
        net, K, pop = self.net, self.K, self.pop
        B, P = net.batch, pop.n
        ps = st["pop"][pop.name]
        p = pop._p
        f64 = torch.float64
        # per-projection event arrays, ranks, lazy trace bookkeeping
        proj = []
        for n, pr in self.projs:
            s = st["proj"][n]
            step, b, i = wev[pr.pre.name]
            flat = b * pr.n_pre + i
            if step.numel():
                order = torch.argsort(flat * K + step)
                sf = flat[order]
                start = torch.ones_like(sf, dtype=torch.bool)
                start[1:] = sf[1:] != sf[:-1]
                pos = torch.arange(sf.numel())
                first = torch.cummax(torch.where(start, pos, 0), 0).values
                rank = torch.empty_like(pos)
                rank[order] = pos - first
            else:
                rank = step
            info = {"n": n, "p": pr, "s": s, "step": step, "b": b, "i": i, "flat": flat,
                    "rank": rank}
            if pr.kind == "spiking":
                sh = pr.rule.state_shapes
                info["pre_k"] = [k for k, v in sh.items() if v == "pre"]
                info["post_k"] = [k for k, v in sh.items() if v == "post"]
                info["tl_pre"] = torch.full((B * pr.n_pre,), -1, dtype=torch.int64)
                info["tl_post"] = torch.full((B, P), -1, dtype=torch.int64)
            proj.append(info)
        # LIF constants (float64, per instance)
        c64 = self.c64
        d = c64["dec_ampa"]  # (B, 1)
        fixed = pop.ampa_drive is not None
        Vth, Vr = c64["V_th"], c64["V_reset"]
        nref = p["n_ref"]
        jj = torch.arange(K, dtype=f64).reshape(K, 1, 1)
        Dj = d.unsqueeze(0) ** jj  # (K, B, 1)  d^j
        c = torch.zeros(B, dtype=torch.int64)  # segment start per instance
        done = torch.zeros(B, dtype=torch.bool)
        Kt = torch.full((B,), K, dtype=torch.int64)
        ar = torch.arange(K).reshape(K, 1)
        if self.gaba:
            dg = c64["dec_gaba"]
            Dgj = dg.unsqueeze(0) ** jj
        while True:
            # ---- tentative on_pre for all uncommitted events, in order of occurrence
            incs = {"ampa": torch.zeros(K, B, P, dtype=f64)}
            if self.gaba:
                incs["gaba"] = torch.zeros(K, B, P, dtype=f64)
            for info in proj:
                pr, s = info["p"], info["s"]
                inc = incs[pr.target]  # the conductance this projection drives
                if info["step"].numel() == 0:
                    info["Wpost"] = None
                    continue
                step, b, flat, rank = info["step"], info["b"], info["flat"], info["rank"]
                n_pre = pr.n_pre
                if pr.kind != "spiking":  # static: W[b, :, i] (stored pre-major, any layout)
                    We = s["W"][b, :, info["i"]]
                    inc.index_put_((step, b), We.to(f64), accumulate=True)
                    info["Wpost"] = None
                    continue
                Wf = s["W"].view(-1)
                rule = pr.rule
                tab = self.tables[info["n"]]
                Wt = Wf.clone()
                mf = None if pr._mask is None else pr._mask.view(-1)  # absent synapses: 0
                xt = {k: s[f"rule.{k}"].reshape(-1).clone() for k in info["pre_k"]}
                tlt = info["tl_pre"].clone()
                E = step.shape[0]
                Wpre = torch.empty(E, P, dtype=Wf.dtype)
                Wpost = torch.empty(E, P, dtype=Wf.dtype)
                xpost = {k: torch.empty(E, dtype=Wf.dtype) for k in info["pre_k"]}
                # events grouped by rank (occurrence index of their synapse in the window)
                counts = torch.bincount(rank).tolist()
                sels = list(torch.split(torch.argsort(rank, stable=True), counts))
                for sel in sels:
                    if sel.numel() == 0:
                        continue
                    se, be, fe, ie = step[sel], b[sel], flat[sel], info["i"][sel]
                    Er = se.shape[0]
                    idxW = self._idxW(be, ie, P, n_pre).reshape(-1)
                    We = Wt.index_select(0, idxW).view(Er, P)
                    lag_x = se - tlt.index_select(0, fe)
                    lag_y = se.unsqueeze(-1) - info["tl_post"].index_select(0, be)
                    if self.stride[info["n"]]:  # the instance's row of the decay tables
                        row = be * self.stride[info["n"]]
                        ix, iy = row + lag_x, (row.unsqueeze(-1) + lag_y).reshape(-1)
                    else:
                        ix, iy = lag_x, lag_y.reshape(-1)
                    stpre = {k: (xt[k].index_select(0, fe) * tab[k].index_select(0, ix)
                                 ).unsqueeze(-1) for k in info["pre_k"]}
                    for k in info["post_k"]:
                        stpre[k] = (s[f"rule.{k}"].index_select(0, be)
                                    * tab[k].index_select(0, iy).view_as(lag_y))
                    ones = torch.ones(Er, 1, dtype=Wf.dtype)
                    W2, st2 = self.rule_at[info["n"]](be).on_pre(We.unsqueeze(-1), stpre, ones)
                    for k in info["post_k"]:
                        if st2[k] is not stpre[k]:
                            raise RuntimeError(
                                f"rule {rule.name!r} changes post trace {k!r} at pre spikes; "
                                "use method='step'"
                            )
                    W2 = W2.reshape(Er, P)
                    if mf is not None:  # absent synapses stay at 0, as on the step path
                        W2 = W2 * mf.index_select(0, idxW).view(Er, P)
                    Wpre[sel] = We
                    Wpost[sel] = W2
                    Wt.index_copy_(0, idxW, W2.reshape(-1))
                    for k in info["pre_k"]:
                        v = st2[k].reshape(-1)
                        xpost[k][sel] = v
                        xt[k].index_copy_(0, fe, v)
                    tlt.index_copy_(0, fe, se)
                inc.index_put_((step, b), Wpre.to(f64), accumulate=True)
                info.update(Wpost=Wpost, xpost=xpost, sels=sels)
            # ---- conductances and membrane potential over the window, from each cursor
            cc = c.reshape(1, B, 1)
            inc = incs["ampa"]
            G = self._conductance(ps["g_ampa"], inc, d, Dj, cc)  # (K, B, P), valid for j >= c
            if self.gaba:
                Gg = self._conductance(ps["g_gaba"], incs["gaba"], dg, Dgj, cc)
            if fixed and not self.gaba:
                Vinf = c64["V_rest"].unsqueeze(0) + G * c64["drive_over_gL"]
                loga = c64["loga_fixed"]
            else:  # the step path's g_tot and numerator, term by term
                if fixed:
                    gt = c64["g_L"].unsqueeze(0).expand_as(G)
                    num = c64["gLEL"].unsqueeze(0) + G * c64["ampa_drive"]
                else:
                    gt = c64["g_L"].unsqueeze(0) + G
                    num = c64["gLEL"].unsqueeze(0) + G * c64["E_ampa"]
                if self.gaba:
                    gt = gt + Gg
                    num = num + Gg * c64["E_gaba"]
                Vinf = num / gt
                loga = -gt * c64["dt_over_C"].unsqueeze(0)
            ref0 = ps["ref"]  # (B, P) refractory steps left at step c
            j0 = cc + ref0.unsqueeze(0)  # first free step, (1, B, P)
            free = ar.reshape(K, 1, 1) >= j0
            L = torch.cumsum(loga, 0)
            b_ = (1 - torch.exp(loga)) * Vinf
            Lj0m1 = torch.where(j0 > 0, torch.gather(L, 0, (j0 - 1).clamp(0, K - 1)),
                                torch.zeros_like(L[:1]))
            Lj0m1 = torch.where(j0 > K, L[-1:], Lj0m1)
            Vstart = torch.where(ref0.unsqueeze(0) > 0, Vr.unsqueeze(0),
                                 ps["V"].to(f64).unsqueeze(0))
            term = torch.where(free, b_ * torch.exp(-(L - Lj0m1)), torch.zeros_like(b_))
            V = torch.exp(L - Lj0m1) * (Vstart + torch.cumsum(term, 0))
            V = torch.where(free, V, Vr.unsqueeze(0).expand(K, B, P))
            if not bool(torch.isfinite(V).all()):
                raise RuntimeError(
                    "the event-window path overflowed (conductances too large for windows of "
                    f"{K} steps); run with method='step' or record more often"
                )
            valid = (ar.reshape(K, 1, 1) >= cc) & ~done.reshape(1, B, 1)
            cross = (V > Vth.unsqueeze(0)) & valid & free
            anyc = cross.any(-1)  # (K, B)
            has = anyc.any(0) & ~done
            sb = torch.where(has, torch.argmax(anyc.to(torch.int8), 0), Kt - 1)  # (B,)
            sbe = sb.reshape(1, B, 1)
            # ---- commit events up to each instance's spike (in order of occurrence)
            for info in proj:
                pr, s = info["p"], info["s"]
                if info["step"].numel() == 0:
                    continue
                keep_e = info["step"] <= sb.index_select(0, info["b"])
                if pr.kind == "spiking" and info["Wpost"] is not None:
                    Wf = s["W"].view(-1)
                    for sel in info["sels"]:
                        m = sel[keep_e[sel]]
                        if m.numel() == 0:
                            continue
                        be, ie, fe = info["b"][m], info["i"][m], info["flat"][m]
                        idxW = self._idxW(be, ie, P, pr.n_pre)
                        Wf.index_copy_(0, idxW.reshape(-1), info["Wpost"][m].reshape(-1))
                        for k in info["pre_k"]:
                            s[f"rule.{k}"].view(-1).index_copy_(0, fe, info["xpost"][k][m])
                        info["tl_pre"].index_copy_(0, fe, info["step"][m])
                rest = ~keep_e
                for key in ("step", "b", "i", "flat", "rank"):
                    info[key] = info[key][rest]
            # ---- commit the neuron state at sb
            Vsb = torch.gather(V, 0, sbe.expand(1, B, P))[0]
            spk = torch.gather(cross, 0, sbe.expand(1, B, P))[0] & has.unsqueeze(-1)
            Gsb = torch.gather(G, 0, sbe.expand(1, B, P))[0]
            incsb = torch.gather(inc, 0, sbe.expand(1, B, P))[0]
            upd = (~done).unsqueeze(-1)
            Vnew = torch.where(spk, Vr, Vsb)
            ps["V"].copy_(torch.where(upd, Vnew.to(ps["V"].dtype), ps["V"]))
            gnew = Gsb * d + incsb
            ps["g_ampa"].copy_(torch.where(upd, gnew.to(ps["g_ampa"].dtype), ps["g_ampa"]))
            if self.gaba:
                at_sb = sbe.expand(1, B, P)
                gnew = (torch.gather(Gg, 0, at_sb)[0] * dg
                        + torch.gather(incs["gaba"], 0, at_sb)[0])
                ps["g_gaba"].copy_(torch.where(upd, gnew.to(ps["g_gaba"].dtype), ps["g_gaba"]))
            steps_taken = (sb - c + 1).unsqueeze(-1)
            refn = torch.where(spk, nref.expand(B, P), (ref0 - steps_taken).clamp(min=0))
            ps["ref"].copy_(torch.where(upd, refn, ref0))
            if ("pop", pop.name) in counters:
                counters[("pop", pop.name)] += spk.to(torch.int32)
            # ---- on_post for the instances that spiked, at their spike step
            bi = has.nonzero().squeeze(-1)
            if bi.numel():
                for info in proj:
                    pr, s = info["p"], info["s"]
                    if pr.kind != "spiking":
                        continue
                    self._on_post(info, s, bi, sb.index_select(0, bi), spk.index_select(0, bi))
            self.rounds += 1
            c = torch.where(has, sb + 1, Kt)
            done = c >= K
            if bool(done.all()):
                break
        # ---- end of window: traces as of the last step (the step path's eager form)
        for info in proj:
            if info["p"].kind != "spiking":
                continue
            s = info["s"]
            tab = self.tables[info["n"]]
            row = torch.arange(net.batch).unsqueeze(-1) * self.stride[info["n"]]
            lag = (row + (K - 1) - info["tl_pre"].view(net.batch, -1)).reshape(-1)
            for k in info["pre_k"]:
                s[f"rule.{k}"].view(-1).mul_(tab[k].index_select(0, lag))
            lagy = (row + (K - 1) - info["tl_post"].view(net.batch, -1)).reshape(-1)
            for k in info["post_k"]:
                s[f"rule.{k}"].view(-1).mul_(tab[k].index_select(0, lagy))

    @staticmethod
    def _conductance(g0: torch.Tensor, inc: torch.Tensor, d: torch.Tensor, Dj: torch.Tensor,
                     cc: torch.Tensor) -> torch.Tensor:
        """The conductance used at each step ``j >= c`` of the window, ``(K, B, P)`` float64:
        ``g_j = d^(j-c) g_c + sum_{c<=m<j} d^(j-1-m) inc_m`` (decay after the neuron update,
        then the step's transmission ``inc_m``), from ``g0 = g_c`` and ``Dj = d^j``."""
        Dc = d.unsqueeze(0) ** cc.to(torch.float64)  # (1, B, 1)
        scaled = inc / (Dj * d.unsqueeze(0))  # inc_m d^-(m+1)
        H = torch.cumsum(scaled, 0) - scaled  # exclusive: sum_{m<j}
        return Dj * (g0.to(torch.float64).unsqueeze(0) / Dc + H)

    @staticmethod
    def _idxW(b: torch.Tensor, i: torch.Tensor, P: int, n_pre: int) -> torch.Tensor:
        """Flat indices of ``W[b, :, i]`` in a contiguous ``(B, P, n_pre)`` tensor: ``(E, P)``."""
        base = b * (P * n_pre) + i
        if P == 1:
            return base.unsqueeze(-1)
        return base.unsqueeze(-1) + torch.arange(P).unsqueeze(0) * n_pre

    def _on_post(self, info: dict, s: dict, bi: torch.Tensor, sb: torch.Tensor,
                 spk: torch.Tensor) -> None:
        pr = info["p"]
        n_pre = pr.n_pre
        P = self.pop.n
        Eb = bi.shape[0]
        W = s["W"]
        Wr = W.index_select(0, bi)
        tab = self.tables[info["n"]]
        tlp = info["tl_pre"].view(-1, n_pre).index_select(0, bi)  # (Eb, n_pre)
        lag_x = sb.unsqueeze(-1) - tlp
        tly = info["tl_post"].index_select(0, bi)
        lag_y = sb.unsqueeze(-1) - tly
        row = bi.unsqueeze(-1) * self.stride[info["n"]]  # the instances' rows of the tables
        ix, iy = (row + lag_x).reshape(-1), (row + lag_y).reshape(-1)
        st = {k: s[f"rule.{k}"].index_select(0, bi) * tab[k].index_select(0, ix).view_as(lag_x)
              for k in info["pre_k"]}
        st.update({k: s[f"rule.{k}"].index_select(0, bi)
                   * tab[k].index_select(0, iy).view_as(lag_y) for k in info["post_k"]})
        W2, st2 = self.rule_at[info["n"]](bi).on_post(Wr, st, spk.to(W.dtype))
        # only the rows of the neurons that spiked change, as on the step path (the rule's bounds
        # would otherwise clip the rows of silent neurons too, e.g. initial weights above w_max)
        W2 = torch.where(spk.unsqueeze(-1), W2, Wr)
        if pr._mask is not None:
            W2 = W2 * pr._mask.index_select(0, bi)
        W.index_copy_(0, bi, W2)
        for k in info["post_k"]:
            s[f"rule.{k}"].index_copy_(0, bi, st2[k])
        info["tl_post"].index_copy_(0, bi, sb.unsqueeze(-1).expand(Eb, P).contiguous())
        for k in info["pre_k"]:
            if st2[k] is not st[k]:
                s[f"rule.{k}"].index_copy_(0, bi, st2[k])
                tl = info["tl_pre"].view(-1, n_pre)
                tl.index_copy_(0, bi, sb.unsqueeze(-1).expand(Eb, n_pre).contiguous())


def _rule_at(rule: object) -> Callable[[torch.Tensor], object]:
    """``idx -> rule`` with its per-instance (``(batch,)`` tensor) parameters taken at the
    instances ``idx``: the window path calls the rule on gathered synapses, whose leading dim
    is the event, not the batch. Rules with scalar parameters are returned as they are."""
    per = {}
    if dataclasses.is_dataclass(rule):
        for f in dataclasses.fields(rule):
            v = getattr(rule, f.name)
            if isinstance(v, torch.Tensor) and v.numel() > 1:
                per[f.name] = v.reshape(-1)
    if not per:
        return lambda idx: rule
    return lambda idx: dataclasses.replace(rule, **{k: v[idx] for k, v in per.items()})


# --------------------------------------------------------------------------------------------
# The Triton path: the fused spiking-projection kernel, one launch per chunk of time.
# --------------------------------------------------------------------------------------------

#: largest dense input-spike tensor (bytes) of one launch of the Triton path (longer chunks
#: are split into several launches)
_TRITON_LAUNCH_BYTES = 2**28

_TRITON_RUNS = (
    "The Triton backend runs: spiking inputs onto exactly one LIF or AdEx population, through "
    "exactly one AMPA projection (static, or PairSTDP/TripletSTDP, weights within the rule's "
    "bounds) and at most one GABA projection (static or "
    "InhibitorySTDP), with no delay, no NMDA, no rate-rule traces; any records"
)


def _triton_ok(net: Network) -> str | None:
    """Why the fused spiking kernel cannot run this network (``None`` if it can)."""
    from .plasticity import InhibitorySTDP, PairSTDP, TripletSTDP

    if len(net.populations) != 1:
        return f"the network has {len(net.populations)} populations (needs exactly one)"
    pop = next(iter(net.populations.values()))
    if type(pop) not in (LIFPopulation, AdExPopulation):  # the neurons the kernel integrates
        return (f"population {pop.name!r} is a {type(pop).__name__} (needs a LIFPopulation or "
                "AdExPopulation)")
    if pop.uses["nmda"]:
        return f"population {pop.name!r} receives NMDA input (needs AMPA and GABA only)"
    for n, i in net.inputs.items():
        if i.kind != "spikes":
            return f"input {n!r} gives rates (needs spiking inputs)"
    ampa = [n for n, p in net.projections.items() if p.target == "ampa"]
    gaba = [n for n, p in net.projections.items() if p.target == "gaba"]
    if len(ampa) != 1 or len(gaba) > 1 or len(ampa) + len(gaba) != len(net.projections):
        return (f"the network has projections {sorted(net.projections)} (needs exactly one "
                "AMPA projection, and at most one GABA projection)")
    for n in ampa + gaba:
        p = net.projections[n]
        if p.pre not in net.inputs.values() or p.post is not pop:
            return f"projection {n!r} is not from an input onto {pop.name!r}"
        if p.U0 is not None or p.delay_steps or p.tau_pre is not None \
                or p.tau_post is not None:
            return f"projection {n!r} has a delay, an NMDA weight U or rate-rule traces"
        if p.mask is not None and p.kind != "static":
            return f"projection {n!r} is plastic with a connection mask (the kernel has none)"
    if gaba:
        g = net.projections[gaba[0]]
        if g.kind != "static" and not isinstance(g.rule, InhibitorySTDP):
            return (f"GABA projection {gaba[0]!r} has rule {type(g.rule).__name__} (the kernel's "
                    "inhibition is static or InhibitorySTDP)")
        if g.kind != "static":
            why = _rule_fits(net, gaba[0], g.rule)
            if why:
                return why
    n, p = ampa[0], net.projections[ampa[0]]
    if p.kind == "spiking":
        if not isinstance(p.rule, (PairSTDP, TripletSTDP)):
            return f"projection {n!r} has rule {type(p.rule).__name__} (needs PairSTDP/TripletSTDP)"
        return _rule_fits(net, n, p.rule)
    if p.kind != "static":
        return f"projection {n!r} has a {p.kind} rule (needs a spiking STDP rule or none)"
    return None


def _rule_fits(net: Network, n: str, r: object) -> str | None:
    """Why the kernel cannot run projection ``n``'s rule ``r`` (weights outside its bounds: the
    kernel applies the rule densely), ``None`` if it can. Per-instance parameters are fine."""
    if r.bounds != "none":  # type: ignore[attr-defined]
        p = net.projections[n]
        W = net._state["proj"][n]["W"] if net._state is not None else p.init_state()["W"]
        if bool(((W < r.w_min) | (W > r.w_max)).any()):  # type: ignore[attr-defined]
            return (f"projection {n!r} has weights outside the rule's bounds "
                    f"[{r.w_min}, {r.w_max}]")  # type: ignore[attr-defined]
    return None


def _triton_ready(device: torch.device) -> str | None:
    """Why Triton cannot launch on ``device`` in this process (``None`` if it can)."""
    from .kernels import triton_available

    if not triton_available():
        return "the triton package is not installed (pip install triton)"
    if device.type != "cuda" and os.environ.get("TRITON_INTERPRET") != "1":
        return (f"the network's tensors are on {device}; Triton needs CUDA tensors, or "
                "TRITON_INTERPRET=1 (Triton's CPU interpreter, slow) set before Triton's first "
                "import; use backend='torch' on the CPU")
    from .kernels import launch

    if device.type == "cuda" and launch.INTERPRETED:
        return ("the kernels were imported under TRITON_INTERPRET=1 (CPU interpreter) but the "
                "tensors are on CUDA")
    if device.type != "cuda" and not launch.INTERPRETED:
        return (f"the network's tensors are on {device} and the kernels were already compiled "
                "for a GPU (TRITON_INTERPRET=1 must be set before Triton's first import)")
    return None


class _TritonPath:
    """Advance a network that :func:`_triton_ok` accepts with the fused kernel
    :func:`synaptic_fwp.kernels.spiking.run_lif_stdp` (LIF update, traces, STDP in one launch).

    Per chunk of the run, the input spikes are drawn as by the torch paths (the same
    counter-based streams), laid out densely as ``(batch, T, n_pre)`` on the network's device,
    and the kernel runs over them in one launch (several if ``batch x T x n_pre`` exceeds
    ``_TRITON_LAUNCH_BYTES``, 256 MiB; the launches continue each other exactly). The kernel
    returns every step's postsynaptic spikes (spike counts are summed here) and stores the
    state at the recording steps itself (``record_every``; the weights only when ``W`` is
    recorded). Its final state is written back into the network's state, so records,
    checkpoints and resuming are those of the torch paths. A static projection runs as pair
    STDP with zero amplitudes (``W + 0 - 0``
    leaves ``W`` exactly unchanged). A GABA projection from a second input (or the same one)
    goes to the kernel as its ``gaba`` argument: its spikes, laid out as the AMPA input's, its
    weights and its rule (none, or InhibitorySTDP with its traces, written back like the AMPA
    rule's).
    """

    def __init__(self, net: Network) -> None:
        from .kernels.spiking import run_lif_stdp
        from .plasticity import PairSTDP

        self.net = net
        self.run = run_lif_stdp
        self.pop = next(iter(net.populations.values()))
        by_target = {p.target: n for n, p in net.projections.items()}
        # the GABA projection, if any: its spikes, weights and (InhibitorySTDP) rule go to the
        # kernel as well
        self.gaba = by_target.get("gaba")
        self.gaba_rule = net.projections[self.gaba].rule if self.gaba is not None else None
        # the neuron state the kernel advances (and records): AdEx adds its adaptation w
        self.neuron_keys = ("V", "g_ampa", "ref") + (
            ("w",) if isinstance(self.pop, AdExPopulation) else ()) + (
            ("g_gaba",) if self.gaba is not None else ())
        self.name = by_target["ampa"]
        self.proj = net.projections[self.name]
        self.static = self.proj.kind == "static"
        self.rule = PairSTDP(A_plus=0.0, A_minus=0.0) if self.static else self.proj.rule

    def _dense(self, ev: object, a: int, b: int) -> torch.Tensor:
        """Spikes of steps ``[a, b)`` of the chunk as a ``(batch, b - a, n)`` bool tensor."""
        net = self.net
        x = torch.zeros(net.batch, b - a, ev.n, dtype=torch.bool, device=net.device)  # type: ignore[attr-defined]
        lo, hi = torch.searchsorted(ev.step, torch.tensor([a, b])).tolist()  # type: ignore[attr-defined]
        if hi > lo:
            dev = net.device
            x[ev.b[lo:hi].to(dev), (ev.step[lo:hi] - a).to(dev),  # type: ignore[attr-defined]
              ev.i[lo:hi].to(dev)] = True  # type: ignore[attr-defined]
        return x

    def run_chunk(self, s0: int, T: int, items: list, every_steps: int,
                  start: int) -> tuple[dict, np.ndarray]:
        net, pop = self.net, self.pop
        st = net._state
        assert st is not None
        B = net.batch
        ev = {n: i.events(st["inp"][n], s0, T) for n, i in net.inputs.items()}
        pre_name = self.proj.pre.name  # type: ignore[attr-defined]
        gaba_pre = (self.net.projections[self.gaba].pre.name  # type: ignore[attr-defined]
                    if self.gaba is not None else None)
        n_in = self.proj.n_pre + (self.net.projections[self.gaba].n_pre if self.gaba else 0)
        rec_steps = [t for t in range(T) if (s0 + t - start + 1) % every_steps == 0]
        state_rec = any(var != "spikes" for _, _, var in items) and bool(rec_steps)
        rec_W = any(kind == "proj" and obj == self.name and var == "W" for kind, obj, var in items)
        rec_Wi = self.gaba_rule is not None and any(
            kind == "proj" and obj == self.gaba and var == "W" for kind, obj, var in items)
        ps, s = st["pop"][pop.name], st["proj"][self.name]
        # launches of at most _TRITON_LAUNCH_BYTES of dense input spikes (one per chunk unless
        # batch x steps x n_pre is very large)
        L = max(1, min(T, _TRITON_LAUNCH_BYTES // (B * n_in)))
        spike_keys = [(kind, obj) for kind, obj, var in items if var == "spikes"]
        carry = {k: 0 for k in spike_keys}  # spikes since the last record, from earlier launches
        pieces: dict[str, list] = {f"{o}_{v}": [] for _, o, v in items}
        for a in range(0, T, L):
            b = min(a + L, T)
            rs = [r - a for r in rec_steps if a <= r < b]
            pre = self._dense(ev[pre_name], a, b)
            if self.static:
                tr = self.rule.init_state(s["W"])
            else:
                tr = {k: s[f"rule.{k}"] for k in self.rule.state_shapes}
            state = {k: ps[k] for k in self.neuron_keys} | tr
            do_rec = state_rec and bool(rs)
            gaba = None
            if self.gaba is not None:
                sg = st["proj"][self.gaba]
                gaba = (self._dense(ev[gaba_pre], a, b), sg["W"], self.gaba_rule)
                if self.gaba_rule is not None:
                    state |= {"gaba_x": sg["rule.x"], "gaba_y": sg["rule.y"]}
            out = self.run(pre, s["W"], self.rule, pop, net.dt, state=state,
                           record_every=every_steps if do_rec else 0,
                           record_first=rs[0] if do_rec else 0, record_W=rec_W, gaba=gaba,
                           record_W_gaba=rec_Wi)
            s["W"].copy_(out["W"])
            if self.gaba_rule is not None:
                sg["W"].copy_(out["W_gaba"])
                sg["rule.x"].copy_(out["state"]["gaba_x"])
                sg["rule.y"].copy_(out["state"]["gaba_y"])
            for k in self.neuron_keys:
                ps[k].copy_(out["state"][k])
            if not self.static:
                for k in self.rule.state_shapes:
                    s[f"rule.{k}"].copy_(out["state"][k])
            rec = out.get("records", {})
            # spike counts since the previous record (the step path's counters)
            for kind, obj in spike_keys:
                if kind == "pop":
                    x = out["spikes"]
                else:
                    x = (pre if obj == pre_name else gaba[0] if gaba and obj == gaba_pre
                         else self._dense(ev[obj], a, b))
                cs = torch.nn.functional.pad(x.to(torch.int32).cumsum(1, dtype=torch.int32),
                                             (0, 0, 1, 0))
                if rs:
                    ends = torch.tensor(rs, dtype=torch.int64, device=net.device) + 1
                    starts = torch.cat([ends.new_zeros(1), ends[:-1]])
                    c = cs[:, ends] - cs[:, starts]
                    c[:, 0] += carry[(kind, obj)]
                    pieces[f"{obj}_spikes"].append(c)
                    carry[(kind, obj)] = cs[:, -1] - cs[:, ends[-1]]
                else:
                    carry[(kind, obj)] = carry[(kind, obj)] + cs[:, -1]
            if not rs:
                continue
            for kind, obj, var in items:
                if var == "spikes":
                    continue
                if kind == "pop" and (var == "ref" or var not in self.neuron_keys):  # not
                    # among the kernel's records: g_nmda (and g_gaba without inhibition),
                    # constant on this path
                    v = ps[var].unsqueeze(1).expand(-1, len(rs), -1)
                elif kind == "proj" and obj == self.gaba:
                    if self.gaba_rule is not None:  # the kernel's records
                        v = rec[{"W": "W_gaba", "x": "gaba_x", "y": "gaba_y"}[var]]
                    else:  # static: its state does not change
                        x = st["proj"][obj][var]
                        v = x.unsqueeze(1).expand(x.shape[0], len(rs), *x.shape[1:])
                else:
                    v = rec[var]
                pieces[f"{obj}_{var}"].append(v)
        data = {}
        for name, lst in pieces.items():
            data[name] = (torch.cat(lst, 1).cpu().numpy() if lst
                          else np.zeros((B, 0), dtype=np.float32))
        net._step = s0 + T
        times = (np.array(rec_steps, dtype=np.float64) + s0 + 1) * net.dt
        return data, times
