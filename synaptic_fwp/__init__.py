"""synaptic_fwp: synaptic plasticity as fast weight programming.

Layers (each imports only from those below it; DESIGN.md):
rules -> scan -> neurons/synapses -> records -> engine -> protocols/datasets -> fit -> plot
-> faces (CLI, experiment files, Dask sweeps, Brian2 export).

Quick start::

    import torch, synaptic_fwp as sf
    q = k = torch.randn(2, 128, 4, 16); v = torch.randn(2, 128, 4, 16)
    y, W = sf.scan(q, k, v, "delta", eta=0.5)
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from . import rules
from .scan import attention_form, scan

try:
    __version__ = version("synaptic_fwp")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.1.0+source"

__all__ = ["rules", "scan", "attention_form", "__version__"]
