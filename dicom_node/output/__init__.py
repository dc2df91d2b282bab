"""DICOM results (SEG, SR, secondary capture) and result files (CSV, JSON)."""
