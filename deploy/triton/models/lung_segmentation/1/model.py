"""Triton Python-backend entry point; the node's model it serves is named in ../config.pbtxt."""

import sys
from pathlib import Path

# The backend stub's interpreter ignores PYTHONPATH.  When this model repository lies
# in a dicom-node checkout, serve that checkout's code; otherwise dicom-node must be
# installed in the stub's Python environment (docs/triton.md).
_checkout = next((p for p in Path(__file__).resolve().parents if (p / "dicom_node" / "__init__.py").is_file()), None)
if _checkout is not None:
    sys.path.insert(0, str(_checkout))

from dicom_node.inference.triton_python_model import TritonPythonModel  # noqa: E402,F401
