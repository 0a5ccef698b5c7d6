"""In-context linear regression: the Box 2 construction is one step of gradient descent, and a
vanilla FWP meta-trained on random regression tasks approaches it.

``python -m synaptic_fwp.analyses.in_context_regression [--quick] [--out DIR]``

Tasks: ``f(z) = w^T z`` with ``w ~ N(0, I_{d_x})``, ``z ~ N(0, I_{d_x})``, ``T`` demonstrations
``x_t = [z_t, f(z_t)]`` and one query ``[z*, 0]``.

1. **Construction** (Primer Box 2, von Oswald et al. 2023; :mod:`synaptic_fwp.sequence.box2`): the
   vanilla FWP with the Eq. 26 slow weights predicts exactly ``(W_0 - eta grad L(W_0)) z*``; the
   largest deviation from :func:`~synaptic_fwp.sequence.box2.gd_one_step` over random tasks. The
   learning rate is set to the best single step for this task distribution, ``eta* = E[a y*] /
   E[a^2]`` with ``a = sum_t f(z_t) z_t^T z*`` (``W_0 = 0``), estimated on held-out tasks.
2. **Meta-training**: a vanilla (Hebbian, identity ``phi``, one head) FWP with free slow weights
   ``W^Q, W^K, W^V`` (``d x d``, ``d = d_x + 1``) and a linear read-out, trained by
   backpropagation through :func:`synaptic_fwp.scan` to predict ``f(z*)`` (mean squared error).
   Reported on fresh tasks: the relative distance of its predictions from the construction's,
   ``E(p_FWP - p_GD)^2 / E p_GD^2``, and the test losses of the trained FWP, of one GD step
   (``eta*``), of least squares on the demonstrations, and of predicting 0.
"""

from __future__ import annotations

import numpy as np
import torch
import xarray as xr
from torch import nn

from synaptic_fwp import scan
from synaptic_fwp.sequence.box2 import box2_predict, gd_one_step

from ._study import main, new_figure

NAME = "in_context_regression"


def tasks(n: int, T: int, d_x: int, g: torch.Generator, dtype=torch.float64):
    """``z (n, T, d_x)``, ``fz (n, T, 1)``, query ``zq (n, 1, d_x)`` and target ``yq (n, 1, 1)``."""
    w = torch.randn(n, d_x, 1, generator=g, dtype=dtype)
    z = torch.randn(n, T, d_x, generator=g, dtype=dtype)
    zq = torch.randn(n, 1, d_x, generator=g, dtype=dtype)
    return z, z @ w, zq, zq @ w


def best_eta(z: torch.Tensor, fz: torch.Tensor, zq: torch.Tensor, yq: torch.Tensor) -> float:
    """The single GD step size minimising the query error over the given tasks (``W_0 = 0``)."""
    a = gd_one_step(z, fz, eta=1.0) @ zq.transpose(1, 2)  # (n, 1, 1): sum_t f z^T z*
    return float((a * yq.transpose(1, 2)).sum() / (a * a).sum())


