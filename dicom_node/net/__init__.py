"""DICOM networking: the Storage SCP that receives, and the SCU that exports."""
