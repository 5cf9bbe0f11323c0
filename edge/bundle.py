"""Model bundles: a folder with model.tflite, manifest.json (``edge.manifest``) and a model card.

Here bundles are found (by name or folder), their files verified (plain files inside the folder,
with the manifest's sha256) and loaded: ``load_bundle`` validates the manifest and checks the
fingerprint before anything runs, so a bundle whose frontend the device does not reproduce is
refused.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import stat
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge import reproducible
from edge.config import DEFAULT_MODEL, VARIANTS
from edge.errors import BundleError
from edge.manifest import MANIFEST_FILE, Manifest, parse_manifest
from edge.model_input import Quantization
from edge.runtime import Runtime, find_runtime, load_interpreter, run_windows


def _shipped_models_dir() -> Path:
    """The shipped bundles: package data edge/models in an installed wheel, else a checkout's models/."""
    package_data = Path(__file__).resolve().parent / "models"
    return package_data if package_data.is_dir() else package_data.parent.parent / "models"


MODELS_DIR = _shipped_models_dir()
MODELS_DIR_VARIABLE = "SER_MODELS_DIR"  # where an installed device keeps its bundles (firmware_scripts/install.sh)


def shipped_emotion_models() -> list[str]:
    """Names of the shipped emotion models (every bundle in ``MODELS_DIR`` but the speech detector)."""
    manifests = sorted(MODELS_DIR.glob(f"*/{MANIFEST_FILE}"))
    return [m.parent.name for m in manifests if not parse_manifest(json.loads(m.read_text())).is_speech_detector]


def bundle_file(bundle_dir: Path, name: str) -> Path:
    """``bundle_dir/name``, checked before anything reads it: a regular file whose real location is
    inside the bundle folder (a link to a sibling is fine; one that leaves the folder, a FIFO, a
    device or a folder is not). Raises BundleError naming the file and the reason."""
    path = bundle_dir / name
    if os.path.dirname(os.path.realpath(path)) != os.path.realpath(bundle_dir):
        raise BundleError(f"{path}: a link that leaves the bundle folder (to {os.path.realpath(path)})")
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise BundleError(f"{path}: missing") from None
    except OSError as error:
        raise BundleError(f"{path}: cannot be read ({error.strerror})") from None
    if not stat.S_ISREG(mode):
        raise BundleError(f"{path}: not a regular file")
    return path


def verified_model_file(bundle_dir: Path, name: str, sha256: str) -> Path:
    """``bundle_file`` whose bytes have the manifest's sha256."""
    path = bundle_file(bundle_dir, name)
    actual = sha256_file(path)
    if actual != sha256:
        raise BundleError(f"{path}: sha256 {actual} does not match the manifest's {sha256}")
    return path


def models_dirs() -> list[Path]:
    """Where bundle names are looked up: $SER_MODELS_DIR (if set), then the shipped models/."""
    configured = os.environ.get(MODELS_DIR_VARIABLE)
    return ([Path(configured)] if configured else []) + [MODELS_DIR]


def resolve_bundle_path(name_or_path: str | Path | None) -> Path:
    """A bundle folder from a path, or a bundle's name in ``models_dirs()``; None means the default."""
    candidate = Path(name_or_path if name_or_path is not None else DEFAULT_MODEL)
    if candidate.is_dir():
        return candidate
    for folder in models_dirs() if candidate.parent == Path(".") else []:
        if (folder / candidate).is_dir():
            return folder / candidate
    raise BundleError(f"{candidate}: no such model bundle (a folder with {MANIFEST_FILE})")


def read_manifest(bundle_dir: Path) -> Manifest:
    """Parse and validate ``bundle_dir/manifest.json`` (no model file, no fingerprint check)."""
    path = bundle_file(bundle_dir, MANIFEST_FILE)
    try:
        document = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BundleError(f"{path}: not valid JSON ({error})") from None
    try:
        return parse_manifest(document, str(path))
    except ValueError as error:
        raise BundleError(str(error)) from None


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class ModelBundle:
    """A verified bundle with its interpreter ready to run."""

    path: Path
    manifest: Manifest
    runtime: Runtime
    interpreter: object
    variant: str = "int8"
    """Which model file runs: int8 (model.tflite) or float32."""

    @property
    def model_sha256(self) -> str:
        """sha256 of the model file that runs."""
        return self.manifest.model_sha256 if self.variant == "int8" else self.manifest.float32_sha256

    def probabilities(self, inputs: np.ndarray) -> np.ndarray:
        """Class probabilities of float model input windows, (windows, classes): quantized for the
        int8 model. The model ends at its logits and the softmax runs here, in edge.reproducible,
        the same bits on every CPU (TFLite's int8 softmax kernel is not)."""
        manifest = self.manifest
        if self.variant == "float32":
            outputs = run_windows(self.interpreter, inputs.astype(np.float32)).astype(np.float64)
        else:
            quantized = manifest.input_quantization.quantize(inputs)
            outputs = manifest.output_quantization.dequantize(run_windows(self.interpreter, quantized))
        return reproducible.softmax(outputs)


