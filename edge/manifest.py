"""A bundle's manifest: its schema, parsing with validation, and writing, in one place.

The manifest carries everything the device needs to reproduce the trainer's input exactly
(frontend config, normalisation, windowing, quantization), the labels, the model files and their
hashes, the fingerprint, and where the model came from and how good it is (training, metrics).
The trainer builds one with ``build_manifest`` and writes it with ``Manifest.write``; the device
reads it with ``parse_manifest`` (``edge.bundle`` resolves, verifies and loads the bundle).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from edge.config import FrontendConfig, Normalisation, WindowingConfig, check
from edge.fingerprint import REFERENCE_SIGNAL_NAME, fingerprint
from edge.model_input import Quantization

SCHEMA_VERSION = 1
MANIFEST_FILE = "manifest.json"
SPEECH_DETECTOR_LABELS = ("no_speech", "speech")
"""The labels that make a bundle a speech detector (``edge.speech_detector``) rather than an emotion model."""

REQUIRED_SECTIONS = {
    "name": str,
    "labels": list,
    "model": dict,
    "frontend": dict,
    "normalisation": dict,
    "windowing": dict,
    "input": dict,
    "output": dict,
    "training": dict,
    "metrics": dict,
    "fingerprint": dict,
    "command": str,
}


@dataclass(frozen=True)
class Manifest:
    """The parsed, validated manifest of a bundle."""

    name: str
    """Bundle name, e.g. lstm-multilingual."""
    labels: tuple[str, ...]
    """Class labels in the order of the model's outputs."""
    frontend: FrontendConfig
    """Exactly how the features were computed in training."""
    normalisation: Normalisation
    """Feature statistics of the training speakers."""
    windowing: WindowingConfig
    """How clips become fixed-length inputs and how window scores are pooled."""
    input_quantization: Quantization
    """int8 quantization of the model input."""
    output_quantization: Quantization
    """int8 quantization of the model output."""
    model_file: str
    """File name of the TFLite model inside the bundle."""
    model_sha256: str
    """sha256 of the TFLite model file."""
    float32_file: str | None
    """File name of the float32 TFLite model, if the bundle has one the device may run."""
    float32_sha256: str | None
    """Its sha256."""
    test_scores: dict[str, dict[str, float]]
    """Each variant's scores on the test speakers, as far as the manifest has them: variant →
    metric (accuracy, uar, ...) → value (0..1)."""
    training_corpus: str | None
    """The corpus (or corpora, joined with +) it was trained on, if the manifest says."""
    test_speakers: tuple[str, ...]
    """The speakers its test scores are of (none for a bundle that does not say)."""
    fingerprint: str
    """sha256 of the int8 input the reference signal becomes (see edge.fingerprint)."""
    document: dict
    """The whole manifest as written, for display."""

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The model input's shape: one window of frames by features."""
        return (1, self.windowing.window_frames, self.frontend.n_features)

    @property
    def output_shape(self) -> tuple[int, ...]:
        """The model output's shape: one score per label."""
        return (1, len(self.labels))

    @property
    def is_speech_detector(self) -> bool:
        """Whether the bundle tells speech from the rest instead of emotions."""
        return self.labels == SPEECH_DETECTOR_LABELS

    def model_files(self) -> dict[str, tuple[str, str]]:
        """Every model file the manifest names, by variant: (file name, sha256)."""
        files = {"int8": (self.model_file, self.model_sha256)}
        if self.float32_file is not None:
            files["float32"] = (self.float32_file, self.float32_sha256)
        return files

    def expected_fingerprint(self) -> str:
        """The fingerprint this machine's frontend gives for this manifest's configuration."""
        return fingerprint(self.frontend, self.normalisation, self.windowing, self.input_quantization)

    def with_sections(self, **sections) -> Manifest:
        """The same manifest with some top-level sections replaced (e.g. training, metrics), validated again."""
        return parse_manifest({**self.document, **sections})

    def write(self, bundle_dir: Path) -> Path:
        """Write it as ``bundle_dir/manifest.json``; returns the file's path."""
        path = Path(bundle_dir) / MANIFEST_FILE
        path.write_text(json.dumps(self.document, indent=2) + "\n")
        return path


def is_plain_file_name(name: object) -> bool:
    """Whether ``name`` names a file directly inside a folder: no separator, not . or .., not empty."""
    return isinstance(name, str) and name not in ("", ".", "..") and not any(c in name for c in "/\\\0")


def _quantization_rules(document: dict, section: str) -> list[tuple[bool, str, str]]:
    """The ``check`` rules of an int8 tensor's section (input or output)."""
    scale, zero_point = document[section].get("scale"), document[section].get("zero_point")
    scale_ok = isinstance(scale, (int, float)) and not isinstance(scale, bool) and scale > 0
    return [
        (document[section].get("dtype") != "int8", f"{section}.dtype", "must be int8"),
        (not scale_ok or not isinstance(zero_point, int), section, "needs a positive scale and an integer zero_point"),
    ]


