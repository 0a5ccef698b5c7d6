"""Unit strings accepted in dataset files and their conversion to the SI units used in code.

DESIGN.md: SI base units in code (seconds, volts, hertz); calcium and other concentrations in
uM (said in the ``units`` attribute). Each entry maps a unit string to ``(dimension,
canonical unit, factor)``, so ``value_in_canonical = factor * value_in_given_unit``.
"""

from __future__ import annotations

__all__ = ["UNITS", "SUFFIX_UNITS", "convert", "dimension_of", "split_suffix"]

#: unit string -> (dimension, canonical unit, factor to the canonical unit)
UNITS: dict[str, tuple[str, str, float]] = {
    # time
    "s": ("time", "s", 1.0),
    "ms": ("time", "s", 1e-3),
    "us": ("time", "s", 1e-6),
    "min": ("time", "s", 60.0),
    # frequency and rates
    "Hz": ("frequency", "Hz", 1.0),
    "kHz": ("frequency", "Hz", 1e3),
    "1/s": ("frequency", "1/s", 1.0),
    "1/ms": ("frequency", "1/s", 1e3),
    # voltage
    "V": ("voltage", "V", 1.0),
    "mV": ("voltage", "V", 1e-3),
    "1/V": ("inverse voltage", "1/V", 1.0),
    "1/mV": ("inverse voltage", "1/V", 1e3),
    # current, conductance, capacitance (experiment files: neuron and synapse parameters)
    "A": ("current", "A", 1.0),
    "nA": ("current", "A", 1e-9),
    "pA": ("current", "A", 1e-12),
    "S": ("conductance", "S", 1.0),
    "uS": ("conductance", "S", 1e-6),
    "nS": ("conductance", "S", 1e-9),
    "F": ("capacitance", "F", 1.0),
    "nF": ("capacitance", "F", 1e-9),
    "pF": ("capacitance", "F", 1e-12),
    # concentration (kept in uM: DESIGN.md allows calcium in uM)
    "uM": ("concentration", "uM", 1.0),
    "nM": ("concentration", "uM", 1e-3),
    "mM": ("concentration", "uM", 1e3),
    "1/uM": ("inverse concentration", "1/uM", 1.0),
    "uM/(ms*mV)": ("concentration rate per voltage", "uM/(s*V)", 1e6),
    # length and speed
    "m": ("length", "m", 1.0),
    "cm": ("length", "m", 1e-2),
    "mm": ("length", "m", 1e-3),
    "um": ("length", "m", 1e-6),
    "m/s": ("speed", "m/s", 1.0),
    "cm/s": ("speed", "m/s", 1e-2),
    # dimensionless quantities
    "1": ("dimensionless", "1", 1.0),
    "dimensionless": ("dimensionless", "1", 1.0),
    "fraction": ("dimensionless", "1", 1.0),
    "ratio": ("dimensionless", "1", 1.0),
    "exponent": ("dimensionless", "1", 1.0),
    "count": ("dimensionless", "1", 1.0),
    "laps": ("dimensionless", "1", 1.0),
    "percent": ("dimensionless", "1", 1e-2),
    "%": ("dimensionless", "1", 1e-2),
}

#: unit tokens allowed as a column-name suffix (``dt_ms``, ``freq_Hz``, ``dw_mean_percent``)
SUFFIX_UNITS: tuple[str, ...] = ("s", "ms", "us", "min", "Hz", "kHz", "V", "mV", "uM", "nM",
                                 "mM", "percent")


def _check_known(unit: str, name: str) -> tuple[str, str, float]:
    if not isinstance(unit, str):
        raise TypeError(f"unit of {name} must be a string, got {type(unit).__name__}")
    if unit not in UNITS:
        raise ValueError(
            f"unknown unit {unit!r} for {name}; allowed units are {sorted(UNITS)}"
        )
    return UNITS[unit]


def dimension_of(unit: str, name: str = "value") -> str:
    """Physical dimension of a unit string (``'ms'`` -> ``'time'``)."""
    return _check_known(unit, name)[0]


def convert(value, unit: str, name: str = "value"):
    """Convert ``value`` given in ``unit`` to the canonical unit; returns ``(value, unit)``."""
    _, canonical, factor = _check_known(unit, name)
    return value * factor, canonical


def split_suffix(column: str) -> tuple[str, str | None]:
    """Split ``'dt_ms'`` into ``('dt', 'ms')``; a column without a unit suffix gives ``None``."""
    base, sep, tail = column.rpartition("_")
    if sep and base and tail in SUFFIX_UNITS:
        return base, tail
    return column, None
