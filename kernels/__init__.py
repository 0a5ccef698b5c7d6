"""Triton kernels (installed as ``synaptic_fwp.kernels``), each beside the torch reference it
must equal. See ``kernels/README.md`` for the math and the memory traffic of each kernel.

``scan_triton(q, k, v, rule, g, W0, stride, chunk_size) -> (y, W_T, states_or_None)`` is the
``backend="triton"`` path of :func:`synaptic_fwp.scan`. Triton itself is imported lazily,
on the first call: Triton fixes at import (decoration) time whether its kernels are compiled for
a GPU or run by the CPU interpreter (``TRITON_INTERPRET=1``), so importing this package does not
commit a process to either.
"""

from __future__ import annotations

import torch

__all__ = ["scan_triton", "triton_available"]


def triton_available() -> bool:
    """Whether Triton can be imported."""
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def scan_triton(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    rule: object,
    g: dict[str, torch.Tensor | None],
    W0: torch.Tensor,
    stride: int = 0,
    chunk_size: int = 64,
    **kwargs: object,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Run ``rule`` over the sequences with the fused Triton kernels; see
    :func:`synaptic_fwp.kernels.launch.scan_triton` (extra keywords: ``mode``, ``block_v``).

    Raises ``ValueError`` (before any work) when Triton is missing, or when the tensors are on
    the CPU and ``TRITON_INTERPRET=1`` was not set before Triton was first imported.
    """
    if not triton_available():
        raise ValueError("backend='triton' needs the triton package (pip install triton)")
    import os

    if not q.is_cuda and os.environ.get("TRITON_INTERPRET") != "1":
        raise ValueError(
            f"backend='triton' needs CUDA tensors (got device {q.device}); on the CPU set "
            "TRITON_INTERPRET=1 (Triton's interpreter) or use backend='recurrent' or 'chunk'"
        )
    from .launch import scan_triton as _scan

    return _scan(q, k, v, rule, g, W0, stride, chunk_size, **kwargs)
