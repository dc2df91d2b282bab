"""Synthetic chest CT series with exact masks, for tests and benchmarks (not part of the product package).

`chest.py`: the thorax phantom (lungs, vessels, airways, COVID-like opacities); run it as
``python -m phantoms.chest OUT_DIR`` from the repository root.
"""
