"""The rule zoo: the Primer's Table 1 as a reproducible table, with transition spectra.

``python -m synaptic_fwp.analyses.rule_zoo [--quick] [--out DIR]``

For every rule of the catalogue (:func:`synaptic_fwp.rules.names`):

1. **Transition (Eq. 31)** ``W_t = B_t W_{t-1} A_t + C_t`` from :meth:`transition` over random
   inputs (unit keys and values, ``eta ~ U(0, 1)``, ``lambda ~ U(0.5, 1)``, gates ``a ~ U(0.5,
   1)``): the state map ``W -> B W A`` has the eigenvalues ``mu_i(B) nu_j(A)`` (Kronecker
   product); their range per rule, and the check ``B W A + C == step(W)``. The delta rule is also
   shown with ``eta ~ U(0, 2)`` (``psi = 2 sigmoid``), whose transition reaches negative
   eigenvalues (Sec. 3.6).
2. **Local loss (Table 1, last column)**: ``step(W) == W - lr * dL/dW`` with autograd in float64
   (``lr = eta`` for the correction rules, 1 otherwise): the largest deviation per rule.
3. The table: rule, equation, local loss, transition kind, eigenvalue range, both checks, source.
"""

from __future__ import annotations

import numpy as np
import torch
import xarray as xr

from synaptic_fwp import rules

from ._study import main, new_figure

NAME = "rule_zoo"


def _inputs(rule, n: int, K: int, V: int, g: torch.Generator, eta_high: float = 1.0):
    k = torch.randn(n, K, generator=g, dtype=torch.float64)
    v = torch.randn(n, V, generator=g, dtype=torch.float64)
    k, v = k / k.norm(dim=-1, keepdim=True), v / v.norm(dim=-1, keepdim=True)
    kw: dict[str, torch.Tensor] = {}
    needs = rule.needs
    if "eta" in needs:
        kw["eta"] = eta_high * torch.rand(n, generator=g, dtype=torch.float64)
    if "decay" in needs:
        kw["decay"] = 0.5 + 0.5 * torch.rand(n, generator=g, dtype=torch.float64)
    if "gate" in needs:
        side = K if rule.decay == "pre" else V
        kw["gate"] = 0.5 + 0.5 * torch.rand(n, side, generator=g, dtype=torch.float64)
    return k, v, kw


def _kind(rule) -> str:
    if isinstance(rule, rules.BCMRule):
        return "A = B = I (value drive); nonlinear in W (output drive)"
    a = {"none": "I", "scalar": "lambda I", "pre": "diag(a)", "post": "I"}[rule.decay]
    b = {"none": "I", "scalar": "I", "pre": "I", "post": "diag(a)"}[rule.decay]
    if rule.correction == "delta":
        a = (
            "lambda I - eta k k^T"
            if rule.decay == "scalar" and not rule.decay_first
            else ("I - eta k k^T")
        )
        b = "lambda I" if rule.decay_first else b
    if rule.correction == "oja":
        b = f"{b} - eta v v^T" if b != "I" else "I - eta v v^T"
    if rule.decay == "scalar" and rule.correction == "none":
        a, b = "I", "lambda I"
    return f"A = {a}; B = {b}"


def spectrum(rule, n: int, K: int, V: int, seed: int, eta_high: float = 1.0):
    """Eigenvalues of ``W -> B W A`` over ``n`` random draws, and the transition check error."""
    g = torch.Generator().manual_seed(seed)
    k, v, kw = _inputs(rule, n, K, V, g, eta_high)
    A, B, C = rule.transition(k, v, **kw)
    ea = torch.linalg.eigvals(A)  # (n, K)
    eb = torch.linalg.eigvals(B)  # (n, V)
    ev = (eb.unsqueeze(-1) * ea.unsqueeze(-2)).reshape(n, -1)
    W = torch.randn(n, V, K, generator=g, dtype=torch.float64)
    stepped = rule.step(W, k, v, **kw)  # BCM: theta = 0, as transition() assumes by default
    err = (B @ W @ A + C - stepped).abs().max().item()
    return ev.numpy(), err


def loss_check(rule, n: int, K: int, V: int, seed: int) -> float:
    """Largest ``|step(W) - (W - lr dL/dW)|`` over ``n`` random draws (float64, autograd)."""
    g = torch.Generator().manual_seed(seed)
    k, v, kw = _inputs(rule, n, K, V, g)
    W = torch.randn(n, V, K, generator=g, dtype=torch.float64, requires_grad=True)
    extra = {}
    if isinstance(rule, rules.BCMRule):
        extra["theta"] = torch.rand(n, V, generator=g, dtype=torch.float64)
        lr = kw["eta"].reshape(n, 1, 1)
    else:
        lr = rule.gd_lr(rule.resolve(W, **kw))
        lr = lr.reshape(n, 1, 1) if isinstance(lr, torch.Tensor) else lr
    loss = rule.local_loss(W, k, v, **kw, **extra).sum()
    (grad,) = torch.autograd.grad(loss, W)
    with torch.no_grad():
        ref = rule.step(W, k, v, **kw, **extra)
        return (W - lr * grad - ref).abs().max().item()


