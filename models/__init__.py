"""Ready circuits built from the library (installed as ``synaptic_fwp.models``).

- :mod:`.ampa_nmda`: the Primer's Sec. 4.1 circuit, AMPA fast weights ``W`` programmed by NMDA
  calcium ``v = g(U q)``; equal to the FWP with ``W^V = U W^Q``, ``W^Q = W^K``.
- :mod:`.btsp_ca1`: CA3 -> CA1 behavioural timescale plasticity on a circular track (Milstein
  et al. 2021's rule and the Primer's FWP form).
- :mod:`.kv_memory`: hetero-associative key-value memory in fast weights (Box 3).
- :mod:`.fwp_layer`: a trainable FWP sequence layer (torch ``nn.Module``) and a classifier.
- :mod:`.bcm_neuron`: a rate neuron with BCM plasticity and a sliding threshold.

Each module is imported on its own (``from synaptic_fwp.models.btsp_ca1 import CA3CA1``).
"""
