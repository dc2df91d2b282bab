"""DICOM results (SEG, SR, secondary capture) and result files (CSV, JSON).

Entry point: `results.write_results`.  Modules: `sources` (source headers made
fit for copying), `uids` (deterministic UIDs), `concepts` (coded concepts),
`seg`, `sr`, `secondary_capture`, `tables` (CSV/JSON), `masks` (the viewer's masks; a done job's files are
listed by its manifest, `dicom_node.pipelines.manifest`); files are written with `dicom_node.store.files.write_durably` (tmp, fsync, rename).
"""
