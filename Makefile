# The two commands a newcomer needs: `make serve` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
APT_PACKAGES := dcmtk orthanc dicom3tools chromium chromium-driver npm prometheus
APT_COMMANDS := storescu Orthanc dciodvfy chromium chromedriver npm promtool
# Only the packages whose command is missing are installed: a machine with Node.js from elsewhere keeps its own npm
# (Debian's npm conflicts with it).
# The prebuilt OHIF viewer served under /ohif/ (npm package @ohif/app, its dist/ only; never committed).
OHIF_VERSION := 3.13.2
OHIF_DIR := .cache/ohif
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: serve test test-all bench config system-deps triton-test-server ohif clean

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
		command -v $$c >/dev/null 2>&1 || missing="$$missing $$1"; shift; done; \
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

bench: $(VENV)/.installed system-deps
	$(PY) bench/ingest

## Regenerate config/dicom-node.toml from the documented settings.
config: $(VENV)/.installed
	$(PY) -m dicom_node.config > config/dicom-node.toml

clean:
	rm -rf $(VENV) .cache .pytest_cache
