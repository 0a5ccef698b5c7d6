"""Experiment files: a TOML description of an experiment, validated, run, and stored with the
output so that a file that runs once runs again the same way.

A protocol experiment (see ``examples/stdp_pairing.toml``)::

    [experiment]
    name = "stdp_pairing"
    seed = 0
    output = "results/stdp_pairing.nc"      # .nc (NetCDF) or .zarr

    [rule]                                  # a spiking rule of synaptic_fwp.plasticity
    name = "triplet_stdp"
    table = { dataset = "visual_cortex", pairing = "all_to_all", model = "minimal" }
    A2_minus = 7.1e-3                       # any parameter of the rule (overrides the table)

    [protocol]                              # a protocol of synaptic_fwp.protocols
    name = "pairing"
    dt = ["-10 ms", "10 ms"]                # numbers are SI (s, Hz); strings carry a unit
    freq = [0.1, 10, 20, 40, 50]
    n_pairs = 60

    [sweep]                                 # a grid over rule parameters: every combination
    A3_plus = [5e-3, 6.5e-3, 8e-3]          # is one instance of ONE batched protocol call

    [record]
    variables = ["dw"]                      # data variables kept in the output

    [fit]                                   # used by `synaptic-fwp fit`
    data = "sjostrom2001_frequency"         # a shipped dataset or a CSV path
    free = { A3_plus = [0, 0.05], A2_minus = [0, 0.02] }   # bounds of the fitted parameters
    output = "results/stdp_fit.nc"

Numbers are in SI units (seconds, hertz, volts, ...); a string such as ``"16.8 ms"`` or
``"10 Hz"`` is converted (:func:`quantity`). Every mistake raises :class:`ExperimentError`
naming the file, the line, the key and what is allowed, before anything runs. The output
Dataset stores the resolved configuration (``experiment_config``, JSON: every default filled
in), the file's text, the package version and the seed in its attrs; :func:`from_dataset`
rebuilds the experiment from them.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
import itertools
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr

from .datasets.units import UNITS

try:
    import tomllib  # Python >= 3.11
except ModuleNotFoundError:  # pragma: no cover - Python 3.10 needs the tomli backport
    import tomli as tomllib  # type: ignore[no-redef]

__all__ = [
    "Experiment",
    "ExperimentError",
    "RULES",
    "PROTOCOLS",
    "SECTIONS",
    "load",
    "loads",
    "from_dataset",
    "quantity",
    "build_rule",
]


class ExperimentError(ValueError):
    """A malformed experiment file; the message names the file, line, key and what is allowed."""


SECTIONS: dict[str, str] = {
    "experiment": "name, description, seed, output, dtype",
    "rule": "the plasticity rule: name, table/preset, parameters",
    "protocol": "the protocol: name and its arguments",
    "sweep": "grid over rule parameters",
    "record": "variables to keep",
    "fit": "fit the rule to data (synaptic-fwp fit)",
    "network": "a network experiment: dt, duration, batch (instead of [rule]/[protocol])",
    "inputs": "network inputs: [inputs.<name>] with a type and its arguments",
    "populations": "network populations: [populations.<name>] with a type and its arguments",
    "projections": "network projections: [projections.<name>] with pre, post, W0, rule, ...",
}
"""Allowed top-level tables and what each holds."""

RULES: dict[str, dict[str, Any]] = {
    "pair_stdp": {"class": "PairSTDP", "presets": ("song2000",)},
    "triplet_stdp": {"class": "TripletSTDP", "table": "from_table"},
    "inhibitory_stdp": {"class": "InhibitorySTDP"},
    "graupner_brunel": {"class": "GraupnerBrunel", "table": "from_table"},
    "shouval": {"class": "ShouvalCalcium", "table": "from_table"},
}
"""Rule names of experiment files -> classes of :mod:`synaptic_fwp.plasticity` (``table``: the
classmethod building a published set; ``presets``: other named constructors)."""

PROTOCOLS: dict[str, dict[str, Any]] = {
    "pairing": {
        "module": "synaptic_fwp.protocols.pairing",
        "function": "pairing",
        "variables": ("dw", "w_final", "change", "U", "U_sem", "D", "rho_final"),
        "internal": ("rule", "seed", "dtype", "device"),
    },
    "frequency": {
        "module": "synaptic_fwp.protocols.frequency",
        "function": "frequency_stimulation",
        "variables": ("dw", "w_final", "theta_freq", "change", "U", "U_sem", "D", "rho_final"),
        "internal": ("rule", "seed", "dtype", "device"),
    },
}
"""Protocol names -> functions of :mod:`synaptic_fwp.protocols` and the variables they write."""

_EXPERIMENT_KEYS = ("name", "description", "seed", "output", "dtype")
_FIT_KEYS = ("data", "free", "fixed", "seed", "popsize", "maxiter", "n_boot", "output", "log")
_RECORD_KEYS = ("variables",)

# ------------------------------------------------------------------------------ units

# one unit table for the whole package (datasets.units), as (factor to SI, dimension); only
# the plain unit words the quantity syntax below can parse ("10 ms", "5 nS", "3 cm")
_UNITS: dict[str, tuple[float, str]] = {
    u: (f, dim) for u, (dim, _canon, f) in UNITS.items() if re.fullmatch(r"[A-Za-z]+|1", u)
}
_QUANTITY = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([A-Za-z]+|1)?\s*$")
_TIME_NAMES = re.compile(r"^(tau.*|dt|D|delay|duration|pre_delay|settle_time|t_.*)$")


def quantity(value: object, *, expect: str | None = None, key: str = "value") -> float:
    """A number in SI units from a number (taken as SI) or a string ``"<number> <unit>"``
    (units: the package's one table, :data:`synaptic_fwp.datasets.units.UNITS`: s, ms, Hz,
    mV, nA, nS, pF, cm, ...).
    ``expect`` (e.g. ``"time"``) rejects a unit of another kind."""
    if isinstance(value, bool):
        raise TypeError(f"{key} must be a number or a string with a unit, got {value!r}")
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise ValueError(f"{key} must be finite, got {value!r}")
        return float(value)
    if isinstance(value, str):
        m = _QUANTITY.match(value)
        if m is None:
            raise ValueError(
                f'{key} = {value!r} is not a number with a unit; write e.g. "10 ms" or 0.01'
            )
        num, unit = float(m.group(1)), m.group(2)
        if unit is None:
            return num
        if unit not in _UNITS:
            raise ValueError(
                f"{key} = {value!r} has unknown unit {unit!r}; allowed: {list(_UNITS)}"
            )
        f, kind = _UNITS[unit]
        if expect is not None and kind != expect:
            raise ValueError(f"{key} = {value!r} is a {kind}, but {key} is a {expect}")
        return num * f
    raise TypeError(
        f"{key} must be a number or a string with a unit, got {type(value).__name__} ({value!r})"
    )


# ------------------------------------------------------------------------------ lines


def _line_of(text: str, path: Sequence[str]) -> int | None:
    """1-based line where the key ``path`` (e.g. ``("rule", "tau_plus")``) is set in the TOML
    ``text``; the closest enclosing table or key if the key itself is not written there."""
    header: tuple[str, ...] = ()
    best: tuple[int, int] | None = None  # (depth matched, line)
    want = tuple(path)
    for i, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip() if '"' not in raw else raw.strip()
        if not line:
            continue
        m = re.match(r"^\[\[?\s*([^\]]+?)\s*\]\]?$", line)
        if m:
            header = tuple(p.strip().strip('"') for p in m.group(1).split("."))
            cand = header
        else:
            m = re.match(r"^([A-Za-z0-9_\-\".]+)\s*=", line)
            if not m:
                continue
            cand = header + tuple(p.strip().strip('"') for p in m.group(1).split("."))
            # inline tables: key = { a = ..., b = ... }
            rest = line[m.end() :]
            for sub in re.findall(r"([A-Za-z0-9_]+)\s*=", rest):
                full = cand + (sub,)
                if want[: len(full)] == full and (best is None or len(full) > best[0]):
                    best = (len(full), i)
        n = len(cand)
        if n and want[:n] == cand and (best is None or n > best[0]):
            best = (n, i)
    return best[1] if best else None


@dataclasses.dataclass
class _Ctx:
    """Where errors point: the file name and its text."""

    text: str
    source: str

    def error(self, path: Sequence[str], msg: str) -> ExperimentError:
        line = _line_of(self.text, path) if self.text else None
        where = f"{self.source}, line {line}" if line else self.source
        key = ".".join(path)
        return ExperimentError(f"{where}: [{key}] {msg}" if key else f"{where}: {msg}")


def _check_keys(
    ctx: _Ctx, table: Mapping[str, Any], path: tuple[str, ...], allowed: Sequence[str], what: str
) -> None:
    for k in table:
        if k not in allowed:
            raise ctx.error((*path, k), f"unknown {what} {k!r}; allowed: {', '.join(allowed)}")


def _table(ctx: _Ctx, cfg: Mapping[str, Any], name: str, required: bool) -> dict[str, Any]:
    if name not in cfg:
        if required:
            raise ctx.error((), f"missing table [{name}] ({SECTIONS[name]})")
        return {}
    t = cfg[name]
    if not isinstance(t, dict):
        raise ctx.error((name,), f"must be a table ([{name}] with keys), got {type(t).__name__}")
    return dict(t)


# ------------------------------------------------------------------------------ rules


def _rule_class(
    ctx: _Ctx, name: object, path: tuple[str, ...] = ("rule",)
) -> tuple[str, type, dict[str, Any]]:
    if not isinstance(name, str) or name not in RULES:
        raise ctx.error((*path, "name"), f"unknown rule {name!r}; allowed: {', '.join(RULES)}")
    spec = RULES[name]
    from . import plasticity

    try:
        cls = getattr(plasticity, spec["class"])
    except (AttributeError, ImportError) as e:
        raise ctx.error(
            (*path, "name"),
            f"rule {name!r} is not available in this installation of synaptic_fwp.plasticity ({e})",
        ) from None
    return name, cls, spec


def _rule_fields(cls: type) -> dict[str, object]:
    """Numeric/str fields of a rule dataclass with their defaults (name/source excluded)."""
    out = {}
    for f in dataclasses.fields(cls):
        if f.name in ("name", "source"):
            continue
        out[f.name] = f.default if f.default is not dataclasses.MISSING else None
    return out


def _convert_param(ctx: _Ctx, path: tuple[str, ...], key: str, v: object, default: object):
    """A rule parameter value from TOML: numbers/quantities for numeric fields, str for str."""
    if isinstance(default, str):
        if not isinstance(v, str):
            raise ctx.error(path, f"must be a string (like the default {default!r}), got {v!r}")
        return v
    if v == "none" and key.startswith("tau"):
        return None
    try:
        expect = "time" if _TIME_NAMES.match(key) else _kind(key) if key == "rho0" else None
        return quantity(v, expect=expect, key=key)
    except (TypeError, ValueError) as e:
        raise ctx.error(path, str(e)) from None


def build_rule(
    rule_cfg: Mapping[str, Any],
    sweep: Mapping[str, Sequence[float]] | None = None,
    ctx: _Ctx | None = None,
    path: tuple[str, ...] = ("rule",),
):
    """The rule object of a (resolved) ``[rule]`` table; ``sweep`` values become per-instance
    tensor parameters of shape ``(P,)`` (float64). Parameters that the ``table``/``preset``
    constructor takes (e.g. ``w_max`` of ``song2000``, which scales its amplitudes) go to it;
    the others replace the constructed values."""
    ctx = ctx or _Ctx("", "<config>")
    name, cls, spec = _rule_class(ctx, rule_cfg.get("name"), path)
    params = {k: v for k, v in rule_cfg.items() if k not in ("name", "table", "preset")}
    for k, vals in (sweep or {}).items():
        params[k] = torch.tensor(list(vals), dtype=torch.float64)
    try:
        if "table" in rule_cfg or "preset" in rule_cfg:
            make = getattr(cls, spec["table"] if "table" in rule_cfg else rule_cfg["preset"])
            sig = inspect.signature(make).parameters
            own = {k: v for k, v in params.items() if k in sig and not isinstance(v, torch.Tensor)}
            rest = {k: v for k, v in params.items() if k not in own}
            base = make(**rule_cfg.get("table", {}), **own)
            return dataclasses.replace(base, **rest) if rest else base
        return cls(**params)
    except (TypeError, ValueError) as e:
        key = _named_key(str(e), [*params, *rule_cfg.get("table", {})])
        sub = ("table", key) if key in rule_cfg.get("table", {}) else (key,)
        raise ctx.error((*path, *sub) if key else path, f"invalid: {e}") from None


def _named_key(msg: str, keys: Sequence[str]) -> str | None:
    for k in sorted(keys, key=len, reverse=True):
        if re.search(rf"\b{re.escape(k)}\b", msg):
            return k
    return None


def _resolve_rule(
    ctx: _Ctx, t: dict[str, Any], path: tuple[str, ...] = ("rule",)
) -> dict[str, Any]:
    if "name" not in t:
        raise ctx.error(path, f"missing key 'name'; allowed rules: {', '.join(RULES)}")
    name, cls, spec = _rule_class(ctx, t.get("name"), path)
    fields = _rule_fields(cls)
    special = (
        ["name"]
        + (["table"] if "table" in spec else [])
        + (["preset"] if spec.get("presets") else [])
    )
    _check_keys(ctx, t, path, [*special, *fields], "rule key or parameter")
    out: dict[str, Any] = {"name": name}
    if "table" in t and "preset" in t:
        raise ctx.error((*path, "preset"), "give either table or preset, not both")
    if "table" in t:
        tab = t["table"]
        if not isinstance(tab, dict):
            raise ctx.error(
                (*path, "table"), f"must be a table like {{ dataset = ... }}, got {tab!r}"
            )
        sig = inspect.signature(getattr(cls, spec["table"]))
        opts = [
            p
            for p in sig.parameters
            if sig.parameters[p].kind
            in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        ]
        _check_keys(ctx, tab, (*path, "table"), opts, "table option")
        for k, v in tab.items():
            if not isinstance(v, str):
                raise ctx.error((*path, "table", k), f"must be a string, got {v!r}")
        out["table"] = dict(tab)
    if "preset" in t:
        presets = spec.get("presets", ())
        if t["preset"] not in presets:
            raise ctx.error(
                (*path, "preset"), f"unknown preset {t['preset']!r}; allowed: {', '.join(presets)}"
            )
        out["preset"] = t["preset"]
    for k, v in t.items():
        if k in special:
            continue
        out[k] = _convert_param(ctx, (*path, k), k, v, fields[k])
    return out


def _full_rule_params(rule: object) -> dict[str, Any]:
    """Every field of a built rule (JSON-safe) for the resolved config."""
    out = {}
    for f in dataclasses.fields(rule):
        v = getattr(rule, f.name)
        if f.name in ("name", "source") or isinstance(v, torch.Tensor):
            continue
        out[f.name] = v
    return out


# ------------------------------------------------------------------------------ sweep


def _resolve_sweep(
    ctx: _Ctx, t: dict[str, Any], rule_fields: Mapping[str, object], fixed: Mapping[str, Any]
) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    numeric = [
        k for k, d in rule_fields.items() if not isinstance(d, str) and k not in ("w_min", "w_max")
    ]
    for key, vals in t.items():
        k = key[5:] if key.startswith("rule.") else key
        if k not in numeric:
            raise ctx.error(
                ("sweep", key),
                f"{key!r} is not a numeric parameter of the rule; allowed: {', '.join(numeric)}",
            )
        if k in fixed:
            raise ctx.error(("sweep", key), f"{k!r} is also set in [rule]; set it in one place")
        if isinstance(vals, dict):
            _check_keys(ctx, vals, ("sweep", key), ["start", "stop", "num", "log"], "range key")
            for need in ("start", "stop", "num"):
                if need not in vals:
                    raise ctx.error(
                        ("sweep", key), f"a range needs start, stop and num; missing {need!r}"
                    )
            try:
                a = quantity(vals["start"], key=f"{key}.start")
                b = quantity(vals["stop"], key=f"{key}.stop")
            except (TypeError, ValueError) as e:
                raise ctx.error(("sweep", key), str(e)) from None
            n = vals["num"]
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                raise ctx.error(("sweep", key, "num"), f"must be an int >= 1, got {n!r}")
            log = vals.get("log", False)
            if not isinstance(log, bool):
                raise ctx.error(("sweep", key, "log"), f"must be true or false, got {log!r}")
            if log and (a <= 0 or b <= 0):
                raise ctx.error(("sweep", key), "a log range needs start > 0 and stop > 0")
            arr = np.geomspace(a, b, n) if log else np.linspace(a, b, n)
            out[k] = [float(x) for x in arr]
            continue
        if not isinstance(vals, list) or not vals:
            raise ctx.error(
                ("sweep", key),
                f"must be a non-empty list of values or a range "
                f"{{ start, stop, num }}, got {vals!r}",
            )
        conv = []
        for v in vals:
            try:
                conv.append(quantity(v, expect="time" if _TIME_NAMES.match(k) else None, key=k))
            except (TypeError, ValueError) as e:
                raise ctx.error(("sweep", key), str(e)) from None
        if len(set(conv)) != len(conv):
            raise ctx.error(("sweep", key), f"has repeated values {conv}")
        out[k] = conv
    return out


# ------------------------------------------------------------------------------ protocol


def _protocol_function(ctx: _Ctx, name: object) -> tuple[str, Callable[..., xr.Dataset]]:
    if not isinstance(name, str) or name not in PROTOCOLS:
        raise ctx.error(
            ("protocol", "name"), f"unknown protocol {name!r}; allowed: {', '.join(PROTOCOLS)}"
        )
    spec = PROTOCOLS[name]
    try:  # import the module itself: a package attribute may be the submodule of that name
        return name, getattr(importlib.import_module(spec["module"]), spec["function"])
    except (AttributeError, ImportError) as e:
        raise ctx.error(("protocol", "name"), f"protocol {name!r} is not available ({e})") from None


def _resolve_protocol(ctx: _Ctx, t: dict[str, Any]) -> dict[str, Any]:
    name, fn = _protocol_function(ctx, t.get("name"))
    sig = inspect.signature(fn)
    internal = PROTOCOLS[name]["internal"]
    args = {p.name: p.default for p in sig.parameters.values() if p.name not in internal}
    _check_keys(ctx, t, ("protocol",), ["name", *args], "protocol argument")
    out: dict[str, Any] = {"name": name}
    for k, default in args.items():
        v = t.get(k, default)
        if v is inspect.Parameter.empty:
            raise ctx.error(("protocol",), f"missing required argument {k!r}")
        path = ("protocol", k)
        if isinstance(default, bool) or isinstance(v, bool):
            if not isinstance(v, bool):
                raise ctx.error(path, f"must be true or false, got {v!r}")
            out[k] = v
        elif isinstance(default, int) and not isinstance(default, bool):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ctx.error(path, f"must be an integer >= 1, got {v!r}")
            out[k] = v
        elif isinstance(default, str):
            if not isinstance(v, str):
                raise ctx.error(path, f"must be a string, got {v!r}")
            out[k] = v
        else:
            expect = {"dt": "time", "freq": "frequency", "post_dt": "time"}.get(k)
            vals = v if isinstance(v, (list, tuple)) else [v]
            if isinstance(v, list) and not v:
                raise ctx.error(path, "must not be an empty list")
            try:
                conv = [quantity(x, expect=expect, key=k) for x in vals]
            except (TypeError, ValueError) as e:
                raise ctx.error(path, str(e)) from None
            if k == "freq" and any(x <= 0 for x in conv):
                raise ctx.error(path, f"frequencies must be > 0 Hz, got {conv}")
            if k == "w0" and any(x <= 0 for x in conv):
                raise ctx.error(path, f"must be > 0, got {conv}")
            out[k] = conv if isinstance(v, (list, tuple)) else conv[0]
    return out


# ------------------------------------------------------------------------------ the experiment


@dataclasses.dataclass(frozen=True)
class Experiment:
    """A validated experiment: ``config`` is the resolved configuration (JSON-safe, SI units,
    every default filled in); ``text`` and ``source`` the file it came from."""

    config: dict[str, Any]
    text: str = ""
    source: str = "<config>"

    @property
    def seed(self) -> int:
        return int(self.config["experiment"]["seed"])

    @property
    def output(self) -> Path:
        return Path(self.config["experiment"]["output"])

    def rule(self):
        """The rule with the sweep's values as per-instance parameters (protocol experiments;
        a network experiment's rules belong to its projections)."""
        if "network" in self.config:
            raise ExperimentError(
                f"{self.source}: a network experiment has one rule per "
                "projection ([projections.<name>] rule), not an experiment rule"
            )
        return build_rule(
            self.config["rule"], self.config.get("sweep"), _Ctx(self.text, self.source)
        )

    def run(
        self, progress: bool = True, out: str | Path | None = None, write: bool = True
    ) -> xr.Dataset:
        """Run the protocol for every instance of the sweep grid (batched in chunks, with a
        progress bar) or the network (all instances of the sweep grid in one batched engine
        run), keep the ``[record]`` variables, store the configuration, package version and
        seed in the attrs, and write ``out`` (default: ``[experiment] output``)."""
        from . import __version__

        cfg = self.config
        if "network" in cfg:
            ds = _run_network(self, progress)
        else:
            ds = self._run_protocol(progress)
        ds.attrs.update(_netcdf_safe(ds.attrs))
        ds.attrs.update(
            experiment=cfg["experiment"]["name"],
            experiment_config=json.dumps(cfg, sort_keys=True),
            experiment_source=self.source,
            experiment_toml=self.text,
            package_version=__version__,
            seed=self.seed,
        )
        if write:
            target = Path(out) if out is not None else self.output
            save(ds, target)
        return ds

    def _run_protocol(self, progress: bool) -> xr.Dataset:
        from tqdm.auto import tqdm

        cfg = self.config
        proto = dict(cfg["protocol"])
        pname = proto.pop("name")
        _, fn = _protocol_function(_Ctx(self.text, self.source), pname)
        sweep = cfg.get("sweep") or {}
        keys = list(sweep)
        grid = list(itertools.product(*[sweep[k] for k in keys])) if keys else [()]
        dtype = torch.float64 if cfg["experiment"]["dtype"] == "float64" else torch.float32
        torch.manual_seed(self.seed)
        chunk = 512
        parts = []
        bar = tqdm(
            total=len(grid), desc=cfg["experiment"]["name"], unit="set", disable=not progress
        )
        for i0 in range(0, len(grid), chunk):
            rows = grid[i0 : i0 + chunk]
            sub = {k: [r[j] for r in rows] for j, k in enumerate(keys)}
            rule = build_rule(cfg["rule"], sub or None, _Ctx(self.text, self.source))
            kw = dict(proto)
            if "seed" in inspect.signature(fn).parameters:
                kw["seed"] = self.seed
            if "dtype" in inspect.signature(fn).parameters:
                kw["dtype"] = dtype
            ds = fn(rule, **kw)
            if keys:
                ds = ds.assign_coords(param=np.arange(i0, i0 + len(rows)))
            parts.append(ds)
            bar.update(len(rows))
        bar.close()
        ds = xr.concat(parts, dim="param") if len(parts) > 1 else parts[0]
        if keys:
            if len(keys) == 1:  # one swept parameter: it becomes the dim
                ds = ds.swap_dims(param=keys[0]).drop_vars("param")
            else:  # a grid: one dim per swept parameter
                ds = ds.set_index(param=keys).unstack("param")
            for k in keys:
                ds[k].attrs.update(
                    units="s" if _TIME_NAMES.match(k) else "1", long_name=f"rule parameter {k}"
                )
        rec = cfg.get("record", {}).get("variables")
        if rec:
            missing = [v for v in rec if v not in ds.data_vars]
            if missing:
                raise ExperimentError(
                    f"{self.source}: [record.variables] {missing} are not written by protocol "
                    f"{pname!r} with rule {cfg['rule']['name']!r}; it wrote "
                    f"{sorted(map(str, ds.data_vars))}"
                )
            ds = ds[rec]
        return ds

    def _fit_table(self) -> dict[str, Any]:
        cfg = self.config
        if "fit" not in cfg or "network" in cfg:
            raise ExperimentError(f"{self.source}: missing table [fit] ({SECTIONS['fit']})")
        if cfg["protocol"]["name"] != "pairing":
            raise ExperimentError(
                f"{self.source}: [fit] fits run through the pairing protocol; "
                f"[protocol] name is {cfg['protocol']['name']!r}"
            )
        return cfg["fit"]

    def fit_spec(self):
        """The :class:`synaptic_fwp.compare.FitSpec` of this file's rule and ``[fit]`` table
        (named after the experiment); its ``published`` set is the rule's values of the free
        parameters when the rule comes from a published table or preset."""
        from . import fit as fitmod
        from .compare import FitSpec

        cfg = self.config
        f = self._fit_table()
        rule = build_rule(cfg["rule"], None, _Ctx(self.text, self.source))
        model = fitmod.pairing_model(
            rule,
            name=cfg["experiment"]["name"],
            n_pairs=cfg["protocol"]["n_pairs"],
            w0=cfg["protocol"].get("w0", 1.0),
            params=sorted({*f["free"], *f.get("fixed", {})}),
        )
        published = None
        if "table" in cfg["rule"] or "preset" in cfg["rule"]:
            published = {k: float(getattr(rule, k)) for k in f["free"]}
        return FitSpec(
            name=cfg["experiment"]["name"],
            model=model,
            bounds={k: tuple(v) for k, v in f["free"].items()},
            fixed=f.get("fixed") or None,
            log=f.get("log"),
            published=published,
        )

    def fit_options(self) -> dict[str, Any]:
        """Keyword arguments of :func:`synaptic_fwp.fit.fit` from ``[fit]`` (seed, popsize,
        maxiter, n_boot)."""
        f = self._fit_table()
        return {k: f[k] for k in ("seed", "popsize", "maxiter", "n_boot") if k in f}

    def fit(
        self,
        progress: bool = True,
        out: str | Path | None = None,
        write: bool = True,
        **options: Any,
    ) -> xr.Dataset:
        """Fit the ``[fit] free`` parameters of the rule to ``[fit] data`` through the
        experiment's protocol with :func:`synaptic_fwp.fit.fit`; write ``[fit] output``.
        ``options`` (``seed``, ``popsize``, ``maxiter``, ``n_boot``, ...) override the file's
        and are stored in the output's ``fit_options`` attr."""
        from . import __version__
        from . import fit as fitmod

        cfg = self.config
        f = self._fit_table()
        spec = self.fit_spec()
        ds = fitmod.fit(
            spec.model,
            _load_data(f["data"]),
            bounds=dict(spec.bounds),
            fixed=spec.fixed,
            log=spec.log,
            **{**self.fit_options(), **options},
        )
        ds.attrs["fit_options"] = json.dumps({**self.fit_options(), **options}, sort_keys=True)
        ds.attrs.update(_netcdf_safe(ds.attrs))
        ds.attrs.update(
            experiment=cfg["experiment"]["name"],
            experiment_config=json.dumps(cfg, sort_keys=True),
            experiment_source=self.source,
            experiment_toml=self.text,
            package_version=__version__,
            seed=int(options.get("seed", f["seed"])),
            figure="fit_result",
        )
        if write:
            save(ds, Path(out) if out is not None else Path(f["output"]))
        return ds


