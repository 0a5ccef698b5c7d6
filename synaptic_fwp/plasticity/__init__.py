"""Spiking and elementwise plasticity rules (the second rule vocabulary of DESIGN.md):
local functions of pre- and postsynaptic signals and of ``W`` itself, shared by the time-stepped
engine, the event-driven protocols and the fused spiking kernel."""
