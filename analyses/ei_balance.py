"""Inhibitory plasticity balances excitation: Vogels et al. 2011's detailed balance, emerging.

``python -m synaptic_fwp.analyses.ei_balance [--quick] [--out DIR]``

Model (Vogels, Sprekeler, Zenke, Clopath & Gerstner 2011, Science 334:1569, Fig. 2, reduced to
one neuron per instance): a conductance-based LIF neuron (C = 200 pF, g_L = 10 nS, rest and
reset -60 mV, threshold -50 mV, 5 ms refractory; E_exc = 0, E_inh = -80 mV; synaptic decays 5
and 10 ms) receives 8 signal channels of 100 excitatory and 25 inhibitory Poisson inputs. The
inputs of a channel share its rate, ``5 Hz + 20 Hz [xi_k(t)]_+`` with ``xi_k`` an
Ornstein-Uhlenbeck signal (50 ms, unit variance, sampled every 5 ms; independent per channel and
instance), so excitation and inhibition of a channel are correlated. Excitatory weights are
static and tuned, ``0.14 nS (1.1 + 1.5 exp(-(k - 4)^2 / (2 1.2^2)))`` for channel ``k``;
inhibitory weights start flat at 0.35 nS and follow
:class:`synaptic_fwp.plasticity.InhibitorySTDP` (tau 20 ms, target rate ``rho0 = 5 Hz``; a
learning rate of 0.02 nS, faster than the paper's, so that minutes become seconds).

Measured, per instance, every ``record`` seconds: the output rate (against ``rho0``) and the mean
inhibitory weight of each channel; their correlation with the excitatory tuning across channels
(detailed balance: the paper's co-tuned inhibition). The same network with the rule switched
off (``eta = 0``) gives the rate without balance.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import xarray as xr

from synaptic_fwp.engine import Network
from synaptic_fwp.inputs import PoissonInput
from synaptic_fwp.neurons import LIFPopulation
from synaptic_fwp.plasticity import InhibitorySTDP

from ._study import main, new_figure

NAME = "ei_balance"
CHANNELS, N_EXC, N_INH = 8, 100, 25
RATE_DT = 5e-3  # s, sampling of the channel signals


def tuning(k: np.ndarray | torch.Tensor):
    """Excitatory tuning factor of channel ``k`` (preferred channel 4)."""
    return 1.1 + 1.5 * np.exp(-((np.asarray(k, dtype=float) - 4.0) ** 2) / (2 * 1.2**2))


def channel_rates(T: float, batch: int, seed: int) -> torch.Tensor:
    """``(n_samples, batch, CHANNELS)`` rates (Hz) every :data:`RATE_DT`: ``5 + 20 [xi]_+`` with
    ``xi`` an exact discretisation of a unit-variance Ornstein-Uhlenbeck process (50 ms)."""
    g = torch.Generator().manual_seed(seed)
    n = int(round(T / RATE_DT)) + 1
    a = math.exp(-RATE_DT / 50e-3)
    z = torch.randn(n, batch, CHANNELS, generator=g, dtype=torch.float64)
    xi = torch.empty_like(z)
    xi[0] = z[0]
    for t in range(1, n):
        xi[t] = a * xi[t - 1] + math.sqrt(1 - a * a) * z[t]
    return 5.0 + 20.0 * xi.clamp(min=0.0)


def _network(rates: torch.Tensor, batch: int, eta: float, rho0: float, seed: int) -> Network:
    net = Network(dt=1e-4, batch=batch, seed=seed, dtype=torch.float64)
    exc = net.add(PoissonInput(CHANNELS * N_EXC, rate=rates.repeat_interleave(N_EXC, -1),
                               rate_dt=RATE_DT, name="exc"))
    inh = net.add(PoissonInput(CHANNELS * N_INH, rate=rates.repeat_interleave(N_INH, -1),
                               rate_dt=RATE_DT, name="inh"))
    pop = net.add(LIFPopulation(1, C=200e-12, g_L=10e-9, E_L=-60e-3, V_th=-50e-3,
                                V_reset=-60e-3, t_ref=5e-3, E_ampa=0.0, E_gaba=-80e-3,
                                tau_ampa=5e-3, tau_gaba=10e-3, name="out"))
    We = torch.as_tensor(0.14e-9 * tuning(np.arange(CHANNELS)).repeat(N_EXC))
    net.connect(exc, pop, We.reshape(1, CHANNELS * N_EXC), name="E")
    net.connect(inh, pop, 0.35e-9, InhibitorySTDP(eta=eta, rho0=rho0), name="I", target="gaba")
    return net


def run(quick: bool = False, out: str | None = None, seed: int = 0) -> xr.Dataset:
    """Run the plastic network and the static control; ``quick``: 2 instances, 10 s."""
    B, T, every = (2, 10.0, 1.0) if quick else (4, 60.0, 2.0)
    eta, rho0 = 0.02e-9, 5.0
    rates = channel_rates(T, B, seed)
    res = {}
    for name, e in (("plastic", eta), ("static", 0.0)):
        res[name] = _network(rates, B, e, rho0, seed + 1).run(
            T, record=["out.spikes", "I.W"], every=every, progress=False)
    ds_p = res["plastic"]
    Wi = ds_p["I_W"].values[:, :, 0, :].reshape(B, -1, CHANNELS, N_INH).mean(-1)
    Wi = np.concatenate([np.full((B, 1, CHANNELS), 0.35e-9), Wi], axis=1)  # t = 0: flat
    t = np.concatenate([[0.0], ds_p.time.values])
    tune = tuning(np.arange(CHANNELS))
    corr = np.array([[np.corrcoef(w, tune)[0, 1] if w.std() > 0 else np.nan for w in wb]
                     for wb in Wi])
    rate = {k: v["out_spikes"].values[:, :, 0] / every for k, v in res.items()}
    return xr.Dataset(
        {
            "rate": (("instance", "time"), rate["plastic"][:, :],
                     {"units": "Hz", "long_name": "output rate, inhibitory STDP"}),
            "rate_static": (("instance", "time"), rate["static"],
                            {"units": "Hz", "long_name": "output rate, inhibition fixed"}),
            "w_inh": (("instance", "t_w", "channel"), Wi,
                      {"units": "S", "long_name": "mean inhibitory weight of each channel"}),
            "w_exc": (("channel",), 0.14e-9 * tune,
                      {"units": "S", "long_name": "excitatory weight of each channel"}),
            "balance": (("instance", "t_w"), corr,
                        {"units": "1", "long_name": "correlation of inhibitory weights with "
                         "the excitatory tuning across channels"}),
        },
        coords={
            "instance": np.arange(B),
            "time": ("time", ds_p.time.values, {"units": "s",
                                                "long_name": "end of the recording interval"}),
            "t_w": ("t_w", t, {"units": "s", "long_name": "time"}),
            "channel": np.arange(CHANNELS),
        },
        attrs={
            "analysis": NAME, "quick": int(quick), "rho0_Hz": rho0, "eta_S": eta,
            "tau_s": 20e-3, "duration_s": T, "seed": seed,
            "source": "Vogels, Sprekeler, Zenke, Clopath & Gerstner 2011, Science 334:1569",
        },
    )


def summary(ds: xr.Dataset) -> str:
    last = ds.rate.isel(time=slice(ds.sizes["time"] // 2, None)).mean().item()
    return (
        f"output rate {ds.rate.isel(time=0).mean().item():.1f} Hz in the first interval, "
        f"{last:.1f} Hz over the second half (target {ds.attrs['rho0_Hz']:g} Hz; inhibition "
        f"fixed: {ds.rate_static.mean().item():.1f} Hz); inhibitory weights vs excitatory "
        f"tuning: correlation {np.nanmean(ds.balance.isel(t_w=1)):.2f} after "
        f"{ds.t_w[1].item():g} s, {ds.balance.isel(t_w=-1).mean().item():.3f} at the end"
    )


def figure(ds: xr.Dataset):
    fig, axes = new_figure(1, 3, 180, 55)
    k = ds.channel.values
    ax = axes[0, 0]
    ax.plot(k, 1e9 * ds.w_exc, "o-", color="#0072B2", label="excitatory")
    ax.plot(k, 1e9 * ds.w_inh.isel(t_w=0, instance=0), "s:", color="#999999",
            label="inhibitory, start")
    ax.plot(k, 1e9 * ds.w_inh.isel(t_w=-1).mean("instance"), "s-", color="#D55E00",
            label="inhibitory, end")
    ax.set(xlabel="signal channel", ylabel="weight (nS)", title="co-tuned inhibition")
    ax.legend(frameon=False, fontsize=6)
    ax = axes[0, 1]
    for name, style in (("rate", "-"), ("rate_static", ":")):
        ax.plot(ds.time, ds[name].mean("instance"), style, color="k",
                label="inhibitory STDP" if name == "rate" else "fixed inhibition")
    ax.axhline(ds.attrs["rho0_Hz"], color="#D55E00", lw=0.8, label="target rho0")
    ax.set(xlabel="time (s)", ylabel="output rate (Hz)", title="rate set by the rule")
    ax.legend(frameon=False, fontsize=6)
    ax = axes[0, 2]
    ax.plot(ds.t_w, ds.balance.mean("instance"), "o-", color="k")
    ax.set(xlabel="time (s)", ylabel="corr(w_inh, w_exc)", ylim=(-1.05, 1.05),
           title="detailed balance")
    return fig


if __name__ == "__main__":
    main(NAME, run, figure, summary=summary)
