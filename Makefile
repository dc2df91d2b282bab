PYTHON ?= .venv/bin/python

.PHONY: test triton-test-server

# The Triton tests skip (saying why) when the server cannot be installed, so a
# failed download does not stop the other tests.
test: triton-test-server
	$(PYTHON) -m pytest

triton-test-server:
	-bash deploy/triton/install-test-server.sh $(PYTHON)
