"""Expressivity of FWP rules (Primer Sec. 3.6): parity and modular addition.

``python -m synaptic_fwp.analyses.expressivity [--quick] [--out DIR]``

One FWP layer (:class:`synaptic_fwp.models.fwp_layer.FWPClassifier`: embedding, one
:class:`~synaptic_fwp.models.fwp_layer.FWPLayer`, *linear* per-step readout) is trained by
backpropagation through the scan to output, at every step, the running parity of a random bit
string (``sum x mod 2``) or the running sum modulo 3 of random tokens in ``{0, 1, 2}``; it is
tested on fresh sequences of the training length. Models:

- ``delta (0,2)``: the delta rule with ``eta = 2 sigmoid(beta)``: its transition ``I - eta k k^T``
  (unit keys from the ``silu_l2`` feature map) has eigenvalues in ``(-1, 1]`` (a reflection at
  ``eta = 2``);
- ``delta (0,1)``: ``eta = sigmoid(beta)``, eigenvalues in ``[0, 1]``;
- ``retnet``, ``mamba2``, ``gla``: diagonal transitions with positive entries;
- for modular addition also ``deltaproduct2 (0,2)``/``(0,1)``: each token presented twice
  (DeltaProduct_2, Siems et al. 2025), so a token's transition is a product of two reflections
  (a rotation), which a cyclic group of order 3 needs.

Headline: accuracy at the last step and over all steps, per task and model (chance 1/2 and 1/3).
"""

from __future__ import annotations

import time

import numpy as np
import torch
import xarray as xr
from synaptic_fwp.models.fwp_layer import FWPClassifier
from torch import nn

from ._study import main, new_figure

NAME = "expressivity"

MODELS = {
    "delta (0,2)": {"rule": "delta", "eta_range": "(0,2)"},
    "delta (0,1)": {"rule": "delta", "eta_range": "(0,1)"},
    "retnet": {"rule": "retnet"},
    "mamba2": {"rule": "mamba2"},
    "gla": {"rule": "gla"},
    "deltaproduct2 (0,2)": {"rule": "delta", "eta_range": "(0,2)", "micro_steps": 2},
    "deltaproduct2 (0,1)": {"rule": "delta", "eta_range": "(0,1)", "micro_steps": 2},
}
DIAGONAL = ("retnet", "mamba2", "gla")
TASKS = {"parity": 2, "mod3_addition": 3}


