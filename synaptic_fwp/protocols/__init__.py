"""Experimental protocols that build and run an experiment in one batched call and return an
``xarray.Dataset``: pairing, frequency stimulation, BTSP induction."""

from __future__ import annotations

import importlib

_WHERE = {
    "pairing": ".pairing",
    "frequency_stimulation": ".frequency",
    "btsp_induction": ".btsp",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str):  # lazy: each protocol module loads only when used
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
