"""The training pipeline: corpus → speaker split → features → Keras → float32 and int8 TFLite →
evaluation on the test speakers → model bundle."""

from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf
import tf_keras as keras

from edge.bundle import MANIFEST_FILE, SCHEMA_VERSION, Manifest, ModelBundle, parse_manifest, sha256_file
from edge.classifier import Classifier
from edge.config import FrontendConfig, WindowingConfig
from edge.model_input import Quantization, fingerprint
from edge.runtime import find_runtime, load_interpreter, run_windows
from trainer.corpus import Corpus
from trainer.dataset import SpeakerSplit, clip_windows, extract_features, fit_normalisation, window_dataset
from trainer.evaluate import classification_metrics, metrics_by_group, pooled_predictions
from trainer.model import ModelConfig, build_model, export_tflite
from trainer.model_card import write_model_card

# The shipped models' frontend: 32 ms frames every 16 ms, 40 mel filters, 20 cepstra with log
# energy, pitch, zero-crossing rate and RMS, plus deltas; 192-frame (3.1 s) windows.
DEFAULT_FRONTEND = FrontendConfig(
    frame_length=512, frame_step=256, n_fft=512, n_filters=40, n_cepstra=20,
    extras=("rms", "zcr", "pitch"), delta_order=1,
)  # fmt: skip
DEFAULT_WINDOWING = WindowingConfig(window_frames=192, hop_frames=96, min_frames=32)
MODEL_FILE, FLOAT_MODEL_FILE = "model.tflite", "model_float32.tflite"


class QuantizationGateError(RuntimeError):
    """The int8 model lost more accuracy against the float model than allowed."""


@dataclass(frozen=True)
class TrainOptions:
    """Everything one training run depends on."""

    name: str
    """Bundle name, e.g. lstm-ravdess."""
    split: SpeakerSplit
    """Speakers for train, validation and test."""
    model: ModelConfig = field(default_factory=ModelConfig)
    """Architecture and optimiser settings."""
    frontend: FrontendConfig = DEFAULT_FRONTEND
    """Feature extraction, shared with the device."""
    windowing: WindowingConfig = DEFAULT_WINDOWING
    """Model input length and pooling, shared with the device."""
    subtract_clip_mean: bool = True
    """Remove each clip's mean feature vector before normalising (helps with unseen speakers)."""
    epochs: int = 80
    """Most epochs; early stopping on the validation speakers usually ends sooner."""
    patience: int = 12
    """Epochs without validation-loss improvement before stopping."""
    seed: int = 7
    """Seed for weights, shuffling and calibration sampling."""
    calibration_windows: int = 400
    """Training windows used to calibrate int8 quantization."""
    max_int8_drop: float = 3.0
    """Largest allowed drop of int8 test accuracy below float, in percentage points."""
    command: str = ""
    """The command line that ran this training, recorded for reproduction."""


def _log(message: str) -> None:
    print(f"[ser-train] {message}", flush=True)


def _progress(what: str):
    def report(done: int, total: int) -> None:
        if done == total or done % 100 == 0:
            _log(f"{what}: {done}/{total}")

    return report


