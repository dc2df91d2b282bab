"""HTTP (binary tensors) against gRPC: latency of TritonModel.infer on the real CPU tritonserver.

Times, per protocol, the classifier input (1x1x192x192x64 float32) and a
full-resolution segmentation input (default 1x1x60x448x448 float32) twice:

- on deploy/triton/models, the node's real models: what a job waits.  Triton's
  statistics give the time spent in the model; the rest is transport, copies
  and queueing.  On a busy machine the model's time varies by seconds and
  drowns the protocol's share;
- on a copy of that repository whose models answer at once with zeros of the
  output's shape and dtype (`Answer`): the same tensors cross the same path,
  with no computation, so many more calls can be timed and the protocols compared.

    python -m bench.triton_latency [--repeats 10] [--transport-repeats 50] [--seg-shape 60 448 448]

(from the repository root).
"""

from __future__ import annotations

import argparse
import re
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import tritonclient.http as httpclient

from dicom_node.inference.settings import LungSegmentationSettings, ModelSettings
from dicom_node.pipelines.covid19.plugin import CovidClassifierSettings
from dicom_node.inference.triton import TritonModel
from dicom_node.pipelines.covid19.classifier_input import build_classifier_input
from phantoms.chest import make_phantom
from tests.triton_server import MODEL_REPOSITORY, REPO, TritonEndpoints, running_tritonserver

STATS_SETTLE_S = 0.5
IN, OUT = "NV_MODEL_INPUT", "NV_MODEL_OUTPUT"


class Answer:
    """Transport-only stand-in: zeros of the output's dtype, of a fixed shape or the input's."""

    def __init__(self, dtype: str, shape: list[int] | None = None) -> None:
        self.dtype = np.dtype(dtype)
        self.shape = tuple(shape) if shape else None

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {OUT: np.zeros(self.shape or inputs[IN].shape, self.dtype)}


ANSWERS = {
    "lung_segmentation": '{\\"dtype\\": \\"uint8\\"}',
    "covid_classifier": '{\\"dtype\\": \\"float32\\", \\"shape\\": [1, 2]}',
}


def transport_repository(folder: Path) -> Path:
    """deploy/triton/models with each model's class replaced by `Answer`, same tensors."""
    for name, kwargs in ANSWERS.items():
        config = (MODEL_REPOSITORY / name / "config.pbtxt").read_text()
        config = re.sub(r'(key: "model_class", value \{ string_value: )"[^"]*"',
                        r'\1"bench.triton_latency:Answer"', config)
        config = re.sub(r'(key: "model_kwargs", value \{ string_value: )".*"',
                        lambda m, kwargs=kwargs: f'{m.group(1)}"{kwargs}"', config)
        (folder / name / "1").mkdir(parents=True)
        (folder / name / "config.pbtxt").write_text(config)
        (folder / name / "1" / "model.py").write_text(
            f"import sys\nsys.path.insert(0, {str(REPO)!r})\n"
            "from dicom_node.inference.triton_python_model import TritonPythonModel  # noqa: E402,F401\n"
        )
    return folder


def compute_ms(triton: TritonEndpoints, model: str) -> float:
    """Total ms spent so far in the model's execute (compute_infer), from Triton's statistics."""
    client = httpclient.InferenceServerClient(f"127.0.0.1:{triton.http_port}")
    compute = client.get_inference_statistics(model)["model_stats"][0]["inference_stats"]["compute_infer"]
    client.close()
    return compute["ns"] / 1e6


def measure(triton: TritonEndpoints, settings: ModelSettings, array: np.ndarray, repeats: int) -> dict[str, float]:
    """Client wall time per call, and its mean part outside the model (transport, copies, queueing).

    Triton updates its statistics after answering, so they are read once for all
    calls, after a pause, rather than per call.
    """
    model = TritonModel(settings)
    inputs = {IN: array}
    model.infer(inputs)  # warm-up: connection, shared-memory growth
    time.sleep(STATS_SETTLE_S)
    before = compute_ms(triton, settings.model_name)
    walls = []
    for _ in range(repeats):
        started = time.perf_counter()
        model.infer(inputs)
        walls.append((time.perf_counter() - started) * 1e3)
    time.sleep(STATS_SETTLE_S)
    in_model = (compute_ms(triton, settings.model_name) - before) / repeats
    return {
        "median_ms": statistics.median(walls),
        "min_ms": min(walls),
        "in_model_ms": in_model,
        "outside_ms": statistics.fmean(walls) - in_model,
    }


Case = tuple[str, type[ModelSettings], np.ndarray]


def report(title: str, triton: TritonEndpoints, cases: list[Case], repeats: int) -> None:
    print(f"\n{title} ({repeats} calls each)\n")
    print("| input | protocol | call, median ms | call, min ms | in the model, mean ms | outside the model, mean ms |")
    print("|---|---|---|---|---|---|")
    for label, settings_class, array in cases:
        for protocol, url in (("HTTP binary", triton.http_url), ("gRPC", triton.grpc_url)):
            r = measure(triton, settings_class(backend="triton", url=url), array, repeats)
            print(f"| {label} | {protocol} | {r['median_ms']:.1f} | {r['min_ms']:.1f} | {r['in_model_ms']:.1f} "
                  f"| {r['outside_ms']:.1f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--transport-repeats", type=int, default=50)
    parser.add_argument("--seg-shape", type=int, nargs=3, default=(60, 448, 448), metavar=("Z", "Y", "X"))
    args = parser.parse_args()

    z, y, x = args.seg_shape
    phantom = make_phantom(size_xyz=(x, y, z), seed=1)
    cases = [
        ("classifier 1x1x192x192x64 float32",
         CovidClassifierSettings, build_classifier_input(phantom.hu, phantom.lungs, phantom.spacing)),
        (f"segmentation 1x1x{z}x{y}x{x} float32",
         LungSegmentationSettings, phantom.hu.astype(np.float32)[np.newaxis, np.newaxis]),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        with running_tritonserver(MODEL_REPOSITORY, Path(tmp)) as triton:
            report("The node's models", triton, cases, args.repeats)
        with running_tritonserver(transport_repository(Path(tmp) / "transport"), Path(tmp)) as triton:
            report("Transport only (models answer zeros at once)", triton, cases, args.transport_repeats)


if __name__ == "__main__":
    main()
