"""Ready circuits built from the library (installed as ``synaptic_fwp.models``)."""
