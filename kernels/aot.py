"""Compile the kernels for a GPU target without a GPU (ahead of time), to catch errors that the
CPU interpreter cannot see (typing, layouts, shared memory) on machines without CUDA.

``python -m synaptic_fwp.kernels.aot [--all] [--arch 90]`` compiles the kernel variants down to a
cubin with the ``ptxas`` shipped in the Triton wheel and prints one line per variant with its
shared-memory use; the exit status is 1 if any variant fails. Must run with ``TRITON_INTERPRET``
unset (the kernels are decorated for compilation then).
"""

from __future__ import annotations

import argparse
import os
import sys

__all__ = ["variants", "compile_variant", "main"]

_IO = ("q_ptr", "k_ptr", "v_ptr", "eta_ptr", "lam_ptr", "gate_ptr", "w0_ptr", "y_ptr", "wT_ptr",
       "st_ptr")


def variants(full: bool = False) -> list[tuple[str, str, dict, dict]]:
    """``(label, kernel name, constexprs, pointer types)`` for the variants to compile;
    ``full=False`` gives one representative of each kernel (for the test suite)."""
    bf = {n: "*bf16" for n in _IO}
    out = []
    rec = [(0, 0, 0, 0, 0), (1, 1, 1, 1, 0), (1, 1, 1, 0, 0), (2, 0, 0, 0, 0), (3, 0, 0, 0, 0),
           (0, 2, 1, 0, 0), (0, 3, 1, 0, 1), (0, 3, 1, 0, 0), (1, 0, 2, 0, 0)]
    for i, (d, c, w, df, bo) in enumerate(rec):
        if not full and i != 1:
            continue
        flags = dict(DECAY=d, CORR=c, WRITE=w, DECAY_FIRST=df, BCM_OUT=bo, STRIDE=4, SEG=16,
                     BK=64, BV=32)
        out.append((f"recurrent_fwd {flags}", "recurrent_fwd_kernel",
                    {**flags, "SAVE_CK": True}, bf))
        out.append((f"recurrent_bwd {flags}", "recurrent_bwd_kernel",
                    {**flags, "HAS_DST": True}, bf))
    ch = [(0, 0, 0, 0), (1, 0, 1, 0), (1, 1, 1, 1), (1, 1, 1, 0), (1, 0, 2, 0), (0, 1, 1, 0)]
    for i, (d, delta, w, df) in enumerate(ch):
        for ieee in (True, False):
            if not full and (i != 2 or ieee):
                continue
            flags = dict(DECAY=d, DELTA=delta, WRITE=w, DECAY_FIRST=df, STRIDE=64, SAVE_CK=True,
                         CK=16, IEEE=ieee, BT=64, BK=64, BV=64)
            out.append((f"chunk_scalar {flags}", "chunk_scalar_fwd_kernel", flags, bf))
    for side in (2, 3):
        if not full and side == 2:
            continue
        flags = dict(SIDE=side, WRITE=0, STRIDE=16, SAVE_CK=True, IEEE=False, BT=16, BK=64, BV=32)
        out.append((f"chunk_vector {flags}", "chunk_vector_fwd_kernel", flags, bf))
    pt = {"pre_ptr": "*u8", "prei_ptr": "*u8", "spk_ptr": "*u8", "ref_ptr": "*i64"}
    pt.update({n: "*fp64" for n in ("lif_ptr", "rule_ptr", "w_ptr", "v_ptr", "ga_ptr", "o1_ptr",
                                    "o2_ptr", "r1_ptr", "r2_ptr", "wad_ptr", "wi_ptr", "gg_ptr",
                                    "rulei_ptr", "xi_ptr", "yi_ptr")})
    # (FIXED, HAS_REF, NEAREST, BOUNDS, TRIPLET, ADEX, GABA: 0 none / 1 static / 2 inhibitory
    # STDP); AdEx neurons in 3 and 4; the two the test suite compiles (1, 3) carry GABA input,
    # plastic in 1
    lif = [(1, 1, 0, 1, 0, 0, 0), (0, 0, 1, 2, 1, 0, 2), (0, 1, 0, 0, 1, 0, 0),
           (0, 0, 0, 1, 1, 1, 1), (1, 1, 0, 0, 0, 1, 0), (1, 0, 0, 1, 0, 0, 2)]
    for i, (fx, hr, ne, bo, tr, ad, gb) in enumerate(lif):
        if not full and i not in (1, 3):
            continue
        flags = dict(FIXED=fx, HAS_REF=hr, NEAREST=ne, BOUNDS=bo, TRIPLET=tr, BP=16, BN=256,
                     ADEX=ad, Z_MAX=30.0, GABA=gb > 0, BNI=64 if gb else 1, GABA_RULE=gb == 2,
                     NEAREST_I=i == 1, BOUNDS_I=1 if i == 1 else 0)
        out.append((f"lif_stdp {flags}", "lif_stdp_kernel", flags, pt))
    return out


def compile_variant(kernel: str, constexprs: dict, ptr_types: dict, arch: int = 90):
    """Compile one variant for ``sm_<arch>``; returns Triton's compiled kernel object."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from . import chunk, recurrent, spiking

    fn = next(getattr(m, kernel) for m in (recurrent, chunk, spiking) if hasattr(m, kernel))
    sig = {}
    for name in fn.arg_names:
        if name in constexprs:
            sig[name] = "constexpr"
        elif name in ptr_types:
            sig[name] = ptr_types[name]
        elif name.endswith("_ptr"):
            sig[name] = "*fp32"
        elif name in ("theta0", "theta_l"):
            sig[name] = "fp32"
        else:
            sig[name] = "i32"
    return triton.compile(ASTSource(fn, sig, constexprs), target=GPUTarget("cuda", arch, 32))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--all", action="store_true", help="every variant (default: one per kernel)")
    p.add_argument("--arch", type=int, default=90, help="compute capability, e.g. 80, 90")
    a = p.parse_args(argv)
    if os.environ.get("TRITON_INTERPRET") == "1":
        print("unset TRITON_INTERPRET to compile the kernels", file=sys.stderr)
        return 2
    bad = 0
    for label, kernel, flags, pt in variants(a.all):
        try:
            k = compile_variant(kernel, flags, pt, a.arch)
            print(f"ok    sm_{a.arch} shared={k.metadata.shared:>6} B  {label}")
        except Exception as exc:  # noqa: BLE001 - report every failure, then exit 1
            bad += 1
            print(f"FAIL  sm_{a.arch} {label}: {type(exc).__name__}: {exc}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
