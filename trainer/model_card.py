"""The model card: what a bundle is for, what it was trained on, and how well it does, for whom."""

from __future__ import annotations

import json
from pathlib import Path

CARD_FILE = "MODEL_CARD.md"
TUNING_FILE, GENDER_EXPERIMENT_FILE = "tuning.json", "gender_experiment.json"
CORPUS_NOTES = {
    "ravdess": "RAVDESS speech (Livingstone & Russo 2018, PLoS ONE 13(5): e0196391; licence CC BY-NC-SA 4.0, "
    "which this model inherits: attribution, non-commercial, share-alike). North-American English, professional "
    "actors, two fixed sentences, studio recordings. Odd actors are male, even female; actors 21–24 were never "
    "seen by anyone here and are not part of these figures.",
    "shemo": "ShEMO, the Sharif Emotional Speech Database (Persian, radio plays; Mohamad Nezami et al. 2019). "
    "Check its licence before sharing this model.",
}


def _percent(x: float) -> str:
    return f"{100 * x:.1f}%"


def _standard_error(proportion: float, n: int) -> float:
    return (proportion * (1 - proportion) / n) ** 0.5


def _metrics_table(metrics: dict) -> list[str]:
    rows = ["| model | clips | accuracy | UAR | macro F1 |", "|---|---|---|---|---|"]
    for name in ("float32", "int8"):
        m = metrics[name]
        rows.append(f"| {name} | {m['clips']} | {_percent(m['accuracy'])} | {_percent(m['uar'])} | {_percent(m['macro_f1'])} |")
    for gender, m in metrics["int8_gender"]["by_gender"].items():
        rows.append(f"| int8, {gender} speakers | {m['clips']} | {_percent(m['accuracy'])} | {_percent(m['uar'])} | {_percent(m['macro_f1'])} |")
    return rows


def _gender_lines(metrics: dict) -> list[str]:
    analysis = metrics["int8_gender"]
    lines = ["| speakers | accuracy (95% CI) | UAR (95% CI) |", "|---|---|---|"]
    for gender, m in analysis["by_gender"].items():
        lines.append(f"| {gender} | {_percent(m['accuracy'])} ({_percent(m['accuracy_ci95'][0])}–{_percent(m['accuracy_ci95'][1])}) "
                     f"| {_percent(m['uar'])} ({_percent(m['uar_ci95'][0])}–{_percent(m['uar_ci95'][1])}) |")  # fmt: skip
    for metric, d in analysis["difference"].items():
        lines.append(f"\nFemale minus male {metric}: {100 * d['female_minus_male']:+.1f} points, permutation-test "
                     f"p = {d['p_value']:.3f} (clips exchanged; with few speakers per gender this is weak evidence "
                     "about genders in general).")  # fmt: skip
    return lines


def _per_class_table(metrics: dict) -> list[str]:
    rows = ["| emotion | precision | recall | F1 | clips |", "|---|---|---|---|---|"]
    for label, m in metrics["int8"]["per_class"].items():
        rows.append(f"| {label} | {_percent(m['precision'])} | {_percent(m['recall'])} | {_percent(m['f1'])} | {m['support']} |")
    return rows