def parse_manifest(document: dict, what: str = "manifest") -> Manifest:
    """Validate a manifest document; raises ValueError naming ``what`` (the manifest's file), the
    field and the reason, with the ``edge.config.check`` rules, a stage at a time (each needs the last)."""
    check(what, [(not isinstance(document, dict), "the document", "must be a JSON object")])
    version = document.get("schema_version")
    check(what, [(version != SCHEMA_VERSION, "schema_version", f"must be {SCHEMA_VERSION}, got {version!r}")])
    sections = REQUIRED_SECTIONS.items()
    check(
        what, [(not isinstance(document.get(key), kind), key, f"is missing or not a {kind.__name__}") for key, kind in sections]
    )
    labels = document["labels"]
    distinct = bool(labels) and all(isinstance(x, str) and x for x in labels) and len(set(labels)) == len(labels)
    check(what, [(not distinct, "labels", "must be distinct non-empty strings")])
    try:
        frontend = FrontendConfig.from_dict(document["frontend"])
        normalisation = Normalisation.from_dict(document["normalisation"])
        windowing = WindowingConfig.from_dict(document["windowing"])
    except ValueError as error:
        raise ValueError(f"{what}: {error}") from None
    shapes = {"input": [1, windowing.window_frames, frontend.n_features], "output": [1, len(labels)]}  # Manifest.*_shape
    got_shape = {section: document[section].get("shape") for section in shapes}
    model, fingerprint_section = document["model"], document["fingerprint"]
    model_named = isinstance(model.get("file"), str) and isinstance(model.get("sha256"), str)
    check(
        what,
        [
            (
                windowing.trim_db > 0 and not frontend.append_energy,
                "windowing.trim_db",
                "needs frontend.append_energy (feature 0 is the log energy)",
            ),
            (
                len(normalisation.mean) != frontend.n_features,
                "normalisation",
                f"has {len(normalisation.mean)} features, the frontend {frontend.n_features}",
            ),
            *(
                (got_shape[key] != shape, f"{key}.shape", f"must be {shape}, got {got_shape[key]}")
                for key, shape in shapes.items()
            ),
            (
                document["output"].get("activation") != "softmax",
                "output.activation",
                "must be softmax: the model ends at its logits, the device applies the softmax",
            ),
            *_quantization_rules(document, "input"),
            *_quantization_rules(document, "output"),
            (not model_named, "model", "needs file and sha256"),
            *(
                (
                    key in model and not is_plain_file_name(model[key]),
                    f"model.{key}",
                    "must be a plain file name inside the bundle folder",
                )
                for key in ("file", "float32_file")
            ),
            (not isinstance(fingerprint_section.get("sha256"), str), "fingerprint", "needs sha256"),
        ],
    )
    input_quantization = Quantization(float(document["input"]["scale"]), document["input"]["zero_point"])
    output_quantization = Quantization(float(document["output"]["scale"]), document["output"]["zero_point"])
    metrics, training = document.get("metrics") or {}, document.get("training") or {}
    test_scores = {
        variant: {key: float(value) for key, value in scores.items() if isinstance(value, (int, float))}
        for variant, scores in metrics.items()
        if isinstance(scores, dict)
    }
    test_speakers = (training.get("speakers") or {}).get("test") or ()
    return Manifest(
        name=document["name"],
        labels=tuple(labels),
        frontend=frontend,
        normalisation=normalisation,
        windowing=windowing,
        input_quantization=input_quantization,
        output_quantization=output_quantization,
        model_file=model["file"],
        model_sha256=model["sha256"],
        float32_file=model.get("float32_file") if isinstance(model.get("float32_sha256"), str) else None,
        float32_sha256=model.get("float32_sha256") if isinstance(model.get("float32_file"), str) else None,
        test_scores=test_scores,
        training_corpus=training.get("corpus") if isinstance(training.get("corpus"), str) else None,
        test_speakers=tuple(str(s) for s in test_speakers),
        fingerprint=fingerprint_section["sha256"],
        document=document,
    )


def tensor_section(shape, quantization: Quantization) -> dict:
    """A model input or output as the manifest records it: shape, int8, scale and zero point."""
    return {
        "shape": [int(n) for n in shape],
        "dtype": "int8",
        "scale": float(quantization.scale),
        "zero_point": int(quantization.zero_point),
    }


def build_manifest(
    *,
    name: str,
    labels: tuple[str, ...],
    model: dict,
    frontend: FrontendConfig,
    normalisation: Normalisation,
    windowing: WindowingConfig,
    input_shape,
    input_quantization: Quantization,
    output_shape,
    output_quantization: Quantization,
    command: str,
    training: dict | None = None,
    metrics: dict | None = None,
) -> Manifest:
    """The manifest of a new bundle, validated, with its fingerprint computed by this frontend.

    ``model``: the model files' section (file, sha256, size_bytes, float32_file, float32_sha256,
    and what describes the network: architecture, parameters). The model ends at its logits; the
    device applies the softmax.
    """
    return parse_manifest(
        {
            "schema_version": SCHEMA_VERSION,
            "name": name,
            "labels": list(labels),
            "model": model,
            "frontend": frontend.to_dict(),
            "normalisation": normalisation.to_dict(),
            "windowing": windowing.to_dict(),
            "input": tensor_section(input_shape, input_quantization),
            "output": {**tensor_section(output_shape, output_quantization), "activation": "softmax"},
            "fingerprint": {
                "reference_signal": REFERENCE_SIGNAL_NAME,
                "sha256": fingerprint(frontend, normalisation, windowing, input_quantization),
            },
            "command": command,
            "training": training or {},
            "metrics": metrics or {},
        }
    )
