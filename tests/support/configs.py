"""Frontend configurations the frontend and reproducibility tests check, by name."""

from __future__ import annotations

import dataclasses

from edge.config import FrontendConfig

PSF_LIKE = FrontendConfig(window="rectangular")  # python_speech_features.mfcc's defaults
SHIPPED_LIKE = FrontendConfig(
    frame_length=512, frame_step=256, n_filters=40, n_cepstra=20, extras=("rms", "zcr", "pitch"), delta_order=1
)
CONFIGS = {
    "psf-like": PSF_LIKE,
    "shipped-like": SHIPPED_LIKE,
    "shipped-like-floored": dataclasses.replace(SHIPPED_LIKE, noise_floor_dbfs=-80.0),
    "shipped-like-pitch-at-8khz": dataclasses.replace(SHIPPED_LIKE, pitch_decimation=2),
    "hann-delta2-pitch": FrontendConfig(window="hann", extras=("pitch",), delta_order=2, delta_width=3, lifter=0),
}
