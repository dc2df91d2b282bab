"""The deployment files say what they do: compose wires the roles together, the Helm chart's templates use only
values it defines, no Dockerfile can copy data, a venv or caches. Building, running, rendering and playing them:
the slow tests/deploy/test_images.py."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path
from typing import Any

import yaml

from dicom_node.config import Config

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
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
    assert receiver["read_only"] is True and receiver["tmpfs"] == ["/tmp"]
    # Orthanc routes to the receiver under the AE the node answers as and calls back with.
    mounts = dict(volume.split(":")[:2] for volume in services["orthanc"]["volumes"])
    orthanc = json.loads((DEPLOY / mounts["./orthanc/dicom-node.json"].replace("/etc/orthanc/", "orthanc/")).read_text())
    assert orthanc["DicomModalities"]["clara"] == ["CLARA", "dicom-node", 11112]
    assert Config().dicom.called_aes[0].ae_title == "CLARA" and receiver["hostname"] == "dicom-node"
    assert orthanc["LuaScripts"] == [mounts["./orthanc/route-ct-to-dicom-node.lua"]]
    # SendToModality() takes an instance, not a series: the script sends the series through the REST API.
    assert "RestApiPost('/modalities/clara/store', seriesId)" in (DEPLOY / "orthanc" / "route-ct-to-dicom-node.lua").read_text()


def test_the_image_build_context_is_an_allow_list_and_no_dockerfile_copies_the_repository_root() -> None:
    """Received studies (var/), virtual environments and caches must never reach an image, whatever lies in the
    checkout: the context admits only what the Dockerfiles name, and none copies '.' wholesale."""
    ignore = [line for line in (DEPLOY.parent / ".dockerignore").read_text().splitlines() if line and not line.startswith("#")]
    assert ignore[0] == "*"
    admitted = {line[1:] for line in ignore if line.startswith("!")}
    assert admitted == {"pyproject.toml", "dicom_node", "migrations", "deploy/triton/models",
                        "deploy/triton/install-test-server.sh", "build/ohif"}
    for dockerfile in (DEPLOY / "Dockerfile", DEPLOY / "triton" / "Dockerfile", DEPLOY / "triton" / "cpu.Dockerfile"):
        sources = [line.split()[1:-1] for line in dockerfile.read_text().splitlines() if line.startswith(("COPY ", "ADD "))]
        assert sources and all(src not in (".", "./") for args in sources for src in args), dockerfile


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


def test_the_chart_probes_run_the_images_python_not_tools_it_lacks() -> None:
    """podman kube play runs tcpSocket and httpGet probes as nc and curl inside the container (not in the image);
    exec probes with python3 work there and in Kubernetes."""
    templates = "".join(path.read_text() for path in (CHART / "templates").glob("*"))
    assert not re.search(r"^\s*(tcpSocket|httpGet):", templates, re.M)
    assert templates.count('include "dicom-node.liveness"') == 2 and templates.count('include "dicom-node.readiness"') == 2


# Modules the product imports that no distribution of pyproject's provides, and why that is right.
PROVIDED_ELSEWHERE = {"triton_python_backend_utils": "Triton's Python backend, inside tritonserver (triton_python_model.py)"}


def _imported_modules(package: Path) -> dict[str, str]:
    """Top-level third-party modules imported anywhere in `package` (not the standard library nor itself), each
    with one file that imports it."""
    found: dict[str, str] = {}
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for top in {name.split(".")[0] for name in names} - set(sys.stdlib_module_names) - {package.name}:
                found.setdefault(top, str(path.relative_to(REPO)))
    return found


def _distribution_name(requirement: str) -> str:
    return re.split(r"[\[<>=!~;\s]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_every_module_the_product_imports_is_a_declared_dependency() -> None:
    """The image installs pyproject's dependencies and nothing else (no test extras): a module that the product
    imports and that arrives only with the test extras, or with another package, works in the checkout and fails in
    the image (httpx came with the test extras while net/wado_client.py imported it: the image's node did not start)."""
    declared = {_distribution_name(r) for r in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]}
    providers = packages_distributions()
    undeclared = {
        module: where for module, where in _imported_modules(REPO / "dicom_node").items()
        if module not in PROVIDED_ELSEWHERE and not {_distribution_name(d) for d in providers.get(module, [])} & declared
    }
    assert not undeclared, f"imported but not in pyproject's dependencies: {undeclared}"


def test_ci_runs_the_deploy_check_as_its_own_job_when_the_image_inputs_change(tmp_path: Path) -> None:
    """.ci/run stays the default suite; .ci/deploy runs `make test-deploy` only when what the image is built from
    changed since the base (tried in a clone, with the check's command replaced by an echo)."""
    assert (REPO / ".ci" / "run").read_text().strip().splitlines()[-1] == "make test"
    assert (REPO / ".ci" / "deploy").read_text().strip().splitlines()[-1] == "make test-deploy-if-changed"
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    git = ["git", "-C", str(clone), "-c", "user.name=t", "-c", "user.email=t@example.org"]
    (clone / "Makefile").write_text((REPO / "Makefile").read_text())  # the checkout's, committed or not
    subprocess.run([*git, "commit", "-qam", "the Makefile under test", "--allow-empty"], check=True)

    def commit_and_decide(path: str, base: str = "HEAD~1") -> str:
        with (clone / path).open("a") as changed:
            changed.write("\n")
        subprocess.run([*git, "commit", "-qam", f"change {path}"], check=True)
        done = subprocess.run(
            ["make", "-s", "--no-print-directory", "-C", str(clone), "test-deploy-if-changed",
             f"DEPLOY_BASE={base}", "TEST_DEPLOY=echo the deploy check runs"],
            capture_output=True, text=True, check=True,
        )
        return done.stdout

    assert "not run: nothing in deploy" in commit_and_decide("README.md")
    assert "the deploy check runs" in commit_and_decide("deploy/compose.yaml")
    assert "the deploy check runs" in commit_and_decide("pyproject.toml")
    assert "not run" in commit_and_decide("docs/pipeline.md")
    assert "the deploy check runs" in commit_and_decide("docs/pipeline.md", base="no-such-commit")
