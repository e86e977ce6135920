"""The engine: ``Engine`` (``engine.py``) is a thin facade over the operation modules,
which share one ``Runtime`` (``runtime.py``) and import one another in one direction only."""
