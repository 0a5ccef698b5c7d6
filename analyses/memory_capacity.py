"""Key-value memory in fast weights: capacity, Box 3's repeated pair, forgetting under decay.

``python -m synaptic_fwp.analyses.memory_capacity [--quick] [--out DIR]``

Model: :class:`synaptic_fwp.models.kv_memory.KeyValueMemory` (random unit keys in ``N``
dimensions, random unit values).

1. **Capacity**: recall error ``||W k_p - v_p||^2 / ||v_p||^2`` averaged over the ``P`` stored
   pairs against the load ``P/N`` for hebbian, delta (``eta = 1``), oja (``eta = 1``) and retnet
   (``lambda = 0.95``), with the Hebbian crosstalk theory ``(P - 1)/N``.
2. **Box 3**: a memory holding ``P = N/4`` pairs is shown pair 0 a second time: its recall error
   before and after, hebbian (the stored value doubles) against delta (unchanged). Also the
   Primer's one-hot example: ``W_2 k = 2 v`` (hebbian) and ``v`` (delta).
3. **Forgetting**: the gain ``v_0 . W k_0`` of the first pair after ``n`` further writes, for
   retnet with several ``lambda`` (theory ``lambda^n``) and for the delta rule (theory
   ``(1 - 1/N)^n``: each later write removes the component along its random unit key).
"""

from __future__ import annotations

import numpy as np
import torch
import xarray as xr
from synaptic_fwp.models.kv_memory import (
    KeyValueMemory,
    hebbian_crosstalk_error,
    random_pairs,
    relative_error,
)

from ._study import main, new_figure

NAME = "memory_capacity"
CAPACITY_RULES = {
    "hebbian": {},
    "delta": {"eta": 1.0},
    "oja": {"eta": 1.0},
    "retnet": {"decay": 0.95},
}


