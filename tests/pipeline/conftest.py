"""Shared fixtures: small phantoms (fast enough for the default suite) and the real CT series."""

from __future__ import annotations

from pathlib import Path

import pytest

from dicom_node.pipeline.phantom import Phantom, make_phantom, write_phantom_series

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
SMALL = (256, 256, 80)


def real_series(name: str) -> list[Path]:
    """The files of one real series under ../shared/data, or skip the test when the data are absent."""
    folder = DATA / name
    files = sorted(folder.glob("*.dcm"))
    if not files:
        pytest.skip(f"real CT data not found at {folder.resolve()} (see shared/data/README.md)")
    return files


@pytest.fixture(scope="session")
def clear_phantom() -> Phantom:
    return make_phantom(SMALL, 0.0, seed=1)


@pytest.fixture(scope="session")
def covid_phantom() -> Phantom:
    return make_phantom(SMALL, 0.15, seed=2)


@pytest.fixture(scope="session")
def clear_series(clear_phantom: Phantom, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return write_phantom_series(clear_phantom, tmp_path_factory.mktemp("clear"))
