"""dicom-node: a DICOM AI node that receives CT series, runs the COVID-19 CT pipeline and sends results back to the PACS."""

__version__ = "0.1.0"
