"""The training pipeline: corpus → speaker split → features → Keras → float32 and int8 TFLite →
evaluation on the test speakers → model bundle."""

from __future__ import annotations

import platform
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import tensorflow as tf

from edge.bundle import ModelBundle, sha256_file
from edge.manifest import Manifest, build_manifest
from edge.model_input import Quantization
from edge.runtime import Runtime, find_runtime, load_interpreter
from trainer import fitting
from trainer.corpus import Corpus
from trainer.dataset import ClipSet, babble_pool, load_clips
from trainer.evaluate import classification_metrics
from trainer.fitting import Fit
from trainer.gate import compare_float_int8, gate_failures, summary_line
from trainer.gender import gender_analysis
from trainer.model import export_tflite
from trainer.model_card import write_model_card
from trainer.progress import counter, say
from trainer.recipe import TrainOptions

MODEL_FILE, FLOAT_MODEL_FILE = "model.tflite", "model_float32.tflite"


class QuantizationGateError(RuntimeError):
    """The int8 model lost more accuracy against the float model than allowed."""


def fit(options: TrainOptions, train: ClipSet, labels: tuple[str, ...], held_out: ClipSet | None = None, log=say) -> Fit:
    """``trainer.fitting.fit`` with the options' model, windowing, schedule and regularisers."""
    return fitting.fit(
        options.model,
        train,
        labels,
        options.windowing,
        epochs=options.epochs,
        seed=options.seed,
        balance=options.balance,
        regularisation=options.regularisation,
        subtract_clip_mean=options.subtract_clip_mean,
        divide_clip_std=options.divide_clip_std,
        held_out=held_out,
        log=log,
    )


def int8_manifest(int8_path: Path, model: dict, **sections) -> tuple[Manifest, Runtime, object]:
    """The manifest of a bundle whose int8 model is ``int8_path`` (without training and metrics):
    the file's name, sha256 and size join the ``model`` section, and the interpreter's input and
    output tensors give the shapes and quantization; ``sections`` are build_manifest's other
    arguments. Also the runtime and the interpreter that loaded the file."""
    runtime = find_runtime()
    interpreter = load_interpreter(runtime, int8_path)
    (input_detail,), (output_detail,) = interpreter.get_input_details(), interpreter.get_output_details()
    manifest = build_manifest(
        model={"file": int8_path.name, "sha256": sha256_file(int8_path), "size_bytes": int8_path.stat().st_size, **model},
        input_shape=input_detail["shape"],
        input_quantization=Quantization(*input_detail["quantization"]),
        output_shape=output_detail["shape"],
        output_quantization=Quantization(*output_detail["quantization"]),
        **sections,
    )
    return manifest, runtime, interpreter


def export_bundle(trained: Fit, options: TrainOptions, labels: tuple[str, ...], out_dir: Path) -> tuple[Manifest, ModelBundle]:
    """Write the float32 and full-int8 model files of a trained model into ``out_dir`` and return
    the manifest without its training and metrics sections, and the int8 bundle as the device
    loads it (for evaluation through the device's own classifier)."""
    rng = np.random.default_rng(options.seed)
    calibration = trained.train_windows[rng.permutation(len(trained.train_windows))[: options.calibration_windows]]
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / FLOAT_MODEL_FILE).write_bytes(export_tflite(trained.model, options.model, None))
    int8_path = out_dir / MODEL_FILE
    int8_path.write_bytes(export_tflite(trained.model, options.model, calibration))

    model = {
        "float32_file": FLOAT_MODEL_FILE,
        "float32_sha256": sha256_file(out_dir / FLOAT_MODEL_FILE),
        "architecture": asdict(options.model),
        "parameters": int(trained.model.count_params()),
    }
    manifest, runtime, interpreter = int8_manifest(
        int8_path,
        model,
        name=options.name,
        labels=labels,
        frontend=options.frontend,
        normalisation=trained.normalisation,
        windowing=options.windowing,
        command=options.command,
    )
    return manifest, ModelBundle(out_dir, manifest, runtime, interpreter)


