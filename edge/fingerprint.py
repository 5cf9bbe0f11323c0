"""A bundle's fingerprint: the int8 model input that a fixed reference signal becomes.

The trainer stores it in the manifest; the device recomputes it with its own frontend and input
pipeline before it runs the model, and refuses the bundle if the two differ, so a model never runs
on features other than those it was trained and calibrated on.
"""

from __future__ import annotations

import functools
import hashlib

import numpy as np

from edge.config import FrontendConfig, Normalisation, WindowingConfig
from edge.frontend import FRONTEND_VERSION, compute_features
from edge.model_input import Quantization, prepare

REFERENCE_SIGNAL_NAME = "ser-reference-v1"
"""Names the reference signal below in the manifest and in the hash; a new signal needs a new name."""


@functools.lru_cache(maxsize=2)  # every bundle loaded checks it: made once per process (read-only)
def reference_signal(sample_rate: int, seconds: float = 5.0, seed: int = 20261121) -> np.ndarray:
    """A speech-like test signal, long enough for several model windows, made from integer
    arithmetic only so that it is the same on every machine: a sawtooth whose pitch glides
    110..290 Hz, a syllable-rate envelope, and hashed noise.
    """
    n = np.arange(int(seconds * sample_rate), dtype=np.int64)
    increment = (2**32 * (110 + (n * 180) // len(n))) // sample_rate  # phase step of the glide
    phase = np.cumsum(increment) % 2**32
    sawtooth = (phase >> 16) - 2**15  # -32768..32767
    syllable = n % (sample_rate // 4)
    envelope = np.minimum(syllable, sample_rate // 4 - syllable) * 4096 // (sample_rate // 8)
    state = (n.astype(np.uint64) + np.uint64(seed)) * np.uint64(0x9E3779B97F4A7C15)
    state ^= state >> np.uint64(31)
    noise = (state >> np.uint64(52)).astype(np.int64) - 2048  # -2048..2047
    samples = (sawtooth * envelope // 4096 // 2 + noise).astype(np.float64) / 2**15
    samples.flags.writeable = False
    return samples


def fingerprint(
    frontend: FrontendConfig, normalisation: Normalisation, windowing: WindowingConfig, quantization: Quantization
) -> str:
    """sha256 of the int8 model input that the reference signal becomes, with its shape and the
    frontend's version (so that a bundle made before the frontend's arithmetic changed is refused
    even where its int8 input happens to be the same).

    The trainer stores it in the bundle; the device recomputes it to prove that its frontend and
    input pipeline produce exactly what the model was trained and calibrated on.
    """
    features = compute_features(reference_signal(frontend.sample_rate), frontend)
    tensor = quantization.quantize(prepare(features, normalisation, windowing))
    digest = hashlib.sha256(f"{REFERENCE_SIGNAL_NAME}:frontend-{FRONTEND_VERSION}:{tensor.dtype}:{tensor.shape}:".encode())
    digest.update(np.ascontiguousarray(tensor).tobytes())
    return digest.hexdigest()
