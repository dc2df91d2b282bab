"""DICOM results (SEG, SR, secondary capture) and result files (CSV, JSON).

Entry point: `results.write_results`.  Modules: `sources` (source headers made
fit for copying), `uids` (deterministic UIDs), `concepts` (coded concepts),
`seg`, `sr`, `secondary_capture`, `tables` (CSV/JSON), `stored_results` (a done job's DICOM files, for
DICOMweb and `exports resend`); files are written with `dicom_node.store.files.write_durably` (tmp, fsync, rename).
"""
