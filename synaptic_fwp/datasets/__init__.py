"""Physiology datasets and published parameter tables shipped with the package."""
