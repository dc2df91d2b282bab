"""One soft and one sharp emphysema phantom (blobs over 20 % of the lungs), written as DICOM files and run through the
registry's lung-density pipeline as the worker runs it (embedded models by role), shared by the test modules."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from dicom_node.pipelines.lung_density.pipeline import LungDensityResult
from dicom_node.pipelines.protocol import SeriesInput
from dicom_node.pipelines.registry import pipeline
from tests.lung_density.emphysema_phantom import EmphysemaPhantom, make_emphysema_phantom, write_emphysema_series
from tests.web.conftest import browser  # noqa: F401  (Debian's headless Chromium through Playwright, for the viewer test)

SIZE = (512, 512, 48)  # 0.7 mm pixels as a chest CT has; 6.25 mm between thin sections keeps it fast


@dataclass(frozen=True)
class Case:
    phantom: EmphysemaPhantom
    result: LungDensityResult


def processed(phantom: EmphysemaPhantom, folder: Path) -> LungDensityResult:
    lung_density = pipeline("lung_density")
    settings = lung_density.settings_type()
    models = {role: lung_density.embedded_model(role, settings) for role in lung_density.model_roles}
    return lung_density.run(SeriesInput(tuple(write_emphysema_series(phantom, folder))), models, settings)


@pytest.fixture(scope="session")
def soft(tmp_path_factory: pytest.TempPathFactory) -> Case:
    phantom = make_emphysema_phantom(SIZE, 0.2, kernel="soft", seed=3)
    return Case(phantom, processed(phantom, tmp_path_factory.mktemp("soft")))


@pytest.fixture(scope="session")
def sharp(tmp_path_factory: pytest.TempPathFactory) -> Case:
    phantom = make_emphysema_phantom(SIZE, 0.2, kernel="sharp", seed=3)
    return Case(phantom, processed(phantom, tmp_path_factory.mktemp("sharp")))