def _confusion_table(labels: list[str], matrix: list[list[int]]) -> list[str]:
    rows = ["| true \\ predicted | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
    rows += [f"| {label} | " + " | ".join(str(n) for n in row) + " |" for label, row in zip(labels, matrix)]
    return rows


def _top_confusions(labels: list[str], matrix: list[list[int]], count: int = 3) -> str:
    cells = [(matrix[t][p], labels[t], labels[p]) for t in range(len(labels)) for p in range(len(labels)) if t != p]
    return ", ".join(f"{true} taken for {predicted} ({n} clips)" for n, true, predicted in sorted(cells, reverse=True)[:count])


def _input_summary(manifest: dict) -> str:
    frontend, windowing, normalisation = manifest["frontend"], manifest["windowing"], manifest["normalisation"]
    rate = frontend["sample_rate"]
    extras = ", ".join(frontend["extras"]) or "no extras"
    deltas = {0: "no deltas", 1: "deltas", 2: "deltas and delta-deltas"}[frontend["delta_order"]]
    clip_mean = "each clip's mean removed, then " if normalisation["subtract_clip_mean"] else ""
    return (
        f"Input: {rate} Hz mono; {1000 * frontend['frame_length'] / rate:g} ms frames every "
        f"{1000 * frontend['frame_step'] / rate:g} ms; {frontend['n_cepstra']} MFCCs from {frontend['n_filters']} mel "
        f"filters{' (c0 replaced by log energy)' if frontend['append_energy'] else ''}, {extras}, {deltas}; "
        f"{clip_mean}standardised with training-speaker statistics; windows of {windowing['window_frames']} frames "
        f"every {windowing['hop_frames']}, probabilities averaged over windows"
        + ("; the model outputs logits and the device applies the softmax (the same bits on every CPU)."
           if manifest["output"].get("activation") == "softmax" else ".")
    )


def read_experiments(bundle_dir: Path) -> tuple[dict | None, list[dict] | None]:
    """The tuning result and gender-experiment rows stored beside a bundle, where present."""
    tuning = bundle_dir / TUNING_FILE
    experiment = bundle_dir / GENDER_EXPERIMENT_FILE
    return (json.loads(tuning.read_text()) if tuning.is_file() else None,
            json.loads(experiment.read_text())["rows"] if experiment.is_file() else None)  # fmt: skip


def _experiment_lines(bundle_dir: Path) -> list[str]:
    tuning, experiment = read_experiments(bundle_dir)
    lines = []
    if tuning:
        lines += ["## Tuning", "", f"{len(tuning['tried'])} configurations by {len(tuning['folds'])}-fold speaker-grouped "
                  f"cross-validation on the training and validation speakers ({tuning['seconds']:.0f} s; "
                  f"{tuning['untried']} left untried by the budget). Best first:", "",
                  "| cell | layers | units | learning rate | batch | CV UAR | CV accuracy |", "|---|---|---|---|---|---|---|"]  # fmt: skip
        lines += [f"| {r['config']['architecture']} | {r['config']['layers']} | {r['config']['units']} | {r['config']['learning_rate']:g} "
                  f"| {r['config']['batch_size']} | {_percent(r['uar'])} | {_percent(r['accuracy'])} |" for r in tuning["tried"]]  # fmt: skip
        lines.append("")
    if experiment:
        lines += ["## Gender-dependent experiment", "", "Same validation and test speakers; float32 Keras models.", "",
                  "| trained on | tested on | training speakers | clips | accuracy | UAR |", "|---|---|---|---|---|---|"]  # fmt: skip
        lines += [f"| {r['trained_on']} | {r['tested_on']} | {r['train_speakers']} | {r['clips']} | {_percent(r['accuracy'])} "
                  f"| {_percent(r['uar'])} |" for r in experiment]  # fmt: skip
        lines.append("")
    return lines


def write_model_card(manifest: dict, out_dir: Path) -> Path:
    """Write MODEL_CARD.md for a bundle from its manifest; every figure comes from the manifest."""
    training, metrics, model = manifest["training"], manifest["metrics"], manifest["model"]
    speakers = training["speakers"]
    arch = model["architecture"]
    lines = [
        f"# Model card: {manifest['name']}",
        "",
        f"Speech emotion recognition, {len(manifest['labels'])} classes ({', '.join(manifest['labels'])}), "
        f"full-int8 TFLite {arch['architecture'].upper()} ({arch['layers']} x {arch['units']} units, "
        f"{model['parameters']} parameters, {model['size_bytes']} bytes) over the edge MFCC frontend.",
        "",
        _input_summary(manifest),
        "",
        "## Intended use",
        "",
        "On-device classification of short utterances (about 0.5 to a few seconds) of acted or clearly "
        "expressed emotional speech, for home automation, robots, kiosks and research logging. Not for "
        "decisions about people: emotion recognised from voice is unreliable, varies by speaker, language "
        "and recording conditions, and must not be used to judge individuals.",
        "",
        "## Training data",
        "",
        f"Corpus: {training['corpus']}. {CORPUS_NOTES.get(training['corpus'], '')}".rstrip(),
        f"Label map: {', '.join(f'{k} → {v}' for k, v in training['label_map'].items() if k != v) or 'none'} "
        "(all other labels kept).",
        f"Speakers (split by speaker, none in two splits): train {', '.join(speakers['train'])}; "
        f"validation {', '.join(speakers['validation'])} (early stopping and learning-rate schedule only); "
        f"test {', '.join(speakers['test'])}.",
        f"Clips: {training['clips']['train']} train, {training['clips']['validation']} validation, "
        f"{training['clips']['test']} test. Epochs run: {training['epochs_run']} (best on validation: "
        f"{training['best_epoch']}).",
        "",
        "## Results on the test speakers",
        "",
        "Clip-level, pooled over windows exactly as the device does; UAR is unweighted average recall.",
        "",
        *_metrics_table(metrics),
        "",
        f"int8 and float32 predict the same class for {_percent(metrics['int8_float32_agreement'])} of test clips.",
        "",
        "By gender (int8; bootstrap intervals over clips):",
        "",
        *_gender_lines(metrics),
        "",
        "Per class (int8):",
        "",
        *_per_class_table(metrics),
        "",
        "Confusion matrix (int8, clips):",
        "",
        *_confusion_table(manifest["labels"], metrics["int8"]["confusion_matrix"]),
        "",
        *_experiment_lines(out_dir),
        "## Limitations",
        "",
        f"- Only {len(speakers['test'])} test speakers: the standard error of the int8 accuracy over clips alone is "
        f"±{100 * _standard_error(metrics['int8']['accuracy'], metrics['int8']['clips']):.1f} points, and speakers differ "
        "more than that (see the rows by gender).",
        "- Acted speech in one language and accent; spontaneous speech, other languages, far-field "
        "microphones and noise will lower accuracy.",
        f"- 'calm' is merged into 'neutral'. Most frequent confusions (int8): "
        f"{_top_confusions(manifest['labels'], metrics['int8']['confusion_matrix'])}.",
        "",
        "## Reproduce",
        "",
        "```",
        manifest["command"],
        "```",
        "",
        f"Software: {', '.join(f'{k} {v}' for k, v in training['software'].items())}. "
        f"Training took {training['seconds']} s on a 2-core x86_64 machine.",
        "",
    ]
    path = out_dir / CARD_FILE
    path.write_text("\n".join(lines))
    return path
