"""One-off: make the bundled YOLOX-Nano graph take any input size, so seqvad needs no ``onnx`` at run time.

The exported graph declares a fixed ``1x3x416x416`` input; onnxruntime refuses any other shape,
so seqvad used to re-shape it with the ``onnx`` package every time it loaded it.  The network
itself is fully convolutional: only the declared dims, stale intermediate shapes (``value_info``)
and the batch of three ``Reshape`` targets (``[1, 85, -1]``) are tied to one size.  This script
makes the input ``batch x 3 x height x width`` (symbolic), drops ``value_info``, makes the output
symbolic and the Reshape targets ``[0, 85, -1]`` (0 = copy the batch dim); the weights are
untouched.  Before writing, it checks that the new graph's raw outputs equal those of the graph
as seqvad re-shaped it before, at several sizes and batches.

    pip install onnx && python tools/make_dynamic_yolox.py   # rewrites src/seqvad/assets/yolox_nano.onnx

Run once (already done: the asset in the repository is the result); a dynamic asset is left alone.
"""

from __future__ import annotations

import hashlib
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from seqvad.objects.detectors.yolox import free_reshape_batch, reshaped_model

ASSET = Path(__file__).resolve().parents[1] / "src" / "seqvad" / "assets" / "yolox_nano.onnx"
CHECKS = [(416, 416, 1), (576, 384, 1), (224, 160, 2), (832, 576, 1)]  # width, height, batch


def make_dynamic(data: bytes) -> bytes:
    model = onnx.load_from_string(data)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    for dim, name in zip(dims, ("batch", None, "height", "width")):
        if name:
            dim.dim_param = name  # setting the name clears the fixed value (a protobuf oneof)
    del model.graph.value_info[:]
    free_reshape_batch(model)
    for k, dim in enumerate(model.graph.output[0].type.tensor_type.shape.dim):
        dim.dim_param = f"out{k}"
    onnx.checker.check_model(model)
    return model.SerializeToString()


def outputs(model: bytes, blob: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: blob})[0]


def main() -> int:
    original = ASSET.read_bytes()
    shape = ort.InferenceSession(original, providers=["CPUExecutionProvider"]).get_inputs()[0].shape
    if not all(isinstance(d, int) for d in shape):
        print(f"{ASSET}: already dynamic ({shape}); nothing to do")
        return 0
    dynamic = make_dynamic(original)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "original.onnx"
        copy.write_bytes(original)
        for width, height, batch in CHECKS:
            blob = rng.uniform(0, 255, (batch, 3, height, width)).astype(np.float32)
            before = outputs(reshaped_model(str(copy), 0, width, height, batch > 1), blob)
            after = outputs(dynamic, blob)
            difference = float(np.abs(before - after).max())
            print(f"{width}x{height} batch {batch}: outputs {after.shape}, max difference {difference:.3g}")
            if before.shape != after.shape or difference > 1e-4:
                print("outputs differ: asset not written", file=sys.stderr)
                return 1
    ASSET.write_bytes(dynamic)
    print(f"wrote {ASSET}: {len(dynamic)} bytes, sha256 {hashlib.sha256(dynamic).hexdigest()} "
          f"(was {len(original)} bytes, sha256 {hashlib.sha256(original).hexdigest()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