def run(quick: bool = False, out: str | None = None) -> xr.Dataset:
    n = 16 if quick else 256
    K = V = 4 if quick else 8
    entries = [(name, rules.get(name), 1.0) for name in rules.names()]
    entries.append(("delta, eta in (0,2)", rules.get("delta"), 2.0))
    names = [e[0] for e in entries]
    ev_all = np.zeros((len(entries), n * K * V), dtype=complex)
    t_err = np.zeros(len(entries))
    l_err = np.zeros(len(entries))
    for i, (_, r, eh) in enumerate(entries):
        ev, t_err[i] = spectrum(r, n, K, V, seed=i, eta_high=eh)
        ev_all[i] = ev.ravel()
        l_err[i] = loss_check(r, n, K, V, seed=100 + i)
    rule_objs = [e[1] for e in entries]
    ds = xr.Dataset(
        {
            "eig_real": (
                ("rule", "sample"),
                ev_all.real,
                {"units": "1", "long_name": "Re eigenvalue of W -> B W A"},
            ),
            "eig_imag": (
                ("rule", "sample"),
                ev_all.imag,
                {"units": "1", "long_name": "Im eigenvalue of W -> B W A"},
            ),
            "eig_min": (
                ("rule",),
                ev_all.real.min(1),
                {"units": "1", "long_name": "smallest real part"},
            ),
            "eig_max": (
                ("rule",),
                ev_all.real.max(1),
                {"units": "1", "long_name": "largest real part"},
            ),
            "transition_error": (
                ("rule",),
                t_err,
                {"units": "1", "long_name": "max |B W A + C - step(W)|"},
            ),
            "local_loss_error": (
                ("rule",),
                l_err,
                {"units": "1", "long_name": "max |W - lr dL/dW - step(W)|"},
            ),
            "equation": (
                ("rule",),
                np.array([r.equation for r in rule_objs], dtype=object),
                {"units": "", "long_name": "update equation"},
            ),
            "local_loss": (
                ("rule",),
                np.array([r.loss for r in rule_objs], dtype=object),
                {"units": "", "long_name": "local loss (Table 1)"},
            ),
            "transition_kind": (
                ("rule",),
                np.array([_kind(r) for r in rule_objs], dtype=object),
                {"units": "", "long_name": "state transition matrices"},
            ),
            "rule_source": (
                ("rule",),
                np.array([r.source for r in rule_objs], dtype=object),
                {"units": "", "long_name": "source"},
            ),
        },
        coords={"rule": names, "sample": np.arange(n * K * V)},
        attrs={
            "analysis": NAME,
            "quick": int(quick),
            "draws": n,
            "K": K,
            "V": V,
            "inputs": (
                "unit keys/values; eta~U(0,1) (U(0,2) where stated); "
                "lambda~U(0.5,1) (retnet: one lambda per draw); a~U(0.5,1)"
            ),
            "source": "Irie & Gershman Primer Table 1, Eq. 31, Appendix A",
        },
    )
    return ds


def table(ds: xr.Dataset) -> str:
    """The table as Markdown."""
    rows = [
        "| rule | update | local loss | transition | eig range | loss check | transition check |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in ds.rule.values:
        s = ds.sel(rule=r)
        rows.append(
            f"| {r} | {s.equation.item()} | {s.local_loss.item()} | {s.transition_kind.item()} | "
            f"[{float(s.eig_min):.2f}, {float(s.eig_max):.2f}] | {float(s.local_loss_error):.1e} | "
            f"{float(s.transition_error):.1e} |"
        )
    return "\n".join(rows)


def figure(ds: xr.Dataset):
    fig, axes = new_figure(1, 1, 180, 80)
    ax = axes[0, 0]
    rng = np.random.default_rng(0)
    for i, r in enumerate(ds.rule.values):
        x = ds.eig_real.sel(rule=r).values
        ax.scatter(x, i + 0.25 * rng.standard_normal(x.size).clip(-1.5, 1.5), s=1, alpha=0.3)
    ax.axvline(0, color="grey", lw=0.5)
    ax.axvline(1, color="grey", lw=0.5, ls=":")
    ax.set_yticks(range(len(ds.rule)), list(ds.rule.values))
    ax.set(
        xlabel="eigenvalue of the state transition W -> B W A (all real here)",
        title="Table 1 transition spectra over random inputs (Eq. 31)",
    )
    return fig


def summary(ds: xr.Dataset) -> str:
    return table(ds)


if __name__ == "__main__":
    main(NAME, run, figure, summary=summary)