def capacity_curves(
    N: int, P_max: int, stride: int, trials: int, seed: int = 0
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Mean relative recall error of all stored pairs after ``P = stride, 2 stride, ...`` writes."""
    g = torch.Generator().manual_seed(seed)
    k, v = random_pairs(trials, P_max, N, N, generator=g)
    loads = np.arange(stride, P_max + 1, stride)
    out = {}
    for name, kw in CAPACITY_RULES.items():
        _, states = KeyValueMemory(name, **kw).write(k, v, stride=stride)
        errs = []
        for j, P in enumerate(loads):
            y = KeyValueMemory.read(states[:, j], k[:, :P])
            errs.append(relative_error(y, v[:, :P]).mean().item())
        out[name] = np.array(errs)
    return loads, out


def run(quick: bool = False, out: str | None = None, N: int | None = None) -> xr.Dataset:
    N = (16 if quick else 64) if N is None else N
    trials = 8 if quick else 64
    stride = max(N // 8, 1)
    P_max = 2 * N
    loads, caps = capacity_curves(N, P_max, stride, trials)
    rules = list(CAPACITY_RULES)

    # Box 3: repeated pair in a loaded memory and the one-hot example
    g = torch.Generator().manual_seed(1)
    P = max(N // 4, 2)
    k, v = random_pairs(trials, P, N, N, generator=g)
    box = np.zeros((2, 2))  # rule x (before, after)
    onehot = np.zeros(2)
    for i, name in enumerate(("hebbian", "delta")):
        mem = KeyValueMemory(name, **CAPACITY_RULES[name])
        W, _ = mem.write(k, v)
        before = relative_error(KeyValueMemory.read(W, k[:, :1]), v[:, :1]).mean().item()
        W2, _ = mem.write(k[:, :1], v[:, :1], W0=W)
        after = relative_error(KeyValueMemory.read(W2, k[:, :1]), v[:, :1]).mean().item()
        box[i] = before, after
        e = torch.tensor([[[0.0, 1.0, 0.0]]], dtype=torch.float64)
        val = torch.tensor([[[0.3, -0.7]]], dtype=torch.float64)
        W1, _ = mem.write(e, val)
        W2, _ = mem.write(e, val, W0=W1)
        onehot[i] = (KeyValueMemory.read(W2, e)[0, 0] @ val[0, 0] / (val**2).sum()).item()

    # forgetting: gain of the first pair after n further writes
    n_after = N * 2
    g = torch.Generator().manual_seed(2)
    k, v = random_pairs(trials, n_after + 1, N, N, generator=g)
    lambdas = np.array([1.0, 0.99, 0.95, 0.9])
    forget_rules = [f"retnet_{lam:g}" for lam in lambdas] + ["delta"]
    gains = np.zeros((len(forget_rules), n_after + 1))
    for i, name in enumerate(forget_rules):
        mem = (
            KeyValueMemory("delta", eta=1.0)
            if name == "delta"
            else KeyValueMemory("retnet", decay=float(lambdas[i]))
        )
        _, states = mem.write(k, v, stride=1)  # (B, n+1, V, K)
        y0 = torch.einsum("bnvk,bk->bnv", states, k[:, 0])
        gains[i] = torch.einsum("bnv,bv->bn", y0, v[:, 0]).mean(0).numpy()
    theory = np.array([lam ** np.arange(n_after + 1) for lam in lambdas])
    # delta rule (eta = 1, unit keys): each later write projects out its key, E[k k^T] = I / N
    theory_delta = (1 - 1 / N) ** np.arange(n_after + 1)

    ds = xr.Dataset(
        {
            "recall_error": (
                ("rule", "load_ratio"),
                np.stack([caps[r] for r in rules]),
                {"units": "1", "long_name": "mean ||W k - v||^2 / ||v||^2 over stored pairs"},
            ),
            "hebbian_theory": (
                ("load_ratio",),
                np.asarray(hebbian_crosstalk_error(loads.astype(float), N)),
                {"units": "1", "long_name": "Hebbian crosstalk theory (P - 1)/N"},
            ),
            "box3_error": (
                ("box3_rule", "presentation"),
                box,
                {"units": "1", "long_name": "recall error of pair 0 before/after showing it again"},
            ),
            "box3_onehot_gain": (
                ("box3_rule",),
                onehot,
                {
                    "units": "1",
                    "long_name": "v . W_2 k / ||v||^2 after two presentations (one-hot k)",
                },
            ),
            "forgetting_gain": (
                ("forget_rule", "n_after"),
                gains,
                {"units": "1", "long_name": "mean v_0 . W_n k_0 after n further writes"},
            ),
            "forgetting_theory_delta": (
                ("n_after",),
                theory_delta,
                {"units": "1", "long_name": "(1 - 1/N)^n (delta rule, eta = 1, random unit keys)"},
            ),
            "forgetting_theory": (
                ("decay", "n_after"),
                theory,
                {"units": "1", "long_name": "lambda^n (Hebbian with scalar decay)"},
            ),
        },
        coords={
            "rule": rules,
            "load_ratio": ("load_ratio", loads / N, {"units": "1", "long_name": "load P/N"}),
            "box3_rule": ["hebbian", "delta"],
            "presentation": ["once", "twice"],
            "forget_rule": forget_rules,
            "decay": ("decay", lambdas, {"units": "1", "long_name": "retnet lambda"}),
            "n_after": np.arange(n_after + 1),
        },
        attrs={
            "analysis": NAME,
            "quick": int(quick),
            "N": N,
            "trials": trials,
            "box3_P": P,
            "rule_params": str(CAPACITY_RULES),
            "source": "Irie & Gershman Primer Box 3; Kohonen 1972; Widrow & Hoff 1960",
        },
    )
    return ds


def summary(ds: xr.Dataset) -> str:
    half = ds.recall_error.sel(load_ratio=0.5, method="nearest")
    one = ds.recall_error.sel(load_ratio=1.0, method="nearest")
    lines = [
        "recall error at P/N=0.5: "
        + ", ".join(f"{r} {float(half.sel(rule=r)):.3f}" for r in ds.rule.values)
        + f" (theory {float(ds.hebbian_theory.sel(load_ratio=0.5, method='nearest')):.3f})",
        "recall error at P/N=1: "
        + ", ".join(f"{r} {float(one.sel(rule=r)):.3f}" for r in ds.rule.values),
        "Box 3 (pair 0 shown twice) error once/twice: "
        + ", ".join(
            f"{r} {float(ds.box3_error.sel(box3_rule=r)[0]):.3f}/"
            f"{float(ds.box3_error.sel(box3_rule=r)[1]):.3f}"
            for r in ds.box3_rule.values
        )
        + "; one-hot gain "
        + ", ".join(
            f"{r} {float(ds.box3_onehot_gain.sel(box3_rule=r)):.2f}" for r in ds.box3_rule.values
        ),
        "forgetting gain after N writes: "
        + ", ".join(
            f"{r} {float(ds.forgetting_gain.sel(forget_rule=r)[ds.attrs['N']]):.3f}"
            for r in ds.forget_rule.values
        ),
    ]
    return "\n".join(lines)


def figure(ds: xr.Dataset):
    fig, axes = new_figure(1, 3, 180, 60)
    ax = axes[0, 0]
    for r in ds.rule.values:
        ax.plot(ds.load_ratio, ds.recall_error.sel(rule=r), "o-", label=str(r))
    ax.plot(ds.load_ratio, ds.hebbian_theory, "k--", label="Hebbian theory (P-1)/N")
    ax.set(
        xlabel="load P/N",
        ylabel="recall error ||Wk-v||²/||v||²",
        yscale="log",
        title=f"capacity, N = {ds.attrs['N']}",
    )
    ax.legend(frameon=False)
    ax = axes[0, 1]
    xs = np.arange(2)
    for i, r in enumerate(ds.box3_rule.values):
        ax.bar(xs + 0.35 * i, ds.box3_error.sel(box3_rule=r), 0.35, label=str(r))
    ax.set_xticks(xs + 0.175, ["shown once", "shown twice"])
    ax.set(
        ylabel="recall error of the pair", title=f"Box 3: repeated pair (P = {ds.attrs['box3_P']})"
    )
    ax.legend(frameon=False)
    ax = axes[0, 2]
    n = ds.n_after.values
    for r in ds.forget_rule.values:
        ax.plot(n, ds.forgetting_gain.sel(forget_rule=r), label=str(r))
    for lam in ds.decay.values:
        ax.plot(n, ds.forgetting_theory.sel(decay=lam), "k:", lw=0.8)
    ax.plot(n, ds.forgetting_theory_delta, "k--", lw=0.8)
    ax.set(
        xlabel="further writes n", ylabel="gain v₀·W k₀", title="forgetting (theory: λⁿ, (1-1/N)ⁿ)"
    )
    ax.legend(frameon=False)
    return fig


if __name__ == "__main__":
    main(NAME, run, figure, summary=summary)
