"""The speech detector's int8 network computed in integers: TFLite's reference arithmetic, the
same outputs on every CPU."""

from __future__ import annotations

import numpy as np
import pytest

from edge.int8_dense import Int8Dense, multiply_by_quantized_multiplier, quantize_multiplier
from edge.runtime import run_windows
from edge.speech_detector import detector_model


@pytest.mark.parametrize(
    ("real", "multiplier", "shift"),
    [(0.5, 1 << 30, 0), (0.25, 1 << 30, -1), (1.0, 1 << 30, 1), (0.75, 3 << 29, 0), (0.0, 0, 0)],
)
def test_a_real_scale_is_a_q31_multiplier_and_a_power_of_two(real, multiplier, shift):
    assert quantize_multiplier(real) == (multiplier, shift)


@pytest.mark.parametrize(
    ("x", "real", "expected"),
    [
        (100, 0.25, 25),
        (3, 0.5, 2),  # 1.5: the doubling high multiply rounds a half up...
        (-3, 0.5, -1),  # ... -1.5 too
        (5, 0.25, 2),  # 1.25: rounded twice, 2.5 -> 3 by the multiply, then 1.5 -> 2 by the shift
        (-7, 0.25, -2),
        (1000, 0.75, 750),
        (9, 2.0, 18),
    ],
)
def test_rescaling_rounds_as_tflites_reference_does_twice(x, real, expected):
    multiplier, shift = quantize_multiplier(real)
    assert multiply_by_quantized_multiplier(np.array([x], np.int64), np.int64(multiplier), np.int64(shift))[0] == expected


def test_the_network_gives_the_interpreters_outputs_up_to_one_rounding_step():
    bundle, _ = detector_model("speech-detector")
    windows = bundle.manifest.input_quantization.quantize(np.random.default_rng(0).standard_normal((500, 20, 15)))
    ours, tflite = Int8Dense(bundle.interpreter)(windows).astype(int), run_windows(bundle.interpreter, windows).astype(int)
    assert np.abs(ours - tflite).max() <= 1 and np.mean((ours == tflite).all(axis=1)) > 0.98
