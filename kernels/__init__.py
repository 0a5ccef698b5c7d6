"""Triton kernels (installed as ``synaptic_fwp.kernels``), each beside the torch reference it
must equal. See ``kernels/README.md`` for the math and the memory traffic of each kernel."""
