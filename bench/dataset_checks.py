#!/usr/bin/env python3
"""What the C-STORE data set checks and the identifiers cost per instance.

For real slices (P001: JPEG Lossless, encapsulated; A0002-B70f: native) times,
in one process and interleaved rounds, `checks.checked_dataset` (header walk,
pixel size check, locating the identifiers), `InstanceMeta.from_checked` (the
identifiers read where the walk found them, as every C-STORE does) and
`InstanceMeta.from_encoded` (pydicom's parse, what from_checked falls back to);
prints microseconds per instance.

    PYTHONPATH=. .venv/bin/python bench/dataset_checks.py [--rounds 5 --repeat 500]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pydicom.filereader import read_file_meta_info  # noqa: E402

from dicom_node.store.checks import checked_dataset, part10_dataset  # noqa: E402
from dicom_node.store.ingest import IDENTIFIER_TAGS, LAST_IDENTIFIER_TAG, InstanceMeta  # noqa: E402

SERIES = {"P001 (JPEG Lossless)": ("covid-ct-md", "P001"), "A0002-B70f (native)": ("lung-pet-ct-dx", "A0002-B70f")}


def per_call_us(fn, repeat: int) -> float:
    started = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - started) / repeat * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=500)
    args = parser.parse_args()
    for name, parts in SERIES.items():
        path = sorted((REPO.parent / "shared" / "data").joinpath(*parts).glob("*.dcm"))[0]
        syntax = str(read_file_meta_info(path).TransferSyntaxUID)
        raw = memoryview(bytearray(part10_dataset(path.read_bytes())))  # as pynetdicom hands it over: a writable buffer
        checked = checked_dataset(raw, syntax, 256 << 20, IDENTIFIER_TAGS, LAST_IDENTIFIER_TAG)
        checks, identifiers, parse = [], [], []
        for _ in range(args.rounds):
            checks.append(per_call_us(lambda: checked_dataset(raw, syntax, 256 << 20, IDENTIFIER_TAGS, LAST_IDENTIFIER_TAG), args.repeat))
            identifiers.append(per_call_us(lambda: InstanceMeta.from_checked(checked, syntax), args.repeat))
            parse.append(per_call_us(lambda: InstanceMeta.from_encoded(raw, syntax), args.repeat))
        print(f"{name}: checks {statistics.median(checks):.0f} us/instance, identifiers {statistics.median(identifiers):.0f} us/instance"
              f" (pydicom's parse {statistics.median(parse):.0f} us)")


if __name__ == "__main__":
    main()
