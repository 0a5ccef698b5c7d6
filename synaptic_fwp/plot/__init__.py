"""Paper figures (the only layer besides the faces that imports matplotlib)."""
