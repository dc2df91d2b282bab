"""Shared fixtures: small phantoms (fast enough for the default suite) and the real CT series."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dicom_node.pipeline.lung_model import EmbeddedLungSegmenter
from dicom_node.pipelines.covid19.baseline_model import EmbeddedOpacityBaseline
from dicom_node.pipelines.covid19.pipeline import PipelineResult, run_covid19
from phantoms.chest import Phantom, make_phantom, write_phantom_series

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


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * float((a & b).sum()) / float(a.sum() + b.sum())


def run_embedded(paths: list[Path]) -> PipelineResult:
    return run_covid19(paths, EmbeddedLungSegmenter(), EmbeddedOpacityBaseline())


@pytest.fixture(scope="session")
def covid_series(covid_phantom: Phantom, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return write_phantom_series(covid_phantom, tmp_path_factory.mktemp("covid"))


@pytest.fixture(scope="session")
def clear_result(clear_series: list[Path]) -> PipelineResult:
    return run_embedded(clear_series)


@pytest.fixture(scope="session")
def covid_result(covid_series: list[Path]) -> PipelineResult:
    return run_embedded(covid_series)


@pytest.fixture(scope="session")
def p001_result() -> PipelineResult:
    return run_embedded(real_series("covid-ct-md/P001"))


@pytest.fixture(scope="session")
def normal001_result() -> PipelineResult:
    return run_embedded(real_series("covid-ct-md/normal001"))


@pytest.fixture(scope="session")
def a0002_b70f_result() -> PipelineResult:
    return run_embedded(real_series("lung-pet-ct-dx/A0002-B70f"))


@pytest.fixture(scope="session")
def a0002_b40f_result() -> PipelineResult:
    return run_embedded(real_series("lung-pet-ct-dx/A0002-B40f"))
