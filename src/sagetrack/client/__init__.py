"""Client side: runs where ``fit()`` is called.

``estimator`` holds the SDK hooks of ``sagetrack.TensorFlow``; at ``fit()`` they use
``validation`` (arguments), ``staging`` (the bootstrap added to the code tarball),
``container_env`` (the job's ``SAGETRACK_*`` environment), ``capture`` with
``provenance`` (git state, tarball hash, input fingerprints), ``launch_record`` (the
record) and ``launch_writer`` (its writes, within the launch budget) with ``claim`` (whose
records a launch may write), ``identity`` (same work) and ``store_access``, then
``outcome`` and ``ingest`` once the job ends; ``guard`` keeps tracking failures out of
``fit()``. ``reproduce`` and
``checkout`` repeat a recorded run or hand its code over.
"""
