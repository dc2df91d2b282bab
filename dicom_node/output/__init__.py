"""DICOM results (SEG, SR, secondary capture) and result files (CSV, JSON).

Entry point: `results.write_results`.  Modules: `sources` (source headers made
fit for copying), `uids` (deterministic UIDs), `concepts` (coded concepts),
`seg`, `sr`, `secondary_capture`, `tables` (CSV/JSON), `atomic` (tmp + rename).
"""
