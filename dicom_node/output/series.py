"""What every series the node derives carries besides its UIDs: when it was made and what it is, in words.

PACS viewers file a series under its SeriesDate/SeriesTime (without them,
under "?") and list it by its SeriesDescription, which is all a radiologist
reads before opening it: the descriptions say what the object shows and that
an algorithm made it.  All objects of one job carry the same date and time
(local time, as DICOM dates are), the moment their results were written.
"""

from __future__ import annotations

from datetime import datetime

from pydicom.dataset import Dataset

SEG_DESCRIPTION = "AI lungs and lung opacity (segmentation)"
SR_DESCRIPTION = "AI lung opacity report (RSNA category, volumes, PO, PHO)"
KEY_IMAGES_DESCRIPTION = "AI key images: lung opacity outlined"
SUMMARY_DESCRIPTION = "AI summary: RSNA category, severity score, lung opacity"


def stamp(dataset: Dataset, created: datetime) -> Dataset:
    """Set SeriesDate/SeriesTime and ContentDate/ContentTime to `created`."""
    date, time = created.strftime("%Y%m%d"), created.strftime("%H%M%S")
    dataset.SeriesDate = dataset.ContentDate = date
    dataset.SeriesTime = dataset.ContentTime = time
    return dataset
