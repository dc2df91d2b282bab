"""Throw-away TLS certificates for tests of the node's TLS ends (DICOM export, HTTPS)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest


def self_signed(folder: Path, name: str, common_name: str) -> tuple[Path, Path]:
    """A throw-away certificate and key (openssl), valid for 127.0.0.1: it serves as its own CA."""
    openssl = shutil.which("openssl") or pytest.skip("openssl not installed")
    key, cert = folder / f"{name}.key", folder / f"{name}.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", f"/CN={common_name}",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )
    return cert, key
