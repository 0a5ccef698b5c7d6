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
exact per-step factors computed once from the rule itself.

Determinism: an instance's result does not depend on the rest of the batch, on the batch size
or on how the run is chunked or interrupted (random streams are counter-based per instance;
every operation is elementwise or reduces within an instance). ``seed`` gives instance ``b`` the
seed ``seed + b``, so ``Network(batch=1, seed=seed + b)`` reproduces instance ``b``; or pass one
seed per instance.
"""

from __future__ import annotations

import copy
import math
import zlib
from collections import deque
from collections.abc import Callable, Sequence

import numpy as np
import torch

from . import records as _rec
from ._validation import NonFiniteError
from .inputs import Source
from .neurons import LIFPopulation, Population, RatePopulation
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
    ):
        """Simulate ``duration`` seconds and return the records as an ``xarray.Dataset``.

        ``record``: ``"object.variable"`` names (e.g. ``"lif.V"``, ``"S.W"``, ``"inp.spikes"``);
        ``every``: the recording interval (s, a multiple of ``dt``; default ``dt``);
        ``progress``: a tqdm bar; ``out``: stream the records to ``*.nc`` (NetCDF4) or
        ``*.zarr`` chunk by chunk, with a checkpoint ``<out>.ckpt.pt`` after each chunk;
        ``resume``: ``True`` (the checkpoint next to ``out``) or a checkpoint path: continue an
        interrupted streamed run with the same arguments, giving the same Dataset as an
        uninterrupted run; ``chunk``: steps per chunk (default about 2000, a multiple of the
        recording interval); ``on_chunk(step)``: called after each chunk is written.
        """
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
        writer = _rec.RecordWriter(out) if out is not None else None
        if resume and writer is None:
            raise ValueError("resume needs out= (the streamed records of the interrupted run)")
        if resume not in (None, False, True) and not isinstance(resume, str):
            raise TypeError(f"resume must be True, False, None or a path, got {resume!r}")
        fingerprint = {"duration_steps": n_steps, "every_steps": every_steps, "dt": self.dt,
                       "batch": self.batch, "record": [list(i) for i in items],
                       "chunk_steps": chunk_steps, "seeds": self.instance_seeds.tolist()}
        ckpt = _rec.checkpoint_path(out) if out is not None else None
        if isinstance(resume, str):
            ckpt = resume
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
        try:
            while self._step < end:
                T = min(chunk_steps, end - self._step)
                snap = self.state_dict()
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
                        "net": self.state_dict(), "start_step": start,
                        "n_records": writer.n, "fingerprint": fingerprint})
                elif ds is not None:
                    mem_chunks.append(ds)
                bar.update(T)
                if on_chunk is not None:
                    on_chunk(self._step)
        finally:
            bar.close()
        if writer is not None:
            return _rec.open_records(out, writer.n)  # type: ignore[arg-type]
        if len(mem_chunks) == 1:
            return mem_chunks[0]
        import xarray as xr

        return xr.concat(mem_chunks, dim="time", data_vars="minimal", coords="minimal",
                         compat="override", combine_attrs="override")

    def _first_nonfinite(self) -> str | None:
        st = self._state
        for group in ("pop", "proj"):
            for obj, d in st[group].items():  # type: ignore[index]
                for k, v in d.items():
                    if isinstance(v, torch.Tensor) and v.is_floating_point():
                        fin = torch.isfinite(v)
                        if not bool(fin.all()):
                            idx = (~fin).nonzero()[0].tolist()
                            return f"variable {obj}.{k}, instance {idx[0]}, index {idx[1:]}"
        return None

    def _run_chunk(self, s0: int, T: int, items: list, every_steps: int, start: int,
                   check: bool = False) -> tuple[dict, np.ndarray]:
        st = self._state
        assert st is not None
        dt = self.dt
        ev = {n: i.events(st["inp"][n], s0, T).split(T)  # type: ignore[attr-defined]
              for n, i in self.inputs.items() if i.kind == "spikes"}
        vals = {n: i.values(s0, T)  # type: ignore[attr-defined]
                for n, i in self.inputs.items() if i.kind == "rate"}
        # spike counters for records
        counters = {}
        for kind, obj, var in items:
            if var == "spikes":
                nn = (self.populations[obj] if kind == "pop" else self.inputs[obj]).n
                counters[(kind, obj)] = torch.zeros(self.batch, nn, dtype=torch.int32,
                                                    device=self.device)
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


def json_seed(seed: int | list[int]) -> int | str:
    return seed if isinstance(seed, int) else ",".join(str(s) for s in seed)
