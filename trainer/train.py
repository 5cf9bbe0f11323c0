"""The training pipeline: corpus → speaker split → features → Keras → float32 and int8 TFLite →
evaluation on the test speakers → model bundle."""

from __future__ import annotations

import hashlib
import json
import platform
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf
import tf_keras as keras

from edge.bundle import MANIFEST_FILE, SCHEMA_VERSION, ModelBundle, parse_manifest, sha256_file
from edge.config import FrontendConfig, Normalisation, WindowingConfig
from edge.model_input import Quantization, fingerprint
from edge.runtime import find_runtime, load_interpreter
from trainer.corpus import Corpus
from trainer.augment import AugmentConfig
from trainer.dataset import ClipSet, SpeakerSplit, clip_windows, fit_normalisation, load_clips, window_dataset
from trainer.gender import gender_analysis
from trainer.gate import GateLimits, compare_float_int8, gate_failures, summary_line
from trainer.model import ModelConfig, build_model, export_tflite, without_softmax
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
    gate: GateLimits = field(default_factory=GateLimits)
    """How much int8 may lose against float32 on the test speakers before training fails."""
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    """Altered copies of the training clips (training speakers only, after the split)."""
    command: str = ""
    """The command line that ran this training, recorded for reproduction."""


def _log(message: str) -> None:
    print(f"[ser-train] {message}", flush=True)


def _progress(what: str):
    def report(done: int, total: int) -> None:
        if done == total or done % 100 == 0:
            _log(f"{what}: {done}/{total}")

    return report


@dataclass
class Fit:
    """A trained Keras model with what it was trained on."""

    model: object
    normalisation: Normalisation
    history: dict
    train_windows: np.ndarray


def fit(options: TrainOptions, train: ClipSet, validation: ClipSet, labels: tuple[str, ...], verbose: int = 2) -> Fit:
    """Train on the training clips and their augmented copies, checkpointing, stopping early and
    lowering the learning rate on the validation clips; normalisation from training clips only."""
    normalisation = fit_normalisation(train.features, options.subtract_clip_mean, options.windowing.trim_db)
    copies = [(copy, target) for clips, target in zip(train.augmented, train.targets(labels)) for copy in clips]
    train_xy = window_dataset(
        train.features + [c for c, _ in copies], train.targets(labels) + [t for _, t in copies], normalisation, options.windowing
    )
    validation_xy = window_dataset(validation.features, validation.targets(labels), normalisation, options.windowing)
    if verbose:
        _log(f"windows: {len(train_xy[0])} train ({len(copies)} augmented clips), {len(validation_xy[0])} validation, "
             f"shape {train_xy[0].shape[1:]}")  # fmt: skip
    with tempfile.TemporaryDirectory() as scratch:
        model, history = _train_keras(options, train_xy, validation_xy, len(labels), Path(scratch) / "best.weights.h5", verbose)
    return Fit(model, normalisation, history, train_xy[0])


def predict_clips(result: Fit, clips: ClipSet, windowing: WindowingConfig) -> np.ndarray:
    """Keras float32 class of each clip, window probabilities pooled as the device pools them."""
    windows = [clip_windows(f, result.normalisation, windowing) for f in clips.features]
    probabilities = result.model.predict(np.concatenate(windows), verbose=0, batch_size=256)
    bounds = np.cumsum([0] + [len(w) for w in windows])
    return np.array([int(np.argmax(probabilities[a:b].mean(axis=0))) for a, b in zip(bounds[:-1], bounds[1:])])