def train_bundle(options: TrainOptions, corpus: Corpus, out_dir: Path) -> dict:
    """Train, export, evaluate and write a bundle into ``out_dir``; returns the manifest.

    Raises QuantizationGateError (after writing nothing) if int8 loses more than allowed.
    """
    started = time.monotonic()
    labels = corpus.labels
    parts = {part: options.split.of(corpus.utterances, part) for part in ("train", "validation", "test")}
    for part, items in parts.items():
        say(f"{part}: {len(items)} clips from {len(getattr(options.split, part))} speakers")
        if not items and part != "validation":  # validation speakers only watch the training
            raise ValueError(f"the {part} split has no utterances")
    clips = {
        part: load_clips(
            items,
            options.frontend,
            options.augment if part == "train" else None,
            options.seed,
            counter(f"features {part}" + (" (with augmented copies)" if part == "train" and options.augment.copies else "")),
            talkers=babble_pool(items, options.augment, options.seed) if part == "train" else None,
        )
        for part, items in parts.items()
    }
    trained = fit(options, clips["train"], labels, clips["validation"] if parts["validation"] else None)
    manifest, bundle = export_bundle(trained, options, labels, out_dir)
    metrics, comparison = test_metrics(bundle, clips["test"], parts["test"], options.seed)
    failures = gate_failures(comparison, options.gate)
    if failures:
        for name in (MODEL_FILE, FLOAT_MODEL_FILE):
            (out_dir / name).unlink()
        raise QuantizationGateError("; ".join(failures) + "; no bundle written")
    training = {
        "corpus": corpus.name,
        "corpora": sorted({u.corpus for u in corpus.utterances}),
        "label_map": corpus.label_map,
        "dropped_clips": corpus.dropped,
        "speakers": {part: list(getattr(options.split, part)) for part in ("train", "validation", "test")},
        "clips": {part: len(items) for part, items in parts.items()},
        "epochs_run": len(trained.history["loss"]),
        "history": {key: [round(float(v), 5) for v in values] for key, values in trained.history.items()},
        "settings": {
            "epochs": options.epochs,
            "seed": options.seed,
            "balance": options.balance,
            "regularisation": options.regularisation.to_dict(),
            "calibration_windows": min(options.calibration_windows, len(trained.train_windows)),
            "gate": asdict(options.gate),
            "augmentation": options.augment.to_dict(),
            "augmented_clips": sum(len(copies) for copies in clips["train"].augmented),
        },
        "software": {"tensorflow": tf.__version__, "python": platform.python_version(), "runtime": str(bundle.runtime)},
        "seconds": round(time.monotonic() - started, 1),
    }
    manifest = manifest.with_sections(training=training, metrics=metrics)
    manifest.write(out_dir)
    write_model_card(manifest.document, out_dir)
    return manifest.document


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
        "float32_gender": gender_analysis(predictions["true"], predictions["float32"], genders, labels, seed),
        "int8_float32_agreement": comparison["argmax_agreement"],
        "max_probability_difference": comparison["max_probability_difference"],
    }
    metrics["per_corpus"] = per_corpus_metrics(predictions, utterances, labels, seed)
    say(f"test speakers, {summary_line(comparison)}")
    return metrics, comparison


def per_corpus_metrics(predictions: dict, utterances: list, labels: tuple[str, ...], seed: int) -> dict:
    """UAR and accuracy of float32 and int8 on each corpus's test speakers (and on ASED's common
    sentences alone, whose text does not tell the emotion), with the int8 gender analysis of each."""
    from trainer.corpus import ASED_COMMON_SENTENCES

    subsets = {corpus: [u.corpus == corpus for u in utterances] for corpus in sorted({u.corpus for u in utterances})}
    if "ased" in subsets:
        subsets["ased, common sentences"] = [u.corpus == "ased" and u.sentence in ASED_COMMON_SENTENCES for u in utterances]
    table = {}
    for name, keep in subsets.items():
        keep = np.asarray(keep)
        truth = np.asarray(predictions["true"])[keep]
        row = {"clips": int(keep.sum())}
        for variant in ("float32", "int8"):
            predicted = np.asarray(predictions[variant])[keep]
            row[variant] = {key: classification_metrics(truth, predicted, labels)[key] for key in ("uar", "accuracy")}
        genders = [u.gender for u, k in zip(utterances, keep) if k]
        row["int8_gender"] = gender_analysis(truth, np.asarray(predictions["int8"])[keep], genders, labels, seed)
        table[name] = row
    return table
