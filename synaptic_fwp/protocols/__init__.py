"""Experimental protocols that build and run an experiment in one batched call and return an
``xarray.Dataset``: pairing, frequency stimulation, BTSP induction."""

from __future__ import annotations

import importlib

_WHERE = {
    "pairing": ".pairing",
    "frequency_stimulation": ".frequency",
    "btsp_induction": ".btsp",
    "target_ramp": ".btsp",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str):  # lazy: each protocol module loads only when used
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ``pairing`` is both a submodule and a function: once any code imports the submodule, Python
# binds the package attribute ``pairing`` to the module and the lazy ``__getattr__`` above is
# never consulted, so ``from synaptic_fwp.protocols import pairing`` would return the module.
# Binding the function eagerly keeps the documented name a function.
from .pairing import pairing  # noqa: E402, F401
