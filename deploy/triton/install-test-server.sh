#!/usr/bin/env bash
# Prepare the CPU `tritonserver` shipped in the nvidia-pytriton wheel, for the tests.
#
# The wheel pins numpy<2, so it is never installed into the project's venv: it is
# downloaded with `pip download --no-deps` and unpacked into a cache folder, and the
# Python backend stub for this Python's minor version is copied next to the backend
# (where `tritonserver --backend-directory` looks for it; pytriton does the same).
# Idempotent: a finished install is marked by a file and reused.
#
# Usage: install-test-server.sh [PYTHON]   (default: python3 on PATH)
# Prints the install folder on its last line: the server is pytriton/tritonserver/bin/tritonserver
# and its backends pytriton/tritonserver/backends under it.
# Env: TRITON_TEST_CACHE (default <repo>/.cache/pytriton), PYTRITON_VERSION. (Not DICOM_NODE_*: that prefix
# is the node's settings, and the node refuses unknown ones.)
set -euo pipefail

python="${1:-python3}"
version="${PYTRITON_VERSION:-0.7.0}"
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cache="${TRITON_TEST_CACHE:-$repo_root/.cache/pytriton}"
py_minor="$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
dest="$cache/$version-py$py_minor"

mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9  # one installer at a time (parallel test runs)

if [[ -f "$dest/.installed" ]]; then
    echo "$dest"
    exit 0
fi

work="$(mktemp -d "$cache/.tmp.XXXXXX")"
trap 'rm -rf "$work"' EXIT

"$python" -m pip download --quiet --no-deps --only-binary=:all: \
    --dest "$work/wheel" "nvidia-pytriton==$version" >&2
wheel="$(ls "$work"/wheel/nvidia_pytriton-*.whl)"
"$python" -m zipfile -e "$wheel" "$work/unpacked" >&2

server="$work/unpacked/pytriton/tritonserver"
stub="$server/python_backend_stubs/$py_minor/triton_python_backend_stub"
if [[ ! -f "$stub" ]]; then
    echo "nvidia-pytriton $version has no Python backend stub for Python $py_minor" >&2
    exit 1
fi
cp "$stub" "$server/backends/python/triton_python_backend_stub"
# zipfile does not keep the executable bits.
chmod +x "$server/bin/tritonserver" "$server/backends/python/triton_python_backend_stub"

# Keep the wheel's layout: the binaries find their bundled libraries through a
# relative RPATH ($ORIGIN/../../../../nvidia_pytriton.libs).
mkdir -p "$work/install"
mv "$work/unpacked/pytriton" "$work/unpacked/nvidia_pytriton.libs" "$work/install/"
touch "$work/install/.installed"
rm -rf "$dest"
mv "$work/install" "$dest"
echo "$dest"
