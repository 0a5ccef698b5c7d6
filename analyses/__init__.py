"""Runnable studies (installed as ``synaptic_fwp.analyses``); each module runs with
``python -m synaptic_fwp.analyses.<name>`` and writes a figure and a NetCDF file."""
