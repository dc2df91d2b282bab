"""highdicom's tables as the node loads them: the same content in less memory."""

from __future__ import annotations

import json
import pkgutil

from highdicom import _standard_utils

from dicom_node.output import highdicom_tables


def test_the_module_table_is_highdicoms_own_with_repeated_entries_held_once() -> None:
    highdicom_tables.prepare()

    table = _standard_utils.get_module_attribute_map()

    assert table == json.loads(pkgutil.get_data("highdicom", "_standard/module_attribute_map.json"))
    entries = [entry for attributes in table.values() for entry in attributes]
    # Fails if highdicom stops parsing its tables through its module's json.loads (then nothing is shared).
    assert len({id(entry) for entry in entries}) < 0.6 * len(entries)