def _load_data(spec: str) -> xr.Dataset:
    from . import datasets

    if spec in datasets.list():
        return datasets.load(spec)
    return datasets.from_csv(spec)


def _netcdf_safe(attrs: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in attrs.items():
        if isinstance(v, bool) or v is None or isinstance(v, (dict, list, tuple)):
            out[k] = json.dumps(v) if not isinstance(v, bool) else int(v)
        elif isinstance(v, (str, int, float, np.integer, np.floating, np.ndarray)):
            out[k] = v
        else:
            out[k] = str(v)
    return out


def save(ds: xr.Dataset, target: str | Path) -> Path:
    """Write ``ds`` to ``target`` (``.nc``: NetCDF; ``.zarr``: Zarr), creating parent dirs."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.suffix == ".zarr":
        ds.to_zarr(target, mode="w", consolidated=False)
    elif target.suffix == ".nc":
        ds.to_netcdf(target)
    else:
        raise ValueError(f"output must end in .nc or .zarr, got {str(target)!r}")
    return target


def _resolve_fit(
    ctx: _Ctx,
    t: dict[str, Any],
    rule_cfg: Mapping[str, Any],
    rule_fields: Mapping[str, object],
    seed: int,
) -> dict[str, Any]:
    _check_keys(ctx, t, ("fit",), _FIT_KEYS, "fit key")
    from . import datasets

    if "data" not in t:
        raise ctx.error(
            ("fit",),
            "missing key 'data' (a shipped dataset name, one of "
            f"{', '.join(datasets.list())}, or a CSV path)",
        )
    data = t["data"]
    if not isinstance(data, str):
        raise ctx.error(("fit", "data"), f"must be a dataset name or a CSV path, got {data!r}")
    if data not in datasets.list():
        p = Path(data)
        if p.suffix != ".csv" or not p.is_file():
            raise ctx.error(
                ("fit", "data"),
                f"{data!r} is neither a shipped dataset (one of "
                f"{', '.join(datasets.list())}) nor an existing .csv file",
            )
    numeric = [
        k for k, d in rule_fields.items() if not isinstance(d, str) and k not in ("w_min", "w_max")
    ]
    free = t.get("free")
    if not isinstance(free, dict) or not free:
        raise ctx.error(
            ("fit", "free"),
            "must be a table { parameter = [low, high], ... } "
            f"with at least one of: {', '.join(numeric)}",
        )
    out: dict[str, Any] = {"data": data, "free": {}, "fixed": {}}
    for k, b in free.items():
        if k not in numeric:
            raise ctx.error(
                ("fit", "free", k),
                f"{k!r} is not a numeric rule parameter; allowed: {', '.join(numeric)}",
            )
        if not isinstance(b, list) or len(b) != 2:
            raise ctx.error(("fit", "free", k), f"must be [low, high], got {b!r}")
        try:
            lo, hi = (quantity(x, key=k) for x in b)
        except (TypeError, ValueError) as e:
            raise ctx.error(("fit", "free", k), str(e)) from None
        if not lo < hi:
            raise ctx.error(("fit", "free", k), f"needs low < high, got [{lo}, {hi}]")
        out["free"][k] = [lo, hi]
    fixed = t.get("fixed", {})
    if not isinstance(fixed, dict):
        raise ctx.error(("fit", "fixed"), f"must be a table {{ parameter = value }}, got {fixed!r}")
    for k, v in fixed.items():
        if k not in numeric:
            raise ctx.error(
                ("fit", "fixed", k),
                f"{k!r} is not a numeric rule parameter; allowed: {', '.join(numeric)}",
            )
        if k in out["free"]:
            raise ctx.error(("fit", "fixed", k), f"{k!r} is both free and fixed")
        try:
            out["fixed"][k] = quantity(v, key=k)
        except (TypeError, ValueError) as e:
            raise ctx.error(("fit", "fixed", k), str(e)) from None
    for k, lo in (("seed", 0), ("popsize", 1), ("maxiter", 1), ("n_boot", 0)):
        if k in t:
            v = t[k]
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ctx.error(("fit", k), f"must be an integer >= {lo}, got {v!r}")
            out[k] = v
    out.setdefault("seed", seed)
    if "log" in t:
        lg = t["log"]
        if not isinstance(lg, list) or any(x not in out["free"] for x in lg):
            raise ctx.error(
                ("fit", "log"),
                f"must be a list of free parameters ({', '.join(out['free'])}), got {lg!r}",
            )
        out["log"] = list(lg)
    o = t.get("output", "results/fit.nc")
    if not isinstance(o, str) or Path(o).suffix not in (".nc", ".zarr"):
        raise ctx.error(("fit", "output"), f"must be a path ending in .nc or .zarr, got {o!r}")
    out["output"] = o
    return out


def _resolve(ctx: _Ctx, cfg: Mapping[str, Any]) -> dict[str, Any]:
    _check_keys(ctx, cfg, (), list(SECTIONS), "table")
    ex = _table(ctx, cfg, "experiment", False)
    _check_keys(ctx, ex, ("experiment",), _EXPERIMENT_KEYS, "experiment key")
    name = ex.get("name", Path(ctx.source).stem if ctx.source != "<config>" else "experiment")
    if not isinstance(name, str) or not re.match(r"^[A-Za-z0-9_.\-]+$", name):
        raise ctx.error(
            ("experiment", "name"), f"must be a name of letters, digits, _ . -, got {name!r}"
        )
    seed = ex.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ctx.error(("experiment", "seed"), f"must be an integer >= 0, got {seed!r}")
    output = ex.get("output", f"results/{name}.nc")
    if not isinstance(output, str) or Path(output).suffix not in (".nc", ".zarr"):
        raise ctx.error(
            ("experiment", "output"),
            f"must be a path ending in .nc (NetCDF) or .zarr, got {output!r}",
        )
    dtype = ex.get("dtype", "float64")
    if dtype not in ("float32", "float64"):
        raise ctx.error(("experiment", "dtype"), f'must be "float32" or "float64", got {dtype!r}')
    desc = ex.get("description", "")
    if not isinstance(desc, str):
        raise ctx.error(("experiment", "description"), f"must be a string, got {desc!r}")
    out: dict[str, Any] = {
        "experiment": {
            "name": name,
            "description": desc,
            "seed": seed,
            "output": output,
            "dtype": dtype,
        }
    }
    if "network" in cfg:
        _resolve_network(ctx, cfg, out)
        return out
    for net_only in ("inputs", "populations", "projections"):
        if net_only in cfg:
            raise ctx.error(
                (net_only,),
                f"[{net_only}] belongs to a network experiment, which "
                "needs a [network] table (dt, duration)",
            )
    rule_t = _table(ctx, cfg, "rule", True)
    if "name" not in rule_t:
        raise ctx.error(("rule",), f"missing key 'name'; allowed rules: {', '.join(RULES)}")
    out["rule"] = _resolve_rule(ctx, rule_t)
    _, cls, _ = _rule_class(ctx, out["rule"]["name"])
    fields = _rule_fields(cls)
    prot_t = _table(ctx, cfg, "protocol", True)
    if "name" not in prot_t:
        raise ctx.error(("protocol",), f"missing key 'name'; allowed: {', '.join(PROTOCOLS)}")
    out["protocol"] = _resolve_protocol(ctx, prot_t)
    fixed = {k: v for k, v in out["rule"].items() if k not in ("name", "table", "preset")}
    out["sweep"] = _resolve_sweep(ctx, _table(ctx, cfg, "sweep", False), fields, fixed)
    rec = _table(ctx, cfg, "record", False)
    _check_keys(ctx, rec, ("record",), _RECORD_KEYS, "record key")
    allowed_vars = PROTOCOLS[out["protocol"]["name"]]["variables"]
    if "variables" in rec:
        vs = rec["variables"]
        if not isinstance(vs, list) or not vs or not all(isinstance(v, str) for v in vs):
            raise ctx.error(
                ("record", "variables"),
                f"must be a non-empty list of names from {', '.join(allowed_vars)}, got {vs!r}",
            )
        bad = [v for v in vs if v not in allowed_vars]
        if bad:
            raise ctx.error(
                ("record", "variables"),
                f"unknown variables {bad}; protocol "
                f"{out['protocol']['name']!r} writes {', '.join(allowed_vars)}",
            )
        out["record"] = {"variables": list(vs)}
    if "fit" in cfg:
        out["fit"] = _resolve_fit(ctx, _table(ctx, cfg, "fit", False), out["rule"], fields, seed)
    # build the rule once now, so invalid values (e.g. negative time constants) fail here
    rule = build_rule(out["rule"], out["sweep"] or None, ctx)
    out["rule_resolved"] = _full_rule_params(rule)
    return out


def loads(text: str, source: str = "<string>") -> Experiment:
    """Parse and validate an experiment from TOML ``text`` (``source`` names it in errors)."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    ctx = _Ctx(text, source)
    try:
        cfg = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ExperimentError(f"{source}: not valid TOML: {e}") from None
    return Experiment(_resolve(ctx, cfg), text, source)


def load(path: str | Path) -> Experiment:
    """Read and validate the experiment file at ``path``."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"experiment file {str(p)!r} does not exist")
    if p.suffix != ".toml":
        raise ExperimentError(f"{p}: experiment files are TOML (.toml), got {p.suffix!r}")
    return loads(p.read_text(), str(p))


def from_dataset(ds: xr.Dataset) -> Experiment:
    """The experiment that produced ``ds`` (from its ``experiment_toml`` attr, re-validated
    and checked against the stored resolved configuration)."""
    if "experiment_toml" not in ds.attrs or "experiment_config" not in ds.attrs:
        raise ValueError(
            "ds has no experiment_toml/experiment_config attrs; it was not "
            "written by an experiment file"
        )
    ex = loads(
        str(ds.attrs["experiment_toml"]), str(ds.attrs.get("experiment_source", "<dataset>"))
    )
    stored = json.loads(str(ds.attrs["experiment_config"]))
    if json.loads(json.dumps(ex.config, sort_keys=True)) != stored:
        raise ValueError(
            "the stored experiment file no longer resolves to the stored "
            "configuration (defaults changed in this version?); compare "
            "experiment_config with a fresh load"
        )
    return ex


# ------------------------------------------------------------------------------ networks
# A network experiment has [network] (dt, duration, batch) and tables of [inputs.<name>],
# [populations.<name>] and [projections.<name>] instead of [rule] and [protocol]; it runs on
# synaptic_fwp.engine.Network.

INPUTS: dict[str, str] = {
    "poisson": "PoissonInput",
    "spike_times": "SpikeTimesInput",
    "rate": "RateInput",
    "place_cells": "PlaceCellInput",
    "plateau": "PlateauInput",
}
"""Input ``type`` names -> classes of :mod:`synaptic_fwp.inputs`."""

POPULATIONS: dict[str, str] = {
    "lif": "LIFPopulation",
    "adex": "AdExPopulation",
    "rate": "RatePopulation",
}
"""Population ``type`` names -> classes of :mod:`synaptic_fwp.neurons`."""

PRESETS: dict[str, tuple[str, str, str]] = {"adex": ("pattern", "naud2008", "NAUD2008")}
"""Object types with named parameter sets: ``type -> (key, classmethod, table)``; e.g.
``pattern = "regular_bursting"`` builds ``AdExPopulation.naud2008("regular_bursting", ...)``
(Naud et al. 2008), the other keys overriding the set."""

_KIND_OF = [
    (re.compile(r"^(tau.*|t_ref|duration|times|rate_dt|delay|dt|every)$"), "time"),
    (re.compile(r"^(rate|peak_rate|baseline|r_max|r_init|max_rate|rho0)$"), "frequency"),
    (re.compile(r"^(E_.*|V_.*|ampa_drive|Delta_T)$"), "voltage"),
    (re.compile(r"^C$"), "capacitance"),
    (re.compile(r"^g_L$"), "conductance"),
    (re.compile(r"^(track_length|width|x0|positions)$"), "length"),
]


#: Kinds of short names that mean other things elsewhere: AdEx's adaptation ``a`` (S) and
#: ``b`` (A) within ``[populations]`` only (Shouval's rule has a dimensionless ``b``). (``I_ext``
#: has no kind: amperes for spiking neurons, the units of ``W r`` for rate units.)
_POPULATION_KIND = {"a": "conductance", "b": "current"}


def _kind(key: str, path: tuple[str, ...] = ()) -> str | None:
    if path[:1] == ("populations",) and key in _POPULATION_KIND:
        return _POPULATION_KIND[key]
    for rx, kind in _KIND_OF:
        if rx.match(key):
            return kind
    return None


def _signature_args(cls: type, skip: Sequence[str] = ("name",)) -> dict[str, Any]:
    sig = inspect.signature(cls)
    return {n: p.default for n, p in sig.parameters.items() if n not in skip}


def _convert_value(ctx: _Ctx, path: tuple[str, ...], key: str, v: object) -> Any:
    """A TOML value for a constructor argument: bools, ints and strings pass; numbers and
    quantity strings become SI floats; lists of them become lists."""
    if isinstance(v, bool) or v is None:
        return v
    kind = _kind(key, path)
    if isinstance(v, int) and kind is None:
        return v
    if isinstance(v, list):
        return [_convert_value(ctx, path, key, x) for x in v]
    if isinstance(v, str) and not _QUANTITY.match(v):
        return v
    try:
        return quantity(v, expect=kind, key=key)
    except (TypeError, ValueError) as e:
        raise ctx.error(path, str(e)) from None


def _resolve_objects(
    ctx: _Ctx, cfg: Mapping[str, Any], section: str, types: Mapping[str, str], module: str
) -> dict[str, dict[str, Any]]:
    t = _table(ctx, cfg, section, False)
    mod = importlib.import_module(module)
    out: dict[str, dict[str, Any]] = {}
    for name, spec in t.items():
        path = (section, name)
        if not name.isidentifier():
            raise ctx.error(path, f"names must be identifiers (letters, digits, _), got {name!r}")
        if not isinstance(spec, dict):
            raise ctx.error(path, f"must be a table [{section}.{name}] with a type, got {spec!r}")
        kind = spec.get("type")
        if kind not in types:
            raise ctx.error((*path, "type"), f"unknown type {kind!r}; allowed: {', '.join(types)}")
        args = _signature_args(getattr(mod, types[kind]))
        preset = PRESETS.get(kind) if section == "populations" else None
        extra = [preset[0]] if preset else []
        _check_keys(ctx, spec, path, ["type", *extra, *args], f"{kind} argument")
        res: dict[str, Any] = {"type": kind}
        for k, v in spec.items():
            if section == "populations" and k in _INITIAL and isinstance(v, dict):
                res[k] = _resolve_uniform(ctx, (*path, k), v, k, _kind(k))
            elif preset and k == preset[0]:
                table = getattr(mod, preset[2])
                if v not in table:
                    raise ctx.error((*path, k), f"unknown {k} {v!r}; allowed: {', '.join(table)}")
                res[k] = v
            elif k != "type":
                res[k] = _convert_value(ctx, (*path, k), k, v)
        missing = [a for a, d in args.items() if d is inspect.Parameter.empty and a not in res]
        if missing:
            raise ctx.error(path, f"missing required argument(s) {missing}")
        out[name] = res
    return out


_PROJ_SPECIAL = ("pre", "post", "W0", "U0", "rule", "value")

#: Population arguments that may be drawn per neuron: ``{ uniform = [low, high] }``.
_INITIAL = ("V_init", "r_init")


def _resolve_uniform(
    ctx: _Ctx, path: tuple[str, ...], v: Mapping[str, Any], key: str, kind: str | None
) -> dict[str, list[float]]:
    """``{ uniform = [low, high] }`` (quantities of ``kind``) for a per-neuron initial value."""
    _check_keys(ctx, v, path, ["uniform"], "random initial value")
    arg = v.get("uniform")
    if not isinstance(arg, list) or len(arg) != 2:
        raise ctx.error(path, f"give {{ uniform = [low, high] }}, got {dict(v)!r}")
    try:
        lo, hi = (quantity(x, expect=kind, key=key) for x in arg)
    except (TypeError, ValueError) as e:
        raise ctx.error(path, str(e)) from None
    if not lo < hi:
        raise ctx.error(path, f"uniform needs low < high, got [{lo}, {hi}]")
    return {"uniform": [lo, hi]}


def _resolve_weights(ctx: _Ctx, path: tuple[str, ...], v: object) -> Any:
    if isinstance(v, dict):
        _check_keys(ctx, v, path, ["uniform", "constant", "p"], "weight initialisation")
        how = [k for k in ("uniform", "constant") if k in v]
        if len(how) != 1:
            raise ctx.error(path, "give one of { uniform = [low, high] } or { constant = w }, "
                                  "and optionally p (the connection probability)")
        out: dict[str, Any] = {}
        if "p" in v:
            pv = v["p"]
            if isinstance(pv, bool) or not isinstance(pv, (int, float)) or not 0 < pv <= 1:
                raise ctx.error((*path, "p"), f"p must be a probability in (0, 1], got {pv!r}")
            out["p"] = float(pv)
        arg = v[how[0]]
        if how[0] == "uniform":
            if not isinstance(arg, list) or len(arg) != 2:
                raise ctx.error(path, f"uniform needs [low, high], got {arg!r}")
            try:
                lo, hi = (quantity(x, key="W0") for x in arg)
            except (TypeError, ValueError) as e:
                raise ctx.error(path, str(e)) from None
            if not lo < hi:
                raise ctx.error(path, f"uniform needs low < high, got [{lo}, {hi}]")
            return {"uniform": [lo, hi]} | out
        try:
            return {"constant": quantity(arg, key="W0")} | out
        except (TypeError, ValueError) as e:
            raise ctx.error(path, str(e)) from None
    try:
        return {"constant": quantity(v, key="W0")}
    except (TypeError, ValueError) as e:
        raise ctx.error(path, f"{e}; or give {{ uniform = [low, high] }}") from None


def _resolve_projections(
    ctx: _Ctx, cfg: Mapping[str, Any], names: Sequence[str], pops: Sequence[str]
) -> dict[str, dict[str, Any]]:
    from . import rules as rate_rules
    from .synapses import Projection

    t = _table(ctx, cfg, "projections", False)
    fields = [f for f in Projection.__dataclass_fields__ if f not in ("name",)]
    out: dict[str, dict[str, Any]] = {}
    for name, spec in t.items():
        path = ("projections", name)
        if not name.isidentifier() or name in names:
            raise ctx.error(path, f"projection names must be new identifiers, got {name!r}")
        if not isinstance(spec, dict):
            raise ctx.error(path, f"must be a table with pre, post, W0, got {spec!r}")
        _check_keys(ctx, spec, path, fields, "projection argument")
        res: dict[str, Any] = {}
        for k, allowed in (("pre", names), ("post", pops)):
            if k not in spec:
                raise ctx.error(path, f"missing key {k!r} (one of {', '.join(allowed)})")
            if spec[k] not in allowed:
                raise ctx.error(
                    (*path, k),
                    f"{spec[k]!r} is not defined; allowed: {', '.join(allowed) or 'none defined'}",
                )
            res[k] = spec[k]
        if "W0" not in spec:
            raise ctx.error(
                path, "missing key 'W0' (initial weights: a number or { uniform = [low, high] })"
            )
        res["W0"] = _resolve_weights(ctx, (*path, "W0"), spec["W0"])
        if "U0" in spec:
            res["U0"] = _resolve_weights(ctx, (*path, "U0"), spec["U0"])
        if "value" in spec:
            if spec["value"] not in names:
                raise ctx.error(
                    (*path, "value"),
                    f"{spec['value']!r} is not defined; allowed: {', '.join(names)}",
                )
            res["value"] = spec["value"]
        r = spec.get("rule")
        if isinstance(r, str):
            if r not in rate_rules.names():
                raise ctx.error(
                    (*path, "rule"),
                    f"unknown rate rule {r!r}; allowed: "
                    f"{', '.join(rate_rules.names())}, or a spiking rule table "
                    f"{{ name = ... }} with name in {', '.join(RULES)}",
                )
            res["rule"] = r
        elif isinstance(r, dict):
            res["rule"] = _resolve_rule(ctx, dict(r), (*path, "rule"))
        elif r is not None:
            raise ctx.error(
                (*path, "rule"), f"must be a rate rule name or a table {{ name = ... }}, got {r!r}"
            )
        for k, v in spec.items():
            if k not in _PROJ_SPECIAL:
                res[k] = _convert_value(ctx, (*path, k), k, v)
        out[name] = res
    return out


def _resolve_network_sweep(
    ctx: _Ctx, t: Mapping[str, Any], cfg: Mapping[str, Any]
) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for key, vals in t.items():
        parts = key.split(".")
        ok = len(parts) in (3, 4) and parts[0] in ("inputs", "populations", "projections")
        ok = ok and parts[1] in cfg.get(parts[0], {})
        if ok and len(parts) == 4:
            ok = (
                parts[0] == "projections"
                and parts[2] == "rule"
                and isinstance(cfg["projections"][parts[1]].get("rule"), dict)
            )
        if not ok:
            raise ctx.error(
                ("sweep", *parts),
                f"{key!r} must name a defined object's parameter: "
                "'inputs.<name>.<arg>', 'populations.<name>.<arg>', "
                "'projections.<name>.<arg>' or 'projections.<name>.rule.<param>'",
            )
        owner = cfg[parts[0]][parts[1]]
        if len(parts) == 4:
            owner = owner["rule"]
        if parts[-1] in owner:
            where = ".".join(parts[:-1])
            raise ctx.error(
                ("sweep", *parts), f"{parts[-1]!r} is also set in [{where}]; set it in one place"
            )
        if not isinstance(vals, list) or not vals:
            raise ctx.error(("sweep", *parts), f"must be a non-empty list of values, got {vals!r}")
        try:
            kind = _kind(parts[-1], tuple(parts))
            out[key] = [quantity(v, expect=kind, key=parts[-1]) for v in vals]
        except (TypeError, ValueError) as e:
            raise ctx.error(("sweep", *parts), str(e)) from None
    return out


def _resolve_network(ctx: _Ctx, cfg: Mapping[str, Any], out: dict[str, Any]) -> None:
    for bad in ("rule", "protocol", "fit"):
        if bad in cfg:
            raise ctx.error(
                (bad,),
                f"a network experiment ([network]) takes no [{bad}] table; "
                "rules belong to [projections.<name>] (rule = ...)",
            )
    net = _table(ctx, cfg, "network", True)
    _check_keys(ctx, net, ("network",), ["dt", "duration", "batch", "method"], "network key")
    res: dict[str, Any] = {}
    for k in ("dt", "duration"):
        if k not in net:
            raise ctx.error(("network",), f'missing key {k!r} (seconds, e.g. "0.1 ms")')
        try:
            res[k] = quantity(net[k], expect="time", key=k)
        except (TypeError, ValueError) as e:
            raise ctx.error(("network", k), str(e)) from None
        if res[k] <= 0:
            raise ctx.error(("network", k), f"must be > 0 s, got {res[k]}")
    b = net.get("batch", 1)
    if isinstance(b, bool) or not isinstance(b, int) or b < 1:
        raise ctx.error(("network", "batch"), f"must be an integer >= 1, got {b!r}")
    res["batch"] = b
    m = net.get("method", "auto")
    if m not in ("auto", "step", "window"):
        raise ctx.error(("network", "method"), f"must be auto, step or window, got {m!r}")
    res["method"] = m
    out["network"] = res
    out["inputs"] = _resolve_objects(ctx, cfg, "inputs", INPUTS, "synaptic_fwp.inputs")
    out["populations"] = _resolve_objects(
        ctx, cfg, "populations", POPULATIONS, "synaptic_fwp.neurons"
    )
    if not out["populations"]:
        raise ctx.error(("populations",), "a network needs at least one [populations.<name>]")
    both = set(out["inputs"]) & set(out["populations"])
    if both:
        raise ctx.error(
            ("populations", sorted(both)[0]), "names must be unique across inputs and populations"
        )
    names = [*out["inputs"], *out["populations"]]
    out["projections"] = _resolve_projections(ctx, cfg, names, list(out["populations"]))
    out["sweep"] = _resolve_network_sweep(ctx, _table(ctx, cfg, "sweep", False), out)
    rec = _table(ctx, cfg, "record", False)
    _check_keys(ctx, rec, ("record",), ["variables", "every"], "record key")
    objs = [*names, *out["projections"]]
    vs = rec.get("variables", [])
    if not isinstance(vs, list) or not all(isinstance(v, str) and "." in v for v in vs):
        raise ctx.error(
            ("record", "variables"),
            'must be a list of "object.variable" names, '
            f'e.g. "S.W", "neuron.V", "neuron.spikes"; got {vs!r}',
        )
    bad = [v for v in vs if v.split(".")[0] not in objs]
    if bad:
        raise ctx.error(
            ("record", "variables"), f"{bad} name no defined object; objects: {', '.join(objs)}"
        )
    every = None
    if "every" in rec:
        try:
            every = quantity(rec["every"], expect="time", key="every")
        except (TypeError, ValueError) as e:
            raise ctx.error(("record", "every"), str(e)) from None
    out["record"] = {"variables": list(vs), "every": every}
    # build the network once now, so invalid values fail here, naming their line
    _build_network(out, ctx)


def _grid(sweep: Mapping[str, Sequence[float]], replicas: int) -> tuple[list[str], np.ndarray]:
    keys = list(sweep)
    rows = list(itertools.product(*[sweep[k] for k in keys])) if keys else [()]
    grid = np.repeat(np.array(rows, dtype=float).reshape(len(rows), len(keys)), replicas, axis=0)
    return keys, grid


def _build_network(cfg: Mapping[str, Any], ctx: _Ctx):
    """The :class:`synaptic_fwp.engine.Network` of a resolved network config; every error
    raised while building names the table (and key) it came from."""
    from . import inputs as inp_mod
    from . import neurons as pop_mod
    from .engine import Network

    keys, grid = _grid(cfg.get("sweep") or {}, cfg["network"]["batch"])
    batch = grid.shape[0]
    dtype = torch.float64 if cfg["experiment"]["dtype"] == "float64" else torch.float32
    swept: dict[tuple[str, ...], torch.Tensor] = {
        tuple(k.split(".")): torch.tensor(grid[:, j], dtype=dtype) for j, k in enumerate(keys)
    }

    def args_of(section: str, name: str, spec: Mapping[str, Any]) -> dict[str, Any]:
        a = {k: v for k, v in spec.items() if k != "type"}
        for path, vals in swept.items():
            if path[:2] == (section, name) and len(path) == 3:
                a[path[2]] = vals
        return a

    def guarded(path: tuple[str, ...], keys_: Sequence[str], fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except (TypeError, ValueError) as e:
            k = _named_key(str(e), keys_)
            raise ctx.error((*path, k) if k else path, f"invalid: {e}") from None

    seed = cfg["experiment"]["seed"]
    net = Network(dt=cfg["network"]["dt"], batch=batch, seed=seed, dtype=dtype)
    objs: dict[str, Any] = {}
    for name, spec in cfg["inputs"].items():
        cls = getattr(inp_mod, INPUTS[spec["type"]])
        a = args_of("inputs", name, spec)
        if spec["type"] == "plateau" and isinstance(a.get("track"), str):
            if a["track"] not in objs:
                raise ctx.error(
                    ("inputs", name, "track"),
                    f"{a['track']!r} is not a place_cells input defined before it",
                )
            a["track"] = objs[a["track"]]
        for k in ("times", "indices", "laps"):  # list arguments stay lists
            if isinstance(a.get(k), list):
                a[k] = list(a[k])
        objs[name] = guarded(
            ("inputs", name), list(a), lambda cls=cls, a=a, name=name: net.add(cls(name=name, **a))
        )
    gen = torch.Generator().manual_seed(seed)
    for name, spec in cfg["populations"].items():
        cls = getattr(pop_mod, POPULATIONS[spec["type"]])
        a = args_of("populations", name, spec)
        for k in _INITIAL:  # one draw per instance and neuron
            if isinstance(a.get(k), dict):
                lo, hi = a[k]["uniform"]
                u = torch.rand((batch, int(a["n"])), generator=gen, dtype=torch.float64)
                a[k] = (lo + (hi - lo) * u).to(dtype)
        preset = PRESETS.get(spec["type"])
        if preset and preset[0] in a:  # a named parameter set, the other keys override it
            cls = functools.partial(getattr(cls, preset[1]), a.pop(preset[0]))
        objs[name] = guarded(
            ("populations", name),
            list(a),
            lambda cls=cls, a=a, name=name: net.add(cls(name=name, **a)),
        )
    for name, spec in cfg["projections"].items():
        path = ("projections", name)
        pre, post = objs[spec["pre"]], objs[spec["post"]]
        shape = (batch, post.n, pre.n)

        def weights(
            w: Mapping[str, Any], shape: tuple[int, ...] = shape
        ) -> tuple[torch.Tensor | float, torch.Tensor | None]:
            """Initial weights, and the connection mask when ``p`` is given (each synapse
            present with probability ``p``, drawn per instance)."""
            if "uniform" in w:
                lo, hi = w["uniform"]
                W = lo + (hi - lo) * torch.rand(shape, generator=gen, dtype=torch.float64).to(
                    dtype
                )
            else:
                W = float(w["constant"])
            if "p" not in w:
                return W, None
            return W, torch.rand(shape, generator=gen, dtype=torch.float64) < w["p"]

        kw = {k: v for k, v in spec.items() if k not in _PROJ_SPECIAL}
        for p, vals in swept.items():
            if p[:2] == path and len(p) == 3:
                kw[p[2]] = vals
        if "U0" in spec:  # static NMDA weights: a p only zeroes some
            U0, m_u = weights(spec["U0"])
            kw["U0"] = U0 * m_u if m_u is not None else U0
        if "value" in spec:
            kw["value"] = objs[spec["value"]]
        rule = spec.get("rule")
        if isinstance(rule, dict):
            rsweep = {
                p[3]: grid[:, keys.index(".".join(p))].tolist()
                for p in swept
                if p[:2] == path and len(p) == 4
            }
            rule = build_rule(rule, rsweep or None, ctx, (*path, "rule"))
        W0, mask = weights(spec["W0"])
        if mask is not None:  # absent synapses: 0, and a plastic rule cannot grow them
            kw["mask"] = mask
        guarded(
            path,
            [*kw, "W0", "rule"],
            lambda pre=pre, post=post, W0=W0, rule=rule, kw=kw, name=name: net.connect(
                pre, post, W0, rule, name=name, **kw
            ),
        )
    return net, keys, grid


def _run_network(ex: Experiment, progress: bool) -> xr.Dataset:
    cfg = ex.config
    ctx = _Ctx(ex.text, ex.source)
    net, keys, grid = _build_network(cfg, ctx)
    rec = cfg["record"]
    try:
        ds = net.run(
            cfg["network"]["duration"],
            record=rec["variables"],
            every=rec["every"],
            progress=progress,
            method=cfg["network"]["method"],
        )
    except (TypeError, ValueError) as e:
        k = _named_key(str(e), ["every", "variables", "duration", "dt"])
        sec = "network" if k in ("duration", "dt") else "record"
        raise ctx.error((sec, k) if k else (sec,), f"invalid: {e}") from None
    if keys:
        replicas = cfg["network"]["batch"]
        # coordinate names as the engine names per-instance parameters: <object>_<param>
        names = ["_".join(k.split(".")[1:]) for k in keys]
        ds = ds.drop_vars([n for n in names if n in ds.coords])
        coords = {
            n: (
                "batch",
                grid[:, j],
                {
                    "long_name": f"swept {k}",
                    "units": _UNIT_OF_KIND.get(_kind(k.split(".")[-1], tuple(k.split("."))),
                                               "1"),
                },
            )
            for j, (n, k) in enumerate(zip(names, keys, strict=True))
        }
        ds = ds.assign_coords(coords)
        index = list(names)
        if replicas > 1:
            ds = ds.assign_coords(
                replica=("batch", np.tile(np.arange(replicas), grid.shape[0] // replicas))
            )
            index.append("replica")
        if len(index) == 1:
            ds = ds.swap_dims(batch=index[0]).drop_vars("batch")
        else:
            ds = ds.set_index(batch=index).unstack("batch")
        ds = ds.transpose(*index, ...)
    return ds


_UNIT_OF_KIND = {
    "time": "s",
    "frequency": "Hz",
    "voltage": "V",
    "capacitance": "F",
    "conductance": "S",
    "current": "A",
    "length": "m",
    None: "1",
}
