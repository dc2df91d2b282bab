"""De-identification of exported objects after DICOM PS3.15 Annex E (see docs/deidentification.md)."""
