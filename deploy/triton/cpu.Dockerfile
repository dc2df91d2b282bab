# Triton on the CPU with the node's models, where no image registry is reachable (`make image`): the tritonserver
# binary of the nvidia-pytriton wheel (PyPI; install-test-server.sh, as the tests use it) over the dicom-node image,
# whose Python and packages the models' backend stubs run in. Same ports and models as deploy/triton/Dockerfile.
FROM docker.io/library/python:3.11-slim-bookworm AS wheel
COPY deploy/triton/install-test-server.sh /src/install-test-server.sh
RUN python3 -m venv /pip \
    && PIP_CERT=/etc/ssl/certs/ca-certificates.crt TRITON_TEST_CACHE=/opt/triton \
       bash /src/install-test-server.sh /pip/bin/python3 \
    && mv /opt/triton/*-py3.11 /opt/triton/server

FROM localhost/dicom-node:0.1.0
USER root
# The backend stub embeds libpython3.11 (a shared library the python3 package does not bring) and ignores
# PYTHONPATH: a .pth file puts the node's packages on the system interpreter's path.
RUN apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libpython3.11 >/dev/null \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/* \
    && /opt/dicom-node/bin/python3 -P -c 'import sysconfig; print(sysconfig.get_path("purelib"))' \
       > /usr/lib/python3/dist-packages/dicom-node.pth
COPY --from=wheel /opt/triton/server /opt/triton
COPY deploy/triton/models /opt/dicom-node/models
ENV LD_LIBRARY_PATH=/opt/triton/nvidia_pytriton.libs
USER 10001:10001
EXPOSE 8000 8001 8002
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s \
    CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/v2/health/ready', timeout=2)"]
CMD ["/opt/triton/pytriton/tritonserver/bin/tritonserver", "--model-repository=/opt/dicom-node/models", \
     "--backend-directory=/opt/triton/pytriton/tritonserver/backends", "--allow-gpu-metrics=false", \
     "--exit-timeout-secs=10", \
     "--backend-config=python,shm-default-byte-size=16777216", \
     "--backend-config=python,shm-growth-byte-size=67108864"]