class VanillaFWP(nn.Module):
    """One-head Hebbian FWP with identity ``phi``: ``p* = r^T y*``, ``y* = W_T q*``."""

    def __init__(self, d: int, init_scale: float = 0.1) -> None:
        super().__init__()
        self.WQ = nn.Parameter(init_scale * torch.randn(d, d, dtype=torch.float64))
        self.WK = nn.Parameter(init_scale * torch.randn(d, d, dtype=torch.float64))
        self.WV = nn.Parameter(init_scale * torch.randn(d, d, dtype=torch.float64))
        self.r = nn.Parameter(init_scale * torch.randn(d, 1, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = (x @ self.WQ.T).unsqueeze(2)
        k = (x @ self.WK.T).unsqueeze(2)
        v = (x @ self.WV.T).unsqueeze(2)
        y, _ = scan(q, k, v, "hebbian", backend="recurrent")
        return y[:, -1:, 0] @ self.r  # prediction at the query token (B, 1, 1)


def _tokens(z, fz, zq):
    return torch.cat(
        [torch.cat([z, fz], -1), torch.cat([zq, torch.zeros_like(zq[..., :1])], -1)], 1
    )


def run(quick: bool = False, out: str | None = None, seed: int = 0) -> xr.Dataset:
    d_x, T = (3, 8) if quick else (4, 16)
    steps = 300 if quick else 3000
    batch = 128 if quick else 256
    n_test = 1024 if quick else 8192
    g = torch.Generator().manual_seed(seed)

    # 1. the construction equals one GD step
    z, fz, zq, yq = tasks(n_test, T, d_x, g)
    eta = best_eta(z, fz, zq, yq)
    z, fz, zq, yq = tasks(n_test, T, d_x, g)
    W0 = 0.1 * torch.randn(n_test, 1, d_x, generator=g, dtype=torch.float64)
    p_box = box2_predict(z, fz, zq, W0, eta=eta, backend="recurrent")
    p_gd = gd_one_step(z, fz, W0, eta=eta) @ zq.transpose(1, 2)
    box2_err = float((p_box - p_gd.transpose(1, 2)).abs().max())

    # 2. meta-train a vanilla FWP
    torch.manual_seed(seed)
    net = VanillaFWP(d_x + 1)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    losses = np.zeros(steps)
    gt = torch.Generator().manual_seed(seed + 1)
    for i in range(steps):
        zb, fb, qb, yb = tasks(batch, T, d_x, gt)
        loss = ((net(_tokens(zb, fb, qb)) - yb) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses[i] = loss.item()

    z, fz, zq, yq = tasks(n_test, T, d_x, torch.Generator().manual_seed(seed + 2))
    with torch.no_grad():
        p_fwp = net(_tokens(z, fz, zq))
    p_gd0 = box2_predict(z, fz, zq, eta=eta, backend="recurrent")  # construction, W0 = 0
    sol = torch.linalg.lstsq(z, fz).solution  # (n, d_x, 1)
    p_ls = zq @ sol
    mse = {
        "fwp_trained": float(((p_fwp - yq) ** 2).mean()),
        "gd_construction": float(((p_gd0 - yq) ** 2).mean()),
        "least_squares": float(((p_ls - yq) ** 2).mean()),
        "zero": float((yq**2).mean()),
    }
    rel = float(((p_fwp - p_gd0) ** 2).mean() / (p_gd0**2).mean())
    cos = float((p_fwp * p_gd0).sum() / (p_fwp.norm() * p_gd0.norm()))
    names = list(mse)
    return xr.Dataset(
        {
            "test_mse": (
                ("predictor",),
                [mse[k] for k in names],
                {"units": "1", "long_name": "query mean squared error on fresh tasks"},
            ),
            "train_loss": (("step",), losses, {"units": "1", "long_name": "meta-training MSE"}),
            "pred_fwp": (
                ("task",),
                p_fwp.reshape(-1)[:512].numpy(),
                {"units": "1", "long_name": "trained FWP prediction"},
            ),
            "pred_gd": (
                ("task",),
                p_gd0.reshape(-1)[:512].numpy(),
                {"units": "1", "long_name": "Box 2 construction (one GD step) prediction"},
            ),
            "target": (
                ("task",),
                yq.reshape(-1)[:512].numpy(),
                {"units": "1", "long_name": "f(z*)"},
            ),
        },
        coords={"predictor": names, "step": np.arange(steps), "task": np.arange(512)},
        attrs={
            "analysis": NAME,
            "quick": int(quick),
            "d_x": d_x,
            "d_y": 1,
            "T_demos": T,
            "steps": steps,
            "batch": batch,
            "eta_star": eta,
            "box2_max_abs_error": box2_err,
            "fwp_vs_gd_relative_sq_distance": rel,
            "fwp_vs_gd_cosine": cos,
            "source": "Irie & Gershman Primer Box 2; von Oswald et al. 2023 (ICML)",
        },
    )


def summary(ds: xr.Dataset) -> str:
    a = ds.attrs
    mse = ", ".join(f"{p} {float(ds.test_mse.sel(predictor=p)):.4f}" for p in ds.predictor.values)
    return (
        f"Box 2 construction vs one GD step: max |diff| {a['box2_max_abs_error']:.2e} (eta* = "
        f"{a['eta_star']:.4f}); trained FWP vs construction: relative squared distance "
        f"{a['fwp_vs_gd_relative_sq_distance']:.4f}, cosine {a['fwp_vs_gd_cosine']:.4f}; "
        f"test MSE: {mse}"
    )


def figure(ds: xr.Dataset):
    fig, axes = new_figure(1, 3, 180, 58)
    ax = axes[0, 0]
    ax.plot(ds.step, ds.train_loss, lw=0.6, color="grey", label="trained FWP (batch)")
    for p, c in (("gd_construction", "C0"), ("zero", "k")):
        ax.axhline(float(ds.test_mse.sel(predictor=p)), color=c, ls="--", lw=0.8, label=p)
    top = 1.3 * float(ds.test_mse.sel(predictor="zero"))
    ax.set(xlabel="meta-training step", ylabel="query MSE", ylim=(0, top), title="meta-training")
    ax.legend(frameon=False)
    ax = axes[0, 1]
    ax.scatter(ds.pred_gd, ds.pred_fwp, s=2, alpha=0.5)
    lim = float(np.abs(ds.pred_gd).max())
    ax.plot([-lim, lim], [-lim, lim], "k:", lw=0.8)
    ax.set(
        xlabel="Box 2 construction (one GD step)",
        ylabel="trained FWP",
        title=f"rel. sq. distance {ds.attrs['fwp_vs_gd_relative_sq_distance']:.2g}",
    )
    ax = axes[0, 2]
    ax.bar(range(ds.sizes["predictor"]), ds.test_mse)
    ax.set_xticks(range(ds.sizes["predictor"]), list(ds.predictor.values), rotation=30, ha="right")
    ax.set(ylabel="test MSE", title=f"d_x = {ds.attrs['d_x']}, T = {ds.attrs['T_demos']} demos")
    return fig


if __name__ == "__main__":
    main(NAME, run, figure, summary=summary)