def _train_keras(options: TrainOptions, train_xy, validation_xy, n_classes: int):
    keras.utils.set_random_seed(options.seed)
    x_train, y_train = train_xy
    model = build_model(options.model, x_train.shape[1], x_train.shape[2], n_classes)
    model.compile(
        optimizer=keras.optimizers.Adam(options.model.learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    counts = np.bincount(y_train, minlength=n_classes)
    class_weight = {c: len(y_train) / (n_classes * counts[c]) for c in range(n_classes) if counts[c]}
    callbacks = [
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=options.patience, restore_best_weights=True),
        keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=max(options.patience // 3, 1)),
    ]
    history = model.fit(
        x_train, y_train, validation_data=validation_xy, epochs=options.epochs, batch_size=options.model.batch_size,
        class_weight=class_weight, callbacks=callbacks, verbose=2, shuffle=True,
    )  # fmt: skip
    return model, history.history


def _tensor_section(detail: dict) -> dict:
    scale, zero_point = detail["quantization"]
    return {"shape": [int(n) for n in detail["shape"]], "dtype": "int8", "scale": float(scale), "zero_point": int(zero_point)}


def train_bundle(options: TrainOptions, corpus: Corpus, out_dir: Path) -> dict:
    """Train, export, evaluate and write a bundle into ``out_dir``; returns the manifest.

    Raises QuantizationGateError (after writing nothing) if int8 loses more than allowed.
    """
    started = time.monotonic()
    labels = corpus.labels
    parts = {part: options.split.of(corpus.utterances, part) for part in ("train", "validation", "test")}
    for part, items in parts.items():
        _log(f"{part}: {len(items)} clips from speakers {', '.join(getattr(options.split, part))}")
        if not items:
            raise ValueError(f"the {part} split has no utterances")
    features = {part: extract_features(items, options.frontend, _progress(f"features {part}")) for part, items in parts.items()}
    targets = {part: [labels.index(u.label) for u in items] for part, items in parts.items()}
    normalisation = fit_normalisation(features["train"], options.subtract_clip_mean)
    train_xy = window_dataset(features["train"], targets["train"], normalisation, options.windowing)
    validation_xy = window_dataset(features["validation"], targets["validation"], normalisation, options.windowing)
    _log(f"windows: {len(train_xy[0])} train, {len(validation_xy[0])} validation, shape {train_xy[0].shape[1:]}")

    model, history = _train_keras(options, train_xy, validation_xy, len(labels))
    rng = np.random.default_rng(options.seed)
    calibration = train_xy[0][rng.permutation(len(train_xy[0]))[: options.calibration_windows]]
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / FLOAT_MODEL_FILE).write_bytes(export_tflite(model, options.model, None))
    int8_path = out_dir / MODEL_FILE
    int8_path.write_bytes(export_tflite(model, options.model, calibration))

    runtime = find_runtime()
    interpreter = load_interpreter(runtime, int8_path)
    (input_detail,), (output_detail,) = interpreter.get_input_details(), interpreter.get_output_details()
    input_section, output_section = _tensor_section(input_detail), _tensor_section(output_detail)
    input_quantization = Quantization(input_section["scale"], input_section["zero_point"])

    # Evaluate the int8 model through the device's own classifier, the float one alike.
    test_features, test_clips = features["test"], [clip_windows(f, normalisation, options.windowing) for f in features["test"]]
    document = {
        "schema_version": SCHEMA_VERSION,
        "name": options.name,
        "labels": list(labels),
        "model": {
            "file": MODEL_FILE, "sha256": sha256_file(int8_path), "size_bytes": int8_path.stat().st_size,
            "float32_file": FLOAT_MODEL_FILE, "architecture": asdict(options.model),
            "parameters": int(model.count_params()),
        },
        "frontend": options.frontend.to_dict(),
        "normalisation": normalisation.to_dict(),
        "windowing": options.windowing.to_dict(),
        "input": input_section,
        "output": output_section,
        "fingerprint": {
            "reference_signal": "ser-reference-v1",
            "sha256": fingerprint(options.frontend, normalisation, options.windowing, input_quantization),
        },
        "command": options.command,
        "training": {},
        "metrics": {},
    }  # fmt: skip
    manifest: Manifest = parse_manifest(document)
    device = Classifier(ModelBundle(out_dir, manifest, runtime, interpreter))
    y_test = np.asarray(targets["test"])
    y_int8 = pooled_predictions([device.window_probabilities(f) for f in test_features])
    float_interpreter = load_interpreter(runtime, out_dir / FLOAT_MODEL_FILE)
    y_float = pooled_predictions([run_windows(float_interpreter, clip) for clip in test_clips])
    genders = [u.gender for u in parts["test"]]
    metrics = {
        "split": "test speakers (never used for training, early stopping or model choice)",
        "float32": classification_metrics(y_test, y_float, labels),
        "int8": classification_metrics(y_test, y_int8, labels),
        "int8_by_gender": metrics_by_group(y_test, y_int8, genders, labels),
        "int8_float32_agreement": round(float(np.mean(y_int8 == y_float)), 4),
    }
    drop = 100 * (metrics["float32"]["accuracy"] - metrics["int8"]["accuracy"])
    _log(
        f"test accuracy float32 {metrics['float32']['accuracy']:.2%} int8 {metrics['int8']['accuracy']:.2%} "
        f"(drop {drop:.1f} points); UAR float32 {metrics['float32']['uar']:.2%} int8 {metrics['int8']['uar']:.2%}"
    )
    if drop > options.max_int8_drop:
        for name in (MODEL_FILE, FLOAT_MODEL_FILE):
            (out_dir / name).unlink()
        raise QuantizationGateError(
            f"int8 test accuracy is {drop:.1f} points below float32 (allowed: {options.max_int8_drop}); no bundle written"
        )
    document["metrics"] = metrics
    document["training"] = {
        "corpus": corpus.name,
        "label_map": corpus.label_map,
        "speakers": {part: list(getattr(options.split, part)) for part in ("train", "validation", "test")},
        "clips": {part: len(items) for part, items in parts.items()},
        "epochs_run": len(history["loss"]),
        "best_epoch": int(np.argmin(history["val_loss"])) + 1,
        "history": {key: [round(float(v), 5) for v in values] for key, values in history.items()},
        "settings": {"epochs": options.epochs, "patience": options.patience, "seed": options.seed,
                     "calibration_windows": len(calibration), "max_int8_drop": options.max_int8_drop},
        "software": {"tensorflow": tf.__version__, "python": platform.python_version(), "runtime": str(runtime)},
        "seconds": round(time.monotonic() - started, 1),
    }  # fmt: skip
    (out_dir / MANIFEST_FILE).write_text(json.dumps(document, indent=2) + "\n")
    write_model_card(document, out_dir)
    return document