def make_batch(
    n: int, T: int, modulus: int, g: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Tokens ``(n, T)`` uniform in ``[0, modulus)`` and running sums mod ``modulus``."""
    x = torch.randint(0, modulus, (n, T), generator=g)
    return x, torch.cumsum(x, 1) % modulus


def train_one(
    task: str,
    model: str,
    T: int,
    steps: int,
    batch: int = 64,
    lr: float = 3e-3,
    d_model: int = 16,
    seed: int = 0,
    n_test: int = 2048,
    backend: str = "chunk",
) -> dict[str, object]:
    """Train one model on one task; return test accuracies, the loss curve and the time."""
    m = TASKS[task]
    spec = dict(MODELS[model])
    micro = int(spec.pop("micro_steps", 1))
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed + 1000)
    net = FWPClassifier(
        m,
        m,
        d_model=d_model,
        micro_steps=micro,
        n_heads=1,
        backend=backend,
        chunk_size=max(T * micro, 1),
        **spec,
    )
    opt = torch.optim.Adam(net.parameters(), lr)
    losses = np.zeros(steps)
    t0 = time.perf_counter()
    for i in range(steps):
        x, y = make_batch(batch, T, m, g)
        loss = nn.functional.cross_entropy(net(x).reshape(-1, m), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses[i] = loss.item()
    elapsed = time.perf_counter() - t0
    x, y = make_batch(n_test, T, m, torch.Generator().manual_seed(seed + 2000))
    with torch.no_grad():
        p = net(x).argmax(-1)
    return {
        "acc_last": float((p[:, -1] == y[:, -1]).double().mean()),
        "acc_all": float((p == y).double().mean()),
        "loss": losses,
        "seconds": elapsed,
    }


def run(
    quick: bool = False,
    out: str | None = None,
    tasks: tuple[str, ...] | None = None,
    T: int | None = None,
    steps: int | None = None,
) -> xr.Dataset:
    """Train every model on every task. ``quick``: parity only, 150 steps."""
    tasks = (("parity",) if quick else tuple(TASKS)) if tasks is None else tasks
    T = 16 if T is None else T
    steps_of = {"parity": 150 if quick else 600, "mod3_addition": 1200}
    if steps is not None:
        steps_of = dict.fromkeys(steps_of, steps)
    models = list(MODELS) if not quick else [k for k in MODELS if "product" not in k]
    nsteps = max(steps_of[t] for t in tasks)
    acc_last = np.full((len(tasks), len(models)), np.nan)
    acc_all = np.full_like(acc_last, np.nan)
    secs = np.full_like(acc_last, np.nan)
    loss = np.full((len(tasks), len(models), nsteps), np.nan)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: one thread is fastest and polite on shared CPUs
    try:
        for i, task in enumerate(tasks):
            for j, model in enumerate(models):
                if task == "parity" and "product" in model:
                    continue  # parity needs one reflection per token; shown by 'delta (0,2)'
                r = train_one(task, model, T, steps_of[task])
                acc_last[i, j], acc_all[i, j], secs[i, j] = (
                    r["acc_last"],
                    r["acc_all"],
                    r["seconds"],
                )
                loss[i, j, : len(r["loss"])] = r["loss"]
    finally:
        torch.set_num_threads(threads)
    return xr.Dataset(
        {
            "acc_last": (
                ("task", "model"),
                acc_last,
                {"units": "1", "long_name": "test accuracy at the last step"},
            ),
            "acc_all": (
                ("task", "model"),
                acc_all,
                {"units": "1", "long_name": "test accuracy over all steps"},
            ),
            "train_seconds": (
                ("task", "model"),
                secs,
                {"units": "s", "long_name": "training wall time"},
            ),
            "train_loss": (
                ("task", "model", "step"),
                loss,
                {"units": "nat", "long_name": "training cross-entropy"},
            ),
        },
        coords={"task": list(tasks), "model": models, "step": np.arange(nsteps)},
        attrs={
            "analysis": NAME,
            "quick": int(quick),
            "T": T,
            "d_model": 16,
            "n_heads": 1,
            "batch": 64,
            "lr": 3e-3,
            "steps": str(steps_of),
            "phi": "silu_l2",
            "readout": "linear",
            "source": "Irie & Gershman Primer Sec. 3.6; Grazzi et al. 2025; Siems et al. 2025",
        },
    )


def summary(ds: xr.Dataset) -> str:
    lines = []
    for t in ds.task.values:
        s = ds.sel(task=t)
        lines.append(
            f"{t} (T={ds.attrs['T']}): "
            + ", ".join(
                f"{m} {float(s.acc_last.sel(model=m)):.3f}/{float(s.acc_all.sel(model=m)):.3f}"
                for m in ds.model.values
                if np.isfinite(float(s.acc_last.sel(model=m)))
            )
            + "  (last-step / all-steps accuracy)"
        )
    return "\n".join(lines)


def figure(ds: xr.Dataset):
    fig, axes = new_figure(1, 1 + len(ds.task), 180, 60)
    ax = axes[0, 0]
    models = list(ds.model.values)
    w = 0.8 / len(ds.task)
    for i, t in enumerate(ds.task.values):
        ax.bar(np.arange(len(models)) + i * w, ds.acc_last.sel(task=t), w, label=str(t))
    for i, t in enumerate(ds.task.values):
        ax.axhline(1 / (2 if t == "parity" else 3), color=f"C{i}", ls=":", lw=0.8)
    ax.set_xticks(
        np.arange(len(models)) + w * (len(ds.task) - 1) / 2, models, rotation=45, ha="right"
    )
    ax.set(
        ylabel="test accuracy, last step",
        ylim=(0, 1.3),
        title=f"T = {ds.attrs['T']} (dotted: chance)",
    )
    ax.legend(frameon=False, loc="upper center", ncol=2)
    for i, t in enumerate(ds.task.values):
        ax = axes[0, 1 + i]
        for m in models:
            curve = ds.train_loss.sel(task=t, model=m).values
            if np.isfinite(curve).any():
                ax.plot(curve, label=m, lw=0.8)
        ax.set(xlabel="training step", ylabel="cross-entropy (nat)", yscale="log", title=str(t))
        ax.legend(frameon=False, fontsize=5)
    return fig


if __name__ == "__main__":
    main(NAME, run, figure, summary=summary)
