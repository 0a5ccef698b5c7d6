"""CA3 -> CA1 with behavioural timescale synaptic plasticity (BTSP) on a circular track.

200 CA3 place inputs (90 cm Gaussian fields, 40 Hz peak) on a 187 cm track run at 25 cm/s; an
EC3-driven plateau of 300 ms in CA1 at a chosen position; the CA1 depolarisation ramp is the
weighted sum of the inputs (Milstein et al. 2021, eLife 10:e73046, the shipped table). Two
plasticity forms (:mod:`synaptic_fwp.plasticity.btsp`): Milstein's bidirectional weight-dependent
rule with its population fit, and the Primer's FWP write ``dW = eta v (x) k`` (key: the CA3
eligibility trace; value: the EC3-gated instructive signal; Irie & Gershman, Sec. 4.2).

>>> from synaptic_fwp.models.btsp_ca1 import CA3CA1
>>> m = CA3CA1("milstein")
>>> ds = m.induce([0.935])              # one induction lap, plateau at mid-track
>>> float(ds.peak_shift.isel(lap=1)) < 0  # the new field peaks before the plateau
True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import xarray as xr

from synaptic_fwp.plasticity.btsp import MilsteinBTSP, PrimerBTSP
from synaptic_fwp.protocols.btsp import (
    TrackConfig,
    btsp_induction,
    input_centers,
    place_rates,
    ramp_scale,
)

__all__ = ["CA3CA1", "calibrated_primer"]


def calibrated_primer(
    reference: MilsteinBTSP | None = None, track: TrackConfig | None = None, dt: float = 0.01
) -> PrimerBTSP:
    """The Primer's BTSP with Milstein's ``tau_ET``, ``tau_IS`` and ``eta`` (1/s) set so that one
    induction lap from baseline gives the same peak weight change as ``reference`` (default: the
    population fit). A calibration of one number, so the two forms are compared at equal
    strength; kernel shape, shift and width are then predictions of each form."""
    ref = reference if reference is not None else MilsteinBTSP.from_table()
    cfg = track if track is not None else TrackConfig()
    mid = cfg.track_length / 2
    dw_ref = btsp_induction(ref, plateau_positions=[mid], track=cfg, dt=dt)["delta_weight"].max()
    unit = PrimerBTSP(eta=1.0, tau_et=ref.tau_et, tau_is=ref.tau_is)
    dw_unit = btsp_induction(unit, plateau_positions=[mid], track=cfg, dt=dt)["delta_weight"].max()
    return PrimerBTSP(eta=float(dw_ref / dw_unit), tau_et=ref.tau_et, tau_is=ref.tau_is)


class CA3CA1:
    """The circuit: track, inputs, one CA1 neuron's weights and its BTSP rule.

    ``rule``: ``"milstein"`` (population fit), ``"primer"`` (calibrated to Milstein's one-lap peak
    change, :func:`calibrated_primer`) or a rule object. ``track``: :class:`TrackConfig`.
    """

    def __init__(
        self,
        rule: str | MilsteinBTSP | PrimerBTSP = "milstein",
        track: TrackConfig | None = None,
        dt: float = 0.01,
    ) -> None:
        self.track = track if track is not None else TrackConfig()
        if rule == "milstein":
            rule = MilsteinBTSP.from_table()
        elif rule == "primer":
            rule = calibrated_primer(track=self.track, dt=dt)
        if not isinstance(rule, (MilsteinBTSP, PrimerBTSP)):
            raise ValueError(
                f"rule must be 'milstein', 'primer', MilsteinBTSP or PrimerBTSP, got {rule!r}"
            )
        self.rule = rule
        self.dt = dt
        self.scale = ramp_scale(self.track)

    @property
    def centers(self) -> torch.Tensor:
        """Input field centres (m)."""
        return input_centers(self.track)

    def rates(self, x: torch.Tensor) -> torch.Tensor:
        """CA3 rates (Hz) at positions ``x`` (m): ``(n_inputs, *x.shape)``."""
        return place_rates(x, self.track)

    def ramp(self, W: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """CA1 ramp (V) at positions ``x`` for weights ``W: (..., n_inputs)`` (baseline 1)."""
        return self.scale * ((W - 1.0) @ self.rates(x))

    def induce(
        self,
        plateau_positions: Sequence[float],
        initial_weights: torch.Tensor | None = None,
        params: Mapping[str, Sequence[float]] | None = None,
    ) -> xr.Dataset:
        """Run induction laps (one plateau per lap at each position, m); see
        :func:`synaptic_fwp.protocols.btsp.btsp_induction`."""
        return btsp_induction(
            self.rule,
            params,
            plateau_positions=plateau_positions,
            initial_weights=initial_weights,
            track=self.track,
            dt=self.dt,
            scale=self.scale,
        )