def _train_keras(options: TrainOptions, train_xy, validation_xy, n_classes: int, checkpoint: Path, verbose: int):
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
    # Every choice here watches the validation speakers, never the test speakers.
    callbacks = [
        keras.callbacks.ModelCheckpoint(str(checkpoint), monitor="val_loss", save_best_only=True, save_weights_only=True),
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=options.patience),
        keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=max(options.patience // 3, 1)),
    ]
    history = model.fit(
        x_train, y_train, validation_data=validation_xy, epochs=options.epochs, batch_size=options.model.batch_size,
        class_weight=class_weight, callbacks=callbacks, verbose=verbose, shuffle=True,
    )  # fmt: skip
    model.load_weights(str(checkpoint))
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
    clips = {
        part: load_clips(items, options.frontend, options.augment if part == "train" else None, options.seed,
                         _progress(f"features {part}" + (" (with augmented copies)" if part == "train" and options.augment.copies else "")))
        for part, items in parts.items()
    }  # fmt: skip
    trained = fit(options, clips["train"], clips["validation"], labels)
    model, normalisation, history = trained.model, trained.normalisation, trained.history
    rng = np.random.default_rng(options.seed)
    calibration = trained.train_windows[rng.permutation(len(trained.train_windows))[: options.calibration_windows]]
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / FLOAT_MODEL_FILE).write_bytes(export_tflite(model, options.model, None))
    int8_path = out_dir / MODEL_FILE
    int8_path.write_bytes(export_tflite(model, options.model, calibration))

    runtime = find_runtime()
    interpreter = load_interpreter(runtime, int8_path)
    (input_detail,), (output_detail,) = interpreter.get_input_details(), interpreter.get_output_details()
    input_section, output_section = _tensor_section(input_detail), _tensor_section(output_detail)
    output_section["activation"] = "softmax"  # export_tflite leaves it to the device
    input_quantization = Quantization(input_section["scale"], input_section["zero_point"])

    document = {
        "schema_version": SCHEMA_VERSION,
        "name": options.name,
        "labels": list(labels),
        "model": {
            "file": MODEL_FILE, "sha256": sha256_file(int8_path), "size_bytes": int8_path.stat().st_size,
            "float32_file": FLOAT_MODEL_FILE, "float32_sha256": sha256_file(out_dir / FLOAT_MODEL_FILE),
            "architecture": asdict(options.model),
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
    bundle = ModelBundle(out_dir, parse_manifest(document), runtime, interpreter)
    metrics, comparison = test_metrics(bundle, clips["test"], parts["test"], options.seed)
    failures = gate_failures(comparison, options.gate)
    if failures:
        for name in (MODEL_FILE, FLOAT_MODEL_FILE):
            (out_dir / name).unlink()
        raise QuantizationGateError("; ".join(failures) + "; no bundle written")
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
                     "calibration_windows": len(calibration), "gate": asdict(options.gate),
                     "augmentation": options.augment.to_dict(),
                     "augmented_clips": sum(len(copies) for copies in clips["train"].augmented)},
        "software": {"tensorflow": tf.__version__, "python": platform.python_version(), "runtime": str(runtime)},
        "seconds": round(time.monotonic() - started, 1),
    }  # fmt: skip
    (out_dir / MANIFEST_FILE).write_text(json.dumps(document, indent=2) + "\n")
    write_model_card(document, out_dir)
    return document


def test_metrics(bundle: ModelBundle, clips: ClipSet, utterances: list, seed: int) -> tuple[dict, dict]:
    """The manifest's metrics section for the test speakers' clips, and the float/int8 comparison.
    The int8 model is evaluated through the device's own classifier, the float one alike."""
    labels = bundle.manifest.labels
    comparison = compare_float_int8(bundle, clips.features, clips.targets(labels))
    predictions = comparison.pop("predictions")
    genders = [u.gender for u in utterances]
    metrics = {
        "split": "test speakers (never used for training, early stopping or model choice)",
        **{key: comparison[key] for key in ("float32", "int8")},
        "int8_gender": gender_analysis(predictions["true"], predictions["int8"], genders, labels, seed),
        "int8_float32_agreement": comparison["argmax_agreement"],
        "max_probability_difference": comparison["max_probability_difference"],
    }
    _log(f"test speakers, {summary_line(comparison)}")
    return metrics, comparison


def move_softmax_to_device(bundle_dir: Path, corpus: Corpus) -> dict:
    """Rewrite a bundle whose models end in TFLite's softmax (made before the device applied it):
    strip the SOFTMAX from both model files, record the logits' quantization and the activation,
    and evaluate again on the manifest's test speakers (metrics, then the model card). The
    fingerprint does not change: the model input is the same. Returns the new manifest."""
    document = json.loads((bundle_dir / MANIFEST_FILE).read_text())
    if document["output"].get("activation") == "softmax":
        return document
    model = document["model"]
    int8_file, float_file = model["file"], model["float32_file"]
    stripped = {name: without_softmax((bundle_dir / name).read_bytes()) for name in (int8_file, float_file)}
    model["sha256"] = hashlib.sha256(stripped[int8_file]).hexdigest()
    model["float32_sha256"] = hashlib.sha256(stripped[float_file]).hexdigest()
    model["size_bytes"] = len(stripped[int8_file])
    with tempfile.TemporaryDirectory() as scratch:  # the stripped bundle is evaluated before it replaces the old
        for name, content in stripped.items():
            (Path(scratch) / name).write_bytes(content)
        runtime = find_runtime()
        interpreter = load_interpreter(runtime, Path(scratch) / int8_file)
        document["output"] = {**_tensor_section(interpreter.get_output_details()[0]), "activation": "softmax"}
        test_speakers = set(document["training"]["speakers"]["test"])
        utterances = [u for u in corpus.utterances if u.speaker in test_speakers]
        clips = load_clips(utterances, FrontendConfig.from_dict(document["frontend"]), None, 0, _progress("features test"))
        bundle = ModelBundle(Path(scratch), parse_manifest(document), runtime, interpreter)
        document["metrics"], _ = test_metrics(bundle, clips, utterances, document["training"]["settings"]["seed"])
    for name, content in stripped.items():
        (bundle_dir / name).write_bytes(content)
    (bundle_dir / MANIFEST_FILE).write_text(json.dumps(document, indent=2) + "\n")
    write_model_card(document, bundle_dir)
    return document
