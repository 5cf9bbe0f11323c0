"""A small int8 network of fully connected layers, computed in integers here instead of by the
TFLite interpreter: the same outputs on every CPU, by construction.

TFLite's own int8 FULLY_CONNECTED kernels round the rescaled sums differently on x86-64 and on
arm64 (ai-edge-litert 2.3: 80 of 124 signals gave the speech detector other int8 outputs on
arm64, by a step; its build on each CPU chooses its own rounding). The emotion models' recurrent
layers happen to agree; the speech detector, whose decisions must be the same on both, is
computed here with TFLite's reference arithmetic (``multiply_by_quantized_multiplier``): int32
sums of int8 products, the per-channel rescale in 64-bit integers, the output zero point, the
clamp. numpy's integer arithmetic is exact on every CPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from edge.errors import BundleError


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite's QuantizeMultiplier: ``real`` as a Q31 multiplier and a power-of-two shift,
    real = multiplier * 2**(shift - 31), the multiplier rounded half away from zero."""
    if real == 0:
        return 0, 0
    fraction, shift = math.frexp(real)
    multiplier = math.floor(fraction * (1 << 31) + 0.5)
    if multiplier == 1 << 31:
        multiplier, shift = multiplier // 2, shift + 1
    return multiplier, shift


def multiply_by_quantized_multiplier(x: np.ndarray, multiplier: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """TFLite's MultiplyByQuantizedMultiplier (its reference, "double rounding"), on int64 arrays:
    a rounding doubling high multiply by the Q31 multiplier, then a rounding right shift."""
    x = x * (np.int64(1) << np.maximum(shift, 0))
    product = x * multiplier
    nudge = np.where(product >= 0, np.int64(1 << 30), np.int64(1 - (1 << 30)))
    high = product + nudge
    high = np.where(high >= 0, high >> 31, -((-high) >> 31))  # C's division: toward zero
    exponent = np.maximum(-shift, 0)
    mask = (np.int64(1) << exponent) - 1
    remainder = high & mask
    threshold = (mask >> 1) + (high < 0)
    return (high >> exponent) + (remainder > threshold)


@dataclass(frozen=True)
class DenseLayer:
    """One FULLY_CONNECTED op with int8 weights (zero point 0), an int32 bias and its rescale."""

    weights: np.ndarray
    """(outputs, inputs), the int8 values as float64 (for the exact BLAS product)."""
    bias: np.ndarray
    """(outputs,), int64."""
    input_zero_point: int
    multiplier: np.ndarray
    """Per output: the Q31 multiplier of input scale * weight scale / output scale."""
    shift: np.ndarray
    output_zero_point: int
    low: int
    """The clamp after the zero point: -128, or the zero point under a fused ReLU."""

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """(rows, inputs) int8 → (rows, outputs) int8. The int32 sums are taken by a float64 BLAS
        product: every product and partial sum is an integer of magnitude below inputs x 255 x 128,
        far below 2^53, so it is exact in any order, and many times faster than numpy's integer one."""
        sums = ((x.astype(np.float64) - self.input_zero_point) @ self.weights.T).astype(np.int64) + self.bias
        scaled = multiply_by_quantized_multiplier(sums, self.multiplier, self.shift) + self.output_zero_point
        return np.clip(scaled, self.low, 127).astype(np.int8)


class Int8Dense:
    """The int8 fully connected network of a TFLite interpreter (a reshape, then FULLY_CONNECTED
    ops, each fed by the one before), read once from its tensors and computed in integers."""

    def __init__(self, interpreter):
        tensors = {d["index"]: d for d in interpreter.get_tensor_details()}
        ops = interpreter._get_ops_details()  # the op list: no public accessor
        layers = []
        for op in ops:
            if op["op_name"] == "RESHAPE":
                continue
            if op["op_name"] != "FULLY_CONNECTED":
                raise BundleError(f"the speech detector's model has a {op['op_name']} op; only FULLY_CONNECTED is computed here")
            source, weights, bias = (tensors[i] for i in op["inputs"])
            target = tensors[op["outputs"][0]]
            input_scale, input_zero = (float(v) for v in source["quantization"])
            output_scale, output_zero = target["quantization"]
            weight_scales = weights["quantization_parameters"]["scales"]  # float32, per output
            pairs = [quantize_multiplier(input_scale * float(s) / float(output_scale)) for s in weight_scales]
            relu = op is not ops[-1]  # ReLU fused into every layer but the logits (trainer.speech_detector)
            layers.append(
                DenseLayer(
                    weights=interpreter.get_tensor(weights["index"]).astype(np.float64),
                    bias=interpreter.get_tensor(bias["index"]).astype(np.int64),
                    input_zero_point=int(input_zero),
                    multiplier=np.array([m for m, _ in pairs], dtype=np.int64),
                    shift=np.array([s for _, s in pairs], dtype=np.int64),
                    output_zero_point=int(output_zero),
                    low=max(int(output_zero), -128) if relu else -128,
                )
            )
        self.layers = tuple(layers)

    def __call__(self, windows: np.ndarray) -> np.ndarray:
        """Int8 outputs of int8 input windows: (windows, ...) → (windows, outputs)."""
        x = windows.reshape(len(windows), -1)
        for layer in self.layers:
            x = layer(x)
        return x