# The faster variant per CPU, as measured (docs/benchmarks.md): on x86-64 TFLite's fused int8
# LSTM kernel takes 4-6 ms per window against 0.6-0.9 ms in float32. On the Pi's ARM cores the
# int8 model is the one built for the device; it stays the default there until measured on one.
FASTER_VARIANT = {"x86_64": "float32", "AMD64": "float32"}
AS_ACCURATE_POINTS = {"uar": 1.5, "accuracy": 3.0}
"""Percentage points on the test speakers by which one variant of a model may score below the
other and still count as as accurate: the trainer's gate lets int8 lose this much against float32,
and the device runs float32 where it is faster unless it lost more than this against int8 (one
clip of 240 is 0.4 points: a stricter rule would choose by noise)."""


def float32_as_accurate(manifest: Manifest) -> bool:
    """Whether the float32 model scored as well as the int8 model on the test speakers, within
    ``AS_ACCURATE_POINTS`` of its accuracy and UAR (False where the manifest lacks the scores)."""
    scores = [manifest.test_scores.get(variant, {}) for variant in ("float32", "int8")]
    return all(key in s for s in scores for key in AS_ACCURATE_POINTS) and all(
        scores[0][key] >= scores[1][key] - AS_ACCURATE_POINTS[key] / 100 for key in AS_ACCURATE_POINTS
    )


def choose_variant(manifest: Manifest, requested: str | None, machine: str) -> str:
    """``requested`` if given; else the faster variant for ``machine``, but float32 only if the
    bundle has it and it was as accurate as int8 on the test speakers (``AS_ACCURATE_POINTS``)."""
    if requested is not None:
        if requested not in VARIANTS:
            raise BundleError(f"unknown model variant {requested!r}; choose from {', '.join(VARIANTS)}")
        if requested == "float32" and manifest.float32_file is None:
            raise BundleError(f"{manifest.name}: the bundle has no verifiable float32 model (file and sha256)")
        return requested
    faster = FASTER_VARIANT.get(machine, "int8")
    return "float32" if faster == "float32" and manifest.float32_file and float32_as_accurate(manifest) else "int8"


def _check_tensor(detail: dict, shape: tuple[int, ...], quantization: Quantization | None, what: str, path: Path) -> None:
    scale, zero_point = detail["quantization"]
    actual = (tuple(detail["shape"]), detail["dtype"].__name__, scale, zero_point)
    expected = (shape, "int8", quantization.scale, quantization.zero_point) if quantization else (shape, "float32", 0.0, 0)
    if actual != expected:
        raise BundleError(
            f"{path}: the model's {what} (shape, dtype, scale, zero point) is {actual}, the manifest says {expected}"
        )


def load_bundle(
    name_or_path: str | Path | None = None, runtime: str | None = None, num_threads: int = 1, variant: str | None = None
) -> ModelBundle:
    """Load and verify a bundle: manifest, model file hash, fingerprint, tensor shapes and types.

    ``variant`` int8 or float32; None picks the faster one for this CPU (``choose_variant``).
    Raises BundleError with a one-line reason for anything that does not hold.
    """
    path = resolve_bundle_path(name_or_path)
    manifest = read_manifest(path)
    requested, variant = variant, choose_variant(manifest, variant, platform.machine())
    if requested is None and variant == "float32" and not (path / manifest.float32_file).exists():
        variant = "int8"  # a copy of the bundle without its float32 file still runs
    # The int8 model is the bundle's own, whichever file runs: it is always checked.
    model_path = verified_model_file(path, *manifest.model_files()["int8"])
    if variant == "float32":
        model_path = verified_model_file(path, *manifest.model_files()["float32"])
    reproduced = manifest.expected_fingerprint()
    if reproduced != manifest.fingerprint:
        raise BundleError(
            f"{path}: fingerprint mismatch: the manifest says {manifest.fingerprint}, this device's frontend "
            f"gives {reproduced}; refusing to run a model on features it was not trained on"
        )
    found = find_runtime(runtime)
    interpreter = load_interpreter(found, model_path, num_threads)
    (input_detail,), (output_detail,) = interpreter.get_input_details(), interpreter.get_output_details()
    int8 = variant == "int8"
    _check_tensor(input_detail, manifest.input_shape, manifest.input_quantization if int8 else None, "input", model_path)
    _check_tensor(output_detail, manifest.output_shape, manifest.output_quantization if int8 else None, "output", model_path)
    return ModelBundle(path, manifest, found, interpreter, variant)
