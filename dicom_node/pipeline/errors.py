"""Permanent data problems of a series: the job ends and the message is the reason shown to the user.

They are separate from inference errors (`dicom_node.inference.base`) because retrying
cannot help: the same files will be rejected again for the same reason.
"""

from __future__ import annotations


class SeriesRejected(Exception):
    """The series cannot be turned into a trustworthy volume (the job fails with this reason)."""


class SeriesNotEligible(SeriesRejected):
    """The series is not a chest CT this pipeline is meant for (the job ends as `skipped`)."""
