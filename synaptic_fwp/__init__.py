"""synaptic_fwp: synaptic plasticity as fast weight programming.

Layers (each imports only from those below it; DESIGN.md):
rules -> sequence (scan) -> neurons/synapses -> records -> engine -> protocols/datasets -> fit
-> plot -> faces (CLI, experiment files, Dask sweeps, Brian2 export).

Quick start::

    import torch, synaptic_fwp as sf
    q = k = torch.randn(2, 128, 4, 16); v = torch.randn(2, 128, 4, 16)
    y, W = sf.scan(q, k, v, "delta", eta=0.5)

The user's path reads as the layers do: build a model (``sf.Network``, ``sf.connect``,
``sf.plasticity``), run a protocol (``sf.protocols``), get a Dataset, fit (``sf.fit.fit``),
compare (``sf.compare.compare``), plot (``sf.plot``); scale out with ``sf.sweep``. Those names
load on first use.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version

from . import rules
from .sequence import attention_form, scan
from .sweep import sweep  # eager: the function must shadow its module's name

try:
    __version__ = version("synaptic_fwp")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.1.0+source"

# name -> (module, attribute or None for the module itself), imported on first access
_LAZY = {
    "Network": ("engine", "Network"),
    "connect": ("synapses", "connect"),
    "RatePopulation": ("neurons", "RatePopulation"),
    "LIFPopulation": ("neurons", "LIFPopulation"),
    "AdExPopulation": ("neurons", "AdExPopulation"),
    "inputs": ("inputs", None),
    "plasticity": ("plasticity", None),
    "protocols": ("protocols", None),
    "datasets": ("datasets", None),
    "records": ("records", None),
    "fit": ("fit", None),
    "compare": ("compare", None),
    "plot": ("plot", None),
    "to_brian2": ("brian2_export", "to_brian2"),
    "NonFiniteError": ("_validation", "NonFiniteError"),
}

__all__ = ["rules", "scan", "attention_form", "sweep", "__version__", *sorted(_LAZY)]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'synaptic_fwp' has no attribute {name!r}")
    mod, attr = _LAZY[name]
    m = importlib.import_module(f".{mod}", __name__)
    value = m if attr is None else getattr(m, attr)
    globals()[name] = value  # later accesses skip __getattr__ (and win over the submodule)
    return value
