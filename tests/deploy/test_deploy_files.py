"""The deployment files say what they do: compose wires the roles together, the Helm chart's templates use only
values it defines. (No helm or docker engine on the build machines: rendering and running them is documented as
untested in docs/scale-out.md.)"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from dicom_node.config import Config

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
CHART = DEPLOY / "helm" / "dicom-node"


def compose_services() -> dict[str, Any]:
    """The services of deploy/compose.yaml with its `include`s merged, as `docker compose config` would."""
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = dict(compose["services"])
    for included in compose.get("include", []):
        services |= yaml.safe_load((DEPLOY / included).read_text())["services"]
    return services


def test_compose_runs_receiver_worker_postgres_triton_and_orthanc_wired_together() -> None:
    services = compose_services()
    assert {"dicom-node", "dicom-node-worker", "postgres", "triton", "orthanc"} <= services.keys()
    receiver, worker, postgres = services["dicom-node"], services["dicom-node-worker"], services["postgres"]["environment"]
    assert receiver["command"] == ["dicom-node", "serve", "--workers", "0", "--no-export"]
    assert worker["command"] == ["dicom-node", "worker"]
    url = f"postgresql+psycopg2://{postgres['POSTGRES_USER']}:{postgres['POSTGRES_PASSWORD']}@postgres:5432/{postgres['POSTGRES_DB']}"
    for node in (receiver, worker):
        assert node["environment"]["DICOM_NODE_DATABASE__URL"] == url
        assert node["volumes"] == ["dicom-node-data:/var/lib/dicom-node"], "receiver and workers share one data volume"
        assert node["environment"]["DICOM_NODE_MODELS__URL"] == "grpc://triton:8001"
        assert '"host": "orthanc", "port": 4242' in node["environment"]["DICOM_NODE_DESTINATIONS"]
    assert receiver["depends_on"]["postgres"] == {"condition": "service_healthy"}
    # Orthanc routes to the receiver under the AE the node answers as and calls back with.
    orthanc = services["orthanc"]["environment"]
    assert '"clara": ["CLARA", "dicom-node", 11112]' in orthanc["ORTHANC__DICOM_MODALITIES"]
    assert Config().dicom.called_aes[0].ae_title == "CLARA" and receiver["hostname"] == "dicom-node"
    lua = services["orthanc"]["volumes"][0].split(":")[0]
    assert "SendToModality(seriesId, 'clara')" in (DEPLOY / lua).read_text()


def _value_paths(values: Any, prefix: str = "") -> set[str]:
    paths = {prefix} if prefix else set()
    if isinstance(values, dict):
        for key, value in values.items():
            paths |= _value_paths(value, f"{prefix}.{key}" if prefix else key)
    return paths


def test_every_value_the_chart_templates_use_is_defined_in_values_yaml() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    defined = _value_paths(values)
    templates = list((CHART / "templates").glob("*"))
    used = {m for t in templates for m in re.findall(r"\.Values\.([A-Za-z0-9_.]+)", t.read_text())}
    assert used and not used - defined, f"undefined values: {sorted(used - defined)}"
    kinds = {m for t in templates for m in re.findall(r"^kind: (\w+)", t.read_text(), re.M)}
    assert {"Deployment", "Service", "PersistentVolumeClaim", "Secret", "ConfigMap"} <= kinds
    assert "StatefulSet" not in kinds


def test_the_chart_runs_receivers_and_workers_as_separate_deployments_on_postgresql() -> None:
    receiver = (CHART / "templates" / "receiver.yaml").read_text()
    worker = (CHART / "templates" / "worker.yaml").read_text()
    assert '"serve", "--workers", "0", "--no-export"' in receiver and '"worker"' in worker
    assert worker.startswith("{{- if .Values.database.enabled }}"), "workers exist only with a shared database"
    helpers = (CHART / "templates" / "_helpers.tpl").read_text()
    assert "DICOM_NODE_DATABASE__URL" in helpers and "secretKeyRef" in helpers, "the database URL comes from a Secret"
    assert "DICOM_NODE_MODELS__URL" in helpers
    service = (CHART / "templates" / "service.yaml").read_text()
    assert "component: receiver" in service, "only receivers are behind the DICOM Service"
