"""The image pipeline: pure functions from DICOM series to volumes, masks, tensors and measurements."""
