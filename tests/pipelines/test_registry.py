"""The registry and the configuration around it: pipelines by name, called AEs listing pipelines, models by role,
each pipeline's own processing table; and the node's core names no pipeline."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dicom_node.config import ConfigError, load_config
from dicom_node.inference.settings import ModelSettings
from dicom_node.pipeline.settings import PipelineSettings, ProcessingSettings
from dicom_node.pipelines.manifest import ResultManifest
from dicom_node.output.uids import ResultSeries
from dicom_node.pipelines.registry import PIPELINES, UnknownPipeline, pipeline

ROOT = Path(__file__).resolve().parents[2] / "dicom_node"


def config_from(tmp_path: Path, toml: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "node.toml"
    path.write_text(toml)
    return load_config(path, environ={})


@pytest.mark.parametrize("name", list(PIPELINES))
def test_every_registered_pipeline_declares_what_the_node_reads(name: str) -> None:
    registered = pipeline(name)
    assert registered.name == name and registered.algorithm.version and registered.called_ae
    assert issubclass(registered.settings_type, ProcessingSettings) and issubclass(registered.manifest_type, ResultManifest)
    for role in registered.model_roles:
        assert isinstance(registered.default_model(role), ModelSettings)
    assert all(callable(getattr(registered, method)) for method in ("embedded_model", "run", "write"))


def test_names_and_called_aes_are_unique_and_an_unknown_name_says_which_exist() -> None:
    assert len({p.called_ae for p in PIPELINES.values()}) == len(PIPELINES)
    with pytest.raises(UnknownPipeline, match="unknown pipeline 'nope' \\(pipelines: covid19_ct"):
        pipeline("nope")


def test_pipelines_results_on_one_study_have_series_numbers_of_their_own() -> None:
    """Two pipelines' results on one study (one series sent to both AEs) must not share series numbers in a viewer."""
    numbers = [p.algorithm.series_number(kind) for p in PIPELINES.values() for kind in ResultSeries]
    assert len(set(numbers)) == len(numbers) == len(ResultSeries) * len(PIPELINES)


def test_the_default_configuration_binds_each_pipeline_to_its_own_called_ae(tmp_path: Path) -> None:
    config = config_from(tmp_path, "")
    assert [(ae.ae_title, ae.pipelines) for ae in config.dicom.called_aes] == [(p.called_ae, [p.name]) for p in PIPELINES.values()]
    assert set(config.pipelines) == set(PIPELINES)
    assert all(isinstance(config.pipelines[name].processing, p.settings_type) for name, p in PIPELINES.items())


def test_a_called_ae_lists_pipelines_and_the_old_single_pipeline_key_still_reads(tmp_path: Path) -> None:
    config = config_from(tmp_path, '[dicom]\ncalled_aes = [{ ae_title = "CLARA", pipeline = "covid19_ct" }, { ae_title = "BOTH", pipelines = ["covid19_ct"] }]\n')
    assert [ae.pipelines for ae in config.dicom.called_aes] == [["covid19_ct"], ["covid19_ct"]]


@pytest.mark.parametrize(
    "toml, message",
    [
        ('[dicom]\ncalled_aes = [{ ae_title = "X", pipelines = ["covid19_ct", "nope"] }]\n', "unknown pipeline\\(s\\) \\['nope'\\]"),
        ("[pipelines.nope]\ndestinations = []\n", "pipelines: unknown pipeline\\(s\\) \\['nope'\\]"),
        ("[models.covid_clasifier]\nbackend = \"triton\"\n", "no pipeline calls the model role\\(s\\) \\['covid_clasifier'\\]"),
        ("[models.lung_segmentation]\nbackend = \"cloud\"\n", "models.lung_segmentation"),
        ("[pipelines.covid19_ct.processing.opacity]\nground_glass_opening_mm = -1\n", "ground_glass_opening_mm"),
    ],
)
def test_configuration_errors_name_what_is_wrong(tmp_path: Path, toml: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config_from(tmp_path, toml)


def test_a_pipelines_processing_table_is_its_own_settings_and_models_are_set_by_role(tmp_path: Path) -> None:
    config = config_from(
        tmp_path,
        '[models]\nurl = "grpc://triton:8001"\n[models.covid_classifier]\nbackend = "triton"\n'
        "[pipelines.covid19_ct.processing.segmentation]\ngrid_spacing_zyx = [5.0, 0.8, 0.8]\n",
    )
    processing = config.pipelines["covid19_ct"].processing
    assert isinstance(processing, PipelineSettings) and processing.segmentation.grid_spacing_zyx == (5.0, 0.8, 0.8)
    covid = pipeline("covid19_ct")
    classifier = config.models.model("covid_classifier", covid.default_model("covid_classifier"))
    assert classifier.backend == "triton" and classifier.url == "grpc://triton:8001" and classifier.input_dims == (1, 1, 192, 192, 64)
    assert config.models.model("lung_segmentation", covid.default_model("lung_segmentation")).backend == "embedded"


@pytest.mark.parametrize("part", ["worker.py", "net", "store", "export.py", "sending.py", "web/results.py", "web/viewer.py", "web/dicomweb"])
def test_the_core_names_no_pipeline(part: str) -> None:
    """The worker, the network, the store, export and the web's result pages know pipelines only through the registry."""
    names = re.compile("|".join(re.escape(name) for name in PIPELINES) + "|covid", re.IGNORECASE)
    files = [ROOT / part] if part.endswith(".py") else sorted((ROOT / part).rglob("*.py"))
    assert {str(f.relative_to(ROOT)): names.findall(f.read_text()) for f in files if names.search(f.read_text())} == {}
