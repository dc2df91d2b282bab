"""Image pipelines as plug-ins: the protocol (`protocol.py`), the result manifest (`manifest.py`) and the registry
of named pipelines (`registry.py`); each pipeline in its own package (`covid19/`)."""
