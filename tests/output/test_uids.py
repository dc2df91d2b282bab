"""Derived UIDs: reproducible, distinct per input, valid DICOM UIDs."""

from __future__ import annotations

import re

import pytest

from dicom_node.output.uids import AlgorithmId, derived_uid, device_uid

SERIES = "1.2.826.0.1.3680043.8.498.1"
ALGORITHM = AlgorithmId("dicom-node-covid19", "0.1.0")


def test_same_inputs_give_the_same_uid() -> None:
    assert derived_uid(SERIES, ALGORITHM, "seg", "series") == derived_uid(SERIES, AlgorithmId("dicom-node-covid19", "0.1.0"), "seg", "series")


def test_every_input_changes_the_uid() -> None:
    uids = {
        derived_uid(SERIES, ALGORITHM, "seg", "series"),
        derived_uid(SERIES, ALGORITHM, "seg", "instance"),
        derived_uid(SERIES + "1", ALGORITHM, "seg", "series"),
        derived_uid(SERIES, AlgorithmId(ALGORITHM.name, "0.1.1"), "seg", "series"),
        derived_uid(SERIES, AlgorithmId("other", ALGORITHM.version), "seg", "series"),
        derived_uid(SERIES, ALGORITHM, "sc", "instance", 1),
        derived_uid(SERIES, ALGORITHM, "sc", "instance", 2),
        derived_uid(SERIES, ALGORITHM, "sc", "instance1"),
        device_uid(ALGORITHM),
    }
    assert len(uids) == 9


@pytest.mark.parametrize("uid", [derived_uid(SERIES, ALGORITHM, "sr", "series"), device_uid(ALGORITHM)])
def test_uids_are_valid_2_25_uids(uid: str) -> None:
    assert re.fullmatch(r"2\.25\.(0|[1-9][0-9]*)", uid)
    assert len(uid) <= 64


def test_a_kind_is_required() -> None:
    with pytest.raises(ValueError, match="kind"):
        derived_uid(SERIES, ALGORITHM)
