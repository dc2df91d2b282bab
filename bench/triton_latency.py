"""HTTP (binary tensors) against gRPC: latency of TritonModel.infer on the real CPU tritonserver.

Runs deploy/triton/models and times, per protocol, the classifier input
(1x1x192x192x64 float32) and a full-resolution segmentation input (default
1x1x60x448x448 float32).  Triton's own statistics give the time spent in the
model (compute); the rest of the client's wall time is transport and queueing,
which is what the protocol changes.

    python -m bench.triton_latency [--repeats 10] [--seg-shape 60 448 448]   (from the repository root)
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import tritonclient.http as httpclient

from dicom_node.inference.settings import CovidClassifierSettings, LungSegmentationSettings, ModelSettings
from dicom_node.inference.triton import TritonModel
from dicom_node.pipeline.phantom import make_phantom
from tests.triton_server import MODEL_REPOSITORY, TritonEndpoints, running_tritonserver


def compute_ms(triton: TritonEndpoints, model: str) -> float:
    """Total ms spent so far in the model's execute (compute_infer), from Triton's statistics."""
    client = httpclient.InferenceServerClient(f"127.0.0.1:{triton.http_port}")
    compute = client.get_inference_statistics(model)["model_stats"][0]["inference_stats"]["compute_infer"]
    client.close()
    return compute["ns"] / 1e6


def measure(triton: TritonEndpoints, settings: ModelSettings, array: np.ndarray, repeats: int) -> dict[str, float]:
    """Per call: client wall time, and the part of it not spent in the model (transport, copies, queueing)."""
    model = TritonModel(settings)
    inputs = {"NV_MODEL_INPUT": array}
    model.infer(inputs)  # warm-up: connection, shared-memory growth
    walls, overheads = [], []
    for _ in range(repeats):
        before = compute_ms(triton, settings.model_name)
        started = time.perf_counter()
        model.infer(inputs)
        wall = (time.perf_counter() - started) * 1e3
        walls.append(wall)
        overheads.append(wall - (compute_ms(triton, settings.model_name) - before))
    return {
        "median_ms": statistics.median(walls),
        "overhead_ms": statistics.median(overheads),
        "overhead_min_ms": min(overheads),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--seg-shape", type=int, nargs=3, default=(60, 448, 448), metavar=("Z", "Y", "X"))
    args = parser.parse_args()

    z, y, x = args.seg_shape
    ct = make_phantom(size_xyz=(x, y, z), seed=1).hu.astype(np.float32)[np.newaxis, np.newaxis]
    classifier_input = np.random.default_rng(0).uniform(size=(1, 1, 192, 192, 64)).astype(np.float32)
    cases = [
        ("classifier 1x1x192x192x64 float32", CovidClassifierSettings, classifier_input),
        (f"segmentation 1x1x{z}x{y}x{x} float32", LungSegmentationSettings, ct),
    ]
    with tempfile.TemporaryDirectory() as tmp, running_tritonserver(MODEL_REPOSITORY, Path(tmp)) as triton:
        print("| input | protocol | call, median ms | outside the model, median ms | outside, min ms |")
        print("|---|---|---|---|---|")
        for label, settings_class, array in cases:
            for protocol, url in (("HTTP binary", triton.http_url), ("gRPC", triton.grpc_url)):
                settings = settings_class(backend="triton", url=url)
                r = measure(triton, settings, array, args.repeats)
                print(f"| {label} | {protocol} | {r['median_ms']:.1f} | {r['overhead_ms']:.1f} "
                      f"| {r['overhead_min_ms']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
