"""Run Triton kernels under the CPU interpreter in one test module, without leaking it.

Triton picks the interpreter when it decorates a kernel, so a kernel test module sets
``TRITON_INTERPRET=1`` only while it imports the kernels (:func:`import_interpreted`) and, via the
module-scoped :func:`interpreter` fixture (import it into the test module), while its own tests
run; the variable is restored in between so other test files see the environment unchanged.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest

_PREV = os.environ.get("TRITON_INTERPRET")


def restore() -> None:
    if _PREV is None:
        os.environ.pop("TRITON_INTERPRET", None)
    else:
        os.environ["TRITON_INTERPRET"] = _PREV


def import_interpreted(*modules: str) -> tuple[list[ModuleType], str | None]:
    """Import ``modules`` with the interpreter on; return them and a skip reason (or None)."""
    os.environ["TRITON_INTERPRET"] = "1"
    try:
        import triton  # noqa: F401
        from synaptic_fwp.kernels import launch

        mods = [importlib.import_module(m) for m in modules]
        if not launch.INTERPRETED:
            return mods, (
                "the Triton kernels were imported before without TRITON_INTERPRET=1 (compiled)"
            )
        return mods, None
    except ImportError as exc:  # pragma: no cover - triton is a test dependency
        return [], f"triton cannot be imported ({exc}); the Triton tests need it"
    finally:
        restore()


@pytest.fixture(autouse=True, scope="module")
def interpreter():
    os.environ["TRITON_INTERPRET"] = "1"
    yield
    restore()
