"""The COVID-19 CT pipeline: `plugin.py` (what the node sees), `pipeline.py` (the image work), `manifest.py`."""
