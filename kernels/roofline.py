"""Bytes and flops per time step of each Triton kernel, and the time bound they imply on a GPU.

Counts are per time step and per (batch, head) instance, for ``W`` of shape ``(V, K)``; a
multiply-add counts 2 flops, an ``exp`` 1. ``s`` is the size in bytes of an input element (2 for
float16/bfloat16, 4 for float32); checkpoints and gradients are float32. The derivation is in
``docs/roofline.md``; :mod:`benchmarks.gpu_kernels` divides the bound by the measured time.

H100 SXM numbers (NVIDIA H100 Tensor Core GPU datasheet, 2023): HBM3 3.35 TB/s; dense bf16 /
fp16 tensor core 989 TFLOP/s; dense TF32 tensor core 495 TFLOP/s; FP32 on CUDA cores 67 TFLOP/s.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["H100", "Cost", "kernel_cost", "spiking_cost", "bound_seconds"]

H100 = {
    "hbm_bytes_per_s": 3.35e12,
    "bf16_tensor_flops": 989e12,
    "tf32_tensor_flops": 495e12,
    "fp32_cuda_core_flops": 67e12,
}


@dataclass(frozen=True)
class Cost:
    """Per time step and instance: HBM bytes, flops, and which unit runs the flops."""

    bytes: float
    flops: float
    unit: str  # key of H100 giving the peak of the unit doing the flops

    def bound(self, steps: float, hw: dict = H100) -> float:
        """Lower bound in seconds for ``steps`` instance-steps: max(memory time, compute time)."""
        return steps * max(self.bytes / hw["hbm_bytes_per_s"], self.flops / hw[self.unit])

    def limiter(self, hw: dict = H100) -> str:
        mem = self.bytes / hw["hbm_bytes_per_s"]
        return "memory" if mem >= self.flops / hw[self.unit] else "compute"


def _gate_elems(decay: str, write: str, K: int, V: int) -> int:
    n = 1 if write == "eta" else 0
    n += {"none": 0, "scalar": 1, "post": V, "pre": K}[decay]
    return n


def kernel_cost(
    *,
    decay: str,
    correction: str,
    write: str,
    K: int,
    V: int,
    mode: str = "recurrent",
    s: int = 2,
    bt: int = 64,
    seg: int = 16,
    backward: bool = False,
    bcm_output: bool = False,
) -> Cost:
    """Cost of the forward (or the backward) kernel of a rule spec.

    ``correction`` in ``{"none", "delta", "oja", "bcm"}``; ``mode`` ``"recurrent"`` or
    ``"chunk"`` (chunk length ``bt``); ``seg`` the backward checkpoint interval (16 in both
    modes). The backward's scratch traffic (``8 V K`` bytes per step, written and read back once)
    is assumed to stay in L2 (see the roofline note) and is not counted.
    """
    VK = V * K
    g = _gate_elems(decay, write, K, V)
    io = s * (2 * K + 2 * V + g)  # q, k, v, gates in; y out
    dec = 0 if decay == "none" else VK
    corr = {"none": 0, "delta": 2 * VK, "oja": 2 * VK, "bcm": 2 * VK if bcm_output else 0}
    step = 2 * VK + dec + corr[correction]  # the update W_{t-1} -> W_t
    if not backward:
        if mode == "chunk":
            fl = 4 * bt * K * V + 2 * bt * bt * (K + V)  # Q W^T, U^T K; Q K^T, A U
            if correction == "delta":
                fl += 2 * bt * K * V + 2 * bt * bt * (K + V) + 2 * bt**3  # K W^T; KK^T, T U; T
            if decay in ("pre", "post"):
                fl += 4 * bt * bt * (K if decay == "pre" else V)  # elementwise intra-chunk decay
            unit = "tf32_tensor_flops" if s == 2 else "fp32_cuda_core_flops"
            return Cost(bytes=io, flops=fl / bt, unit=unit)
        return Cost(bytes=io, flops=step + 2 * VK, unit="fp32_cuda_core_flops")
    # backward: replay (step) + recompute (step) + adjoint of the readout (dW += dy q, dq) and
    # of the step (dW k, dW^T x, the decay's <G, W_{t-1}> and D^T G, the correction's terms)
    adj = 4 * VK + 4 * VK + (3 * VK if decay != "none" else 0)
    adj += {"none": 0, "delta": 4 * VK, "oja": 8 * VK, "bcm": 4 * VK if bcm_output else 0}[
        correction]
    byt = s * (2 * K + 2 * V + g) + 4 * (2 * K + V + g)  # inputs + dy; fp32 dq, dk, dv, dgates
    byt += 4 * VK / seg  # the checkpoint read
    return Cost(bytes=byt, flops=2 * step + adj, unit="fp32_cuda_core_flops")


def spiking_cost(n_pre: int, n_post: int, fp64: bool = False, n_gaba: int = 0,
                 gaba_plastic: bool = False) -> Cost:
    """The fused spiking projection per step and instance: spikes in and out (1 byte each),
    about ``10 n_post n_pre`` flops (transmission ``2``, ``on_pre`` and ``on_post`` ``4`` each)
    on CUDA cores (fp64 at half the fp32 rate); a GABA input of ``n_gaba`` sources adds its
    spikes (``n_gaba`` bytes) and its transmission (``2 n_post n_gaba`` flops), and with
    inhibitory STDP (``gaba_plastic``) its dense ``on_pre`` and ``on_post`` (``8 n_post
    n_gaba``)."""
    unit = "fp32_cuda_core_flops"
    fl = 10.0 * n_post * n_pre + (10.0 if gaba_plastic else 2.0) * n_post * n_gaba
    return Cost(bytes=float(n_pre + n_gaba + n_post), flops=fl * (2.0 if fp64 else 1.0),
                unit=unit)


def bound_seconds(cost: Cost, B: int, T: int, H: int, hw: dict = H100) -> float:
    """The roofline time of a launch over ``B * H`` instances of ``T`` steps."""
    return cost.bound(B * T * H, hw)
