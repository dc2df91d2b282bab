#!/usr/bin/env python3
"""What de-identifying an export costs per instance, against copying it plainly.

For P001's slices (JPEG Lossless) and the A0002-B40f slices (native), in one process and alternating rounds:
A, the plain copy an export could make (pydicom read, write); B, what the sender does for a de-identified
destination (`DeidentifiedCopies.make`: read, the profile's actions over every element, write; then the batch's
pseudonyms recorded in a SQLite index in one transaction, batches of export.batch_size). Prints milliseconds per
instance, the medians over the rounds, and B/A.

    PYTHONPATH=. .venv/bin/python bench/deidentify.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pydicom import dcmread  # noqa: E402

from dicom_node.config import DeidentificationProfile, Destination, ExportSettings  # noqa: E402
from dicom_node.deidentify.copies import DeidentifiedCopies  # noqa: E402
from dicom_node.store.db import make_engine, make_sessionmaker, upgrade  # noqa: E402

SERIES = {"P001 (JPEG Lossless)": ("covid-ct-md", "P001"), "A0002-B40f (native)": ("lung-pet-ct-dx", "A0002-B40f")}
BATCH = ExportSettings().batch_size
DESTINATION = Destination(name="R", ae_title="R", host="127.0.0.1", port=104, deidentification=DeidentificationProfile(enabled=True))


def plain(files: list[Path], out: Path) -> float:
    started = time.perf_counter()
    for number, path in enumerate(files):
        dcmread(path).save_as(out / f"{number}.dcm", enforce_file_format=True)
    return (time.perf_counter() - started) / len(files) * 1e3


def deidentified(files: list[Path], copies: DeidentifiedCopies) -> float:
    started = time.perf_counter()
    for first in range(0, len(files), BATCH):
        copies.record([copies.make(DESTINATION, path, first + number) for number, path in enumerate(files[first : first + BATCH])])
    return (time.perf_counter() - started) / len(files) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    for name, parts in SERIES.items():
        files = sorted((REPO.parent / "shared" / "data").joinpath(*parts).glob("*.dcm"))
        with tempfile.TemporaryDirectory() as tmp:
            data_dir = Path(tmp)
            url = f"sqlite:///{data_dir / 'index.sqlite3'}"
            upgrade(url)
            engine = make_engine(url)
            copies = DeidentifiedCopies(data_dir, make_sessionmaker(engine))
            (data_dir / "plain").mkdir()
            a, b = [], []
            for _ in range(args.rounds):
                a.append(plain(files, data_dir / "plain"))
                b.append(deidentified(files, copies))
            engine.dispose()
        ma, mb = statistics.median(a), statistics.median(b)
        print(f"{name}, {len(files)} instances: plain copy {ma:.2f} ms, de-identified copy {mb:.2f} ms per instance ({mb / ma:.2f}x)")


if __name__ == "__main__":
    main()
