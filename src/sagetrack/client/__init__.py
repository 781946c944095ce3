"""Client side: runs where ``fit()`` is called (estimator, provenance capture)."""
