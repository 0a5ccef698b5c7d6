"""BCM selectivity: a rate neuron with a sliding threshold becomes selective to one pattern.

``python -m synaptic_fwp.analyses.bcm_selectivity [--quick] [--out DIR]``

Model: :class:`synaptic_fwp.models.bcm_neuron.BCMNeuron` (linear rate neuron, catalogue rule
``bcm`` with ``drive="output"``). ``P = 4`` random positive unit-norm patterns of ``n_in = 20``
inputs are presented in random order (uniform), one per step, to a batch of neurons with small
random initial weights. Measured:

- selectivity ``1 - mean_p r_p / max_p r_p`` of the responses ``r_p = w . x_p`` (Bienenstock et
  al. 1982): 0 unselective, ``1 - 1/P = 0.75`` responding to one pattern only;
- the winner's response against the selective fixed point: with responses ``(y*, 0, ..., 0)``
  the weights stop moving when ``y* = E[theta_t | winner shown]``; the catalogue rule updates
  the threshold with the current ``y`` before the weight step, so ``theta_t = lambda
  theta_{t-1} + (1 - lambda) y*^2`` with ``E[theta_{t-1}] = y*^2 / P``, giving
  ``y* = 1 / (lambda / P + 1 - lambda)`` (``= P`` for a slow threshold, ``lambda -> 1``);
- the threshold against ``E_p[y^2] = mean_p r_p^2`` (what it tracks), over time.
"""

from __future__ import annotations

import numpy as np
import torch
import xarray as xr
from synaptic_fwp.models.bcm_neuron import BCMNeuron, selectivity

from ._study import main, new_figure

NAME = "bcm_selectivity"


def run(quick: bool = False, out: str | None = None, seed: int = 0) -> xr.Dataset:
    P, n_in = 4, 20
    B = 8 if quick else 32
    T = 5000 if quick else 20000
    eta = 0.02
    theta_decay = 0.95
    every = 20 if quick else 100
    g = torch.Generator().manual_seed(seed)
    pats = torch.rand(P, n_in, generator=g, dtype=torch.float64)
    pats = pats / pats.norm(dim=1, keepdim=True)
    w0 = 0.5 * torch.rand(B, n_in, generator=g, dtype=torch.float64)
    order = torch.randint(0, P, (B, T), generator=g)
    res = BCMNeuron(eta=eta, theta_decay=theta_decay).run(pats, w0, order, record_every=every)
    r = res["responses"]  # (B, T', P)
    ey2 = (r**2).mean(-1)
    sel = selectivity(r)
    half = r.shape[1] // 2
    theta = res["theta"]
    track_err = ((theta[:, half:].mean(1) - ey2[:, half:].mean(1)) / ey2[:, half:].mean(1)).numpy()
    winner = r[:, -1].argmax(-1).numpy()
    ds = xr.Dataset(
        {
            "responses": (
                ("neuron", "time", "pattern"),
                r.numpy(),
                {"units": "1", "long_name": "response w . x_p"},
            ),
            "theta": (
                ("neuron", "time"),
                theta.numpy(),
                {"units": "1", "long_name": "sliding threshold (units of y^2)"},
            ),
            "mean_y2": (
                ("neuron", "time"),
                ey2.numpy(),
                {"units": "1", "long_name": "E_p[y^2] = mean_p r_p^2"},
            ),
            "selectivity": (
                ("neuron", "time"),
                sel.numpy(),
                {"units": "1", "long_name": "1 - mean r / max r"},
            ),
            "final_selectivity": (
                ("neuron",),
                sel[:, -1].numpy(),
                {"units": "1", "long_name": "selectivity at the end"},
            ),
            "winner": (
                ("neuron",),
                winner,
                {"units": "1", "long_name": "pattern with the largest final response"},
            ),
            "winner_response": (
                ("neuron",),
                r[:, -1].amax(-1).numpy(),
                {"units": "1", "long_name": "final response to the winning pattern"},
            ),
            "threshold_tracking_error": (
                ("neuron",),
                track_err,
                {"units": "1", "long_name": "(<theta> - <E[y^2]>) / <E[y^2]>, second half"},
            ),
            "patterns": (
                ("pattern", "input"),
                pats.numpy(),
                {"units": "1", "long_name": "input patterns (unit norm)"},
            ),
        },
        coords={
            "neuron": np.arange(B),
            "time": (
                "time",
                np.arange(1, r.shape[1] + 1) * every,
                {"units": "1", "long_name": "presentations"},
            ),
            "pattern": np.arange(P),
            "input": np.arange(n_in),
        },
        attrs={
            "analysis": NAME,
            "quick": int(quick),
            "eta": eta,
            "theta_decay": theta_decay,
            "P": P,
            "n_in": n_in,
            "seed": seed,
            "max_selectivity": 1 - 1 / P,
            "fixed_point_theory": 1 / (theta_decay / P + 1 - theta_decay),
            "source": "Bienenstock, Cooper & Munro 1982 J Neurosci 2:32; Intrator & Cooper 1992",
        },
    )
    return ds


def summary(ds: xr.Dataset) -> str:
    fs = ds.final_selectivity.values
    return (
        f"final selectivity mean {fs.mean():.3f} (max {ds.attrs['max_selectivity']:.2f}), "
        f"fraction > 0.6: {(fs > 0.6).mean():.2f}; winner response {ds.winner_response.mean():.2f} "
        f"+- {ds.winner_response.std():.2f} (theory {ds.attrs['fixed_point_theory']:.2f}); "
        f"threshold tracking error "
        f"{ds.threshold_tracking_error.mean():+.3f} +- {ds.threshold_tracking_error.std():.3f}; "
        f"winners per pattern {np.bincount(ds.winner.values, minlength=ds.attrs['P']).tolist()}"
    )


def figure(ds: xr.Dataset):
    fig, axes = new_figure(1, 3, 180, 55)
    t = ds.time.values
    ax = axes[0, 0]
    for p in ds.pattern.values:
        ax.plot(t, ds.responses.sel(neuron=0, pattern=p), label=f"pattern {p}")
    ax.axhline(ds.attrs["fixed_point_theory"], color="k", ls=":", lw=0.8)
    ax.set(xlabel="presentations", ylabel="response w·x", title="neuron 0 (dotted: fixed point y*)")
    ax.legend(frameon=False)
    ax = axes[0, 1]
    ax.plot(t, ds.theta.sel(neuron=0), label="threshold θ", lw=0.8)
    ax.plot(t, ds.mean_y2.sel(neuron=0), label="E[y²] over patterns")
    ax.set(xlabel="presentations", ylabel="units of y²", title="threshold tracks <y²>")
    ax.legend(frameon=False)
    ax = axes[0, 2]
    ax.plot(t, ds.selectivity.T, color="grey", lw=0.4, alpha=0.6)
    ax.plot(t, ds.selectivity.mean("neuron"), color="k", label="mean")
    ax.axhline(ds.attrs["max_selectivity"], color="k", ls=":", lw=0.8)
    ax.set(
        xlabel="presentations",
        ylabel="selectivity",
        title=f"{ds.sizes['neuron']} neurons",
        ylim=(0, 0.8),
    )
    ax.legend(frameon=False)
    return fig


if __name__ == "__main__":
    main(NAME, run, figure, summary=summary)
