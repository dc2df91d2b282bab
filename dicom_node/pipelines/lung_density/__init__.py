"""Lung densitometry after the QIBA CT Lung Densitometry profile, as a pipeline of its own (`plugin.py`)."""
