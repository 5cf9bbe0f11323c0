"""The model card: what a bundle is for, what it was trained on, and how well it does, for whom."""

from __future__ import annotations

import json
from pathlib import Path

CARD_FILE = "MODEL_CARD.md"
EXPERIMENT_FILES = {
    "cv": "cv.json",
    "loco": "loco.json",
    "gender": "gender_experiment.json",
    "tuning": "tuning.json",
    "rooms": "rooms.json",
}
ROOM_PLOT_FILE = "rooms.png"  # UAR against SNR per noise type, written by the report beside the card
CORPUS_NOTES = {
    "ravdess": "RAVDESS speech (Livingstone & Russo 2018, PLoS ONE 13(5): e0196391; licence CC BY-NC-SA 4.0, "
    "which this model inherits: attribution, non-commercial, share-alike). North-American English, professional "
    "actors, two fixed sentences, studio recordings. Odd actors are male, even female; actors 21–24 were never "
    "seen by anyone here and are not part of these figures.",
    "emodb": "EmoDB, the Berlin Database of Emotional Speech (German, 10 actors; Burkhardt et al. 2005, "
    "Interspeech); free for research, cite the paper. Boredom has no canonical class and is dropped.",
    "savee": "SAVEE (British English, 4 male speakers; Haq & Jackson 2009, 2010, University of Surrey); free for research.",
    "casia": "CASIA Chinese emotional speech, public 1,200-utterance set (Mandarin, 4 speakers; Institute of "
    "Automation, Chinese Academy of Sciences); research use. No disgust.",
    "emotiontts": "emotiontts_open_db public 5 % sample (Korean, 15 speakers; KAIST / SELVAS AI); CC BY-NC-SA, "
    "research only. Four emotions: neutral, happy, angry, sad.",
    "shemo": "ShEMO, the Sharif Emotional Speech Database (Persian, radio plays; Mohamad Nezami et al. 2019). "
    "Check its licence before sharing this model.",
}


BALANCE_NOTES = {
    "corpus-gender-class": "clips weighted so that every speaker of a corpus, its women and its men, and every class count alike",
    "corpus-class": "clips weighted so that every speaker of a corpus and every class count alike",
    "class": "clips weighted so that every class counts alike",
    "none": "clips not weighted",
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
    for name in ("float32", "int8"):
        for gender, m in metrics.get(f"{name}_gender", {}).get("by_gender", {}).items():
            rows.append(
                f"| {name}, {gender} speakers | {m['clips']} | {_percent(m['accuracy'])} | {_percent(m['uar'])} "
                f"| {_percent(m['macro_f1'])} |"
            )
    return rows


def difference_interval_text(difference: dict) -> str:
    """' (95% CI −1.2 to +17.0)' for a female-minus-male difference that has an interval."""
    if "ci95" not in difference:  # bundles made before the interval was computed
        return ""
    low, high = difference["ci95"]
    return f" (95% CI {100 * low:+.1f} to {100 * high:+.1f})"


def _gender_lines(metrics: dict) -> list[str]:
    analysis = metrics["int8_gender"]
    lines = ["| speakers | accuracy (95% CI) | UAR (95% CI) |", "|---|---|---|"]
    for gender, m in analysis["by_gender"].items():
        lines.append(
            f"| {gender} | {_percent(m['accuracy'])} ({_percent(m['accuracy_ci95'][0])}–{_percent(m['accuracy_ci95'][1])}) "
            f"| {_percent(m['uar'])} ({_percent(m['uar_ci95'][0])}–{_percent(m['uar_ci95'][1])}) |"
        )
    genders = list(analysis["by_gender"])
    if genders:
        lines += [
            "",
            "Recall per class and gender (int8), where a gap comes from:",
            "",
            "| emotion | " + " | ".join(genders) + " |",
            "|---" * (len(genders) + 1) + "|",
        ]
        for label in analysis["by_gender"][genders[0]]["per_class"]:
            lines.append(
                f"| {label} | "
                + " | ".join(_percent(analysis["by_gender"][g]["per_class"][label]["recall"]) for g in genders)
                + " |"
            )
    for metric, d in analysis["difference"].items():
        lines.append(
            f"\nFemale minus male {metric}: {100 * d['female_minus_male']:+.1f} points{difference_interval_text(d)}, "
            "permutation-test "
            f"p = {d['p_value']:.3f} (clips exchanged; with few speakers per gender this is weak evidence "
            "about genders in general)."
        )
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
    decimation = frontend.get("pitch_decimation", 1)
    pitch = "pitch" if decimation == 1 else f"pitch (searched at {rate // decimation} Hz)"
    extras = ", ".join(pitch if extra == "pitch" else extra for extra in frontend["extras"]) or "no extras"
    deltas = {0: "no deltas", 1: "deltas", 2: "deltas and delta-deltas"}[frontend["delta_order"]]
    clip_mean = "each clip's mean removed, then " if normalisation["subtract_clip_mean"] else ""
    floor = frontend.get("noise_floor_dbfs")
    floor_note = "" if floor is None else f"power spectra floored at that of white noise at {floor:g} dBFS; "
    if normalisation.get("divide_clip_std"):
        clip_mean = "each clip's own mean removed and its own std divided out, then "
    return (
        f"Input: {rate} Hz mono; {1000 * frontend['frame_length'] / rate:g} ms frames every "
        f"{1000 * frontend['frame_step'] / rate:g} ms; {frontend['n_cepstra']} MFCCs from {frontend['n_filters']} mel "
        f"filters{' (c0 replaced by log energy)' if frontend['append_energy'] else ''}, {extras}, {deltas}; "
        f"{floor_note}"
        f"{clip_mean}standardised with training-speaker statistics; windows of {windowing['window_frames']} frames "
        f"every {windowing['hop_frames']}, probabilities averaged over windows; the model outputs logits and the "
        "device applies the softmax (the same bits on every CPU)."
    )


def read_experiments(bundle_dir: Path) -> dict:
    """The experiments stored beside a bundle (cross-validation, leave-one-corpus-out, gender
    experiment, tuning), each where present."""
    return {
        key: json.loads((bundle_dir / name).read_text())
        for key, name in EXPERIMENT_FILES.items()
        if (bundle_dir / name).is_file()
    }


def _mean_std(summary: dict) -> str:
    return f"{_percent(summary['mean'])} ± {_percent(summary['std'])}"


def _cv_lines(cv: dict) -> list[str]:
    speakers = sum(len(r["speakers"]) for r in cv["results"])
    lines = [
        "## Cross-validated figures of the recipe",
        "",
        f"{cv['folds']}-fold cross-validation over the {speakers} development speakers of every corpus (folds "
        "grouped by speaker, stratified by corpus, emotion and gender; the test speakers are in no fold); each "
        "fold's int8 model run through the device's classifier; mean ± standard deviation over folds.",
        "",
        "| held-out clips | clips | UAR | accuracy |",
        "|---|---|---|---|",
        f"| all | {sum(len(r['true']) for r in cv['results'])} | {_mean_std(cv['uar'])} | {_mean_std(cv['accuracy'])} |",
    ]
    for key in ("per_corpus", "per_gender"):
        lines += [
            f"| {name} | {row['clips']} | {_mean_std(row['uar'])} | {_mean_std(row['accuracy'])} |"
            for name, row in cv[key].items()
        ]
    by_corpus_gender = cv.get("per_corpus_gender", {})
    if by_corpus_gender:
        lines += [
            "",
            "Within each corpus (a gap pooled over corpora also measures which corpora have men or women: SAVEE is all male):",
            "",
            "| corpus | female UAR | male UAR | female − male |",
            "|---|---|---|---|",
        ]
        for corpus in cv["per_corpus"]:
            female, male = (by_corpus_gender.get(f"{corpus}/{g}", {}).get("uar", {}).get("mean") for g in ("female", "male"))
            gap = f"{(female - male) * 100:+.1f} points" if female is not None and male is not None else "–"
            lines.append(
                f"| {corpus} | {_percent(female) if female is not None else '–'} | "
                f"{_percent(male) if male is not None else '–'} | {gap} |"
            )
    if cv.get("best_epochs"):
        lines += [
            "",
            f"Mean held-out UAR (float32 Keras) was highest after {cv['best_epochs']} of {len(cv['epoch_uar'])} epochs.",
        ]
    return lines + [""]


def _loco_lines(loco: dict) -> list[str]:
    lines = [
        "## Leave one corpus out",
        "",
        "Trained on the development speakers of all other corpora, tested on every clip of the corpus left out "
        "(int8, device classifier): how the recipe does on a language and recording set-up it never heard.",
        "",
        "| corpus left out | clips | classes | UAR (chance) | accuracy | female UAR | male UAR |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, row in loco["corpora"].items():
        by_gender = {g: _percent(r["uar"]["mean"]) for g, r in row["per_gender"].items()}
        lines.append(
            f"| {name} | {row['clips']} | {row['classes']} | {_percent(row['uar'])} ({_percent(row['chance_uar'])}) "
            f"| {_percent(row['accuracy'])} | {by_gender.get('female', '–')} | {by_gender.get('male', '–')} |"
        )
    return lines + [""]


def per_corpus_lines(metrics: dict) -> list[str]:
    """Test figures per corpus: float32 and int8 UAR, and int8 UAR by gender with the female-minus-male gap."""
    if "per_corpus" not in metrics:  # bundles made before it was recorded
        return []
    lines = [
        "Per corpus (UAR; the gap is female minus male, int8, 95% bootstrap interval over clips):",
        "",
        "| test speakers | clips | float32 | int8 | int8 women | int8 men | gap |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, row in metrics["per_corpus"].items():
        by_gender = row["int8_gender"]["by_gender"]
        gap = row["int8_gender"]["difference"].get("uar")
        gap_text = f"{100 * gap['female_minus_male']:+.1f}{difference_interval_text(gap)}" if gap else "–"
        lines.append(
            f"| {name} | {row['clips']} | {_percent(row['float32']['uar'])} | {_percent(row['int8']['uar'])} "
            f"| {_percent(by_gender['female']['uar']) if 'female' in by_gender else '–'} "
            f"| {_percent(by_gender['male']['uar']) if 'male' in by_gender else '–'} "
            f"| {gap_text} |"
        )
    return lines + [""]


def room_lines(rooms: dict) -> list[str]:
    """The "In a room" section: every condition's UAR, float32 and int8, overall and per corpus."""
    corpora = sorted({c for row in rooms["conditions"].values() for c in row["int8"]["per_corpus"]})
    corpora = corpora if len(corpora) > 1 else []  # one corpus: its column would repeat the int8 one
    lines = [
        "## In a room",
        "",
        f"The test speakers' {rooms['clips']} clips as a room delivers them (`ser-train rooms`): padded with "
        f"{rooms['padding_seconds']:g} s of silence at {rooms['room_level_dbfs'][0]:g} to {rooms['room_level_dbfs'][1]:g} dBFS "
        f"with a microphone's hiss at {rooms['microphone_floor_dbfs']:g} dBFS (all but studio), "
        f"in {rooms['rooms']['rooms']} simulated rooms that no training copy was made in "
        f"(RT60 {rooms['rooms']['rt60_seconds'][0]:g}-{rooms['rooms']['rt60_seconds'][1]:g} s, "
        f"{rooms['rooms']['distance_m'][0]:g}-{rooms['rooms']['distance_m'][1]:g} m away), with the segments of the noise "
        f"recordings that training never used, and babble of {rooms['babble']}. UAR, through the device's classifier.",
        "",
        "| " + " | ".join(["condition", "float32", "int8", *(f"int8 {c}" for c in corpora)]) + " |",
        "|---|---|---|" + "---|" * len(corpora),
    ]
    for name, row in rooms["conditions"].items():
        per_corpus = [_percent(row["int8"]["per_corpus"][c]) if c in row["int8"]["per_corpus"] else "–" for c in corpora]
        cells = [name, _percent(row["float32"]["uar"]), _percent(row["int8"]["uar"]), *per_corpus]
        lines.append("| " + " | ".join(cells) + " |")
    return lines + ["", f"![UAR against SNR per noise type]({ROOM_PLOT_FILE})", ""]


def _experiment_lines(experiments: dict) -> list[str]:
    lines = room_lines(experiments["rooms"]) if "rooms" in experiments else []
    if "cv" in experiments:
        lines += _cv_lines(experiments["cv"])
    if "loco" in experiments:
        lines += _loco_lines(experiments["loco"])
    if "gender" in experiments:
        lines += [
            "## Gender-dependent experiment",
            "",
            "Trained on the female, the male or all development speakers; "
            "tested on the test speakers; int8 models through the device's classifier.",
            "",
            "| trained on | tested on | training speakers | clips | accuracy | UAR |",
            "|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {r['trained_on']} | {r['tested_on']} | {r['train_speakers']} | {r['clips']} | {_percent(r['accuracy'])} "
            f"| {_percent(r['uar'])} |"
            for r in experiments["gender"]["rows"]
        ]
        lines.append("")
    if "tuning" in experiments:
        tuning = experiments["tuning"]
        lines += [
            "## Tuning",
            "",
            f"{len(tuning['tried'])} configurations by {tuning['folds']}-fold speaker-grouped "
            f"cross-validation on the development speakers ({tuning['seconds']:.0f} s; {tuning['untried']} left untried "
            "by the budget). Best first:",
            "",
            "| cell | design | units | learning rate | dropout | CV UAR | CV accuracy |",
            "|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {r['config']['architecture']} | {r['config']['design']} | {r['config']['units']} "
            f"| {r['config']['learning_rate']:g} "
            f"| {r['config']['dropout']:g} | {_percent(r['uar'])} | {_percent(r['accuracy'])} |"
            for r in tuning["tried"]
        ]
        lines.append("")
    return lines


def _corpus_line(name: str, label_map: dict, dropped: dict) -> str:
    renamed = ", ".join(f"{own} → {canonical or 'dropped'}" for own, canonical in label_map.items() if own != canonical)
    line = f"- {name}: {CORPUS_NOTES.get(name, '')} Label map: {renamed or 'identity'}."
    return line + (" Dropped: " + ", ".join(f"{n} clips of {own}" for own, n in dropped.items()) + "." if dropped else "")


def _architecture(arch: dict) -> str:
    cell = arch["architecture"].upper()
    if arch["design"] == "residual-attention":
        return (
            f"residual-attention {cell} (after ResLSTM-SA: a residual {cell} layer as wide as the input, a {cell} "
            f"layer of {arch['units']} units over frames averaged in {arch['time_pooling']}s, attention over time)"
        )
    return f"{cell} ({arch['layers']} x {arch['units']} units, {arch['pooling']} pooling)"


def write_model_card(manifest: dict, out_dir: Path, experiments: dict | None = None) -> Path:
    """Write MODEL_CARD.md for a bundle from its manifest and the experiments beside it; every
    figure comes from those files."""
    training, metrics, model = manifest["training"], manifest["metrics"], manifest["model"]
    experiments = read_experiments(out_dir) if experiments is None else experiments
    corpora = training.get("corpora") or [training["corpus"]]
    label_maps = training["label_map"] if len(corpora) > 1 else {training["corpus"]: training["label_map"]}
    dropped = training.get("dropped_clips") or {}
    speakers = training["speakers"]
    arch = model["architecture"]
    lines = [
        f"# Model card: {manifest['name']}",
        "",
        f"Speech emotion recognition, {len(manifest['labels'])} classes ({', '.join(manifest['labels'])}), "
        f"full-int8 TFLite {_architecture(arch)}, {model['parameters']} parameters, {model['size_bytes']} bytes, "
        "over the edge MFCC frontend.",
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
        f"Learnt from {len(corpora)} {'corpora' if len(corpora) > 1 else 'corpus'}; "
        "its licence terms are the strictest of theirs "
        "(research, non-commercial, share-alike):",
        "",
        *[_corpus_line(name, label_maps.get(name, {}), dropped.get(name, {})) for name in corpora],
        "",
        f"Speakers (split by speaker, none in two splits): {len(speakers['train'])} training speakers; "
        + (
            f"validation {', '.join(speakers['validation'])} (their UAR was recorded per epoch; nothing was chosen by it); "
            if speakers["validation"]
            else ""
        )
        + f"test {', '.join(speakers['test'])} (reported below; no choice looked at them).",
        f"Clips: {training['clips']['train']} train, {training['clips']['validation']} validation, "
        f"{training['clips']['test']} test; {BALANCE_NOTES[training['settings'].get('balance', 'none')]}. "
        f"Epochs: {training['epochs_run']}, a fixed number (no early stopping, no checkpoint chosen on held-out speakers).",
        "",
        "## Results on the test speakers",
        "",
        "Clip-level, pooled over windows exactly as the device does; UAR is unweighted average recall.",
        "",
        *_metrics_table(metrics),
        "",
        *per_corpus_lines(metrics),
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
        *_experiment_lines(experiments),
        "## Limitations",
        "",
        f"- Only {len(speakers['test'])} test speakers: the standard error of the int8 accuracy over clips alone is "
        f"±{100 * _standard_error(metrics['int8']['accuracy'], metrics['int8']['clips']):.1f} points, and speakers differ "
        "more than that (see the rows by gender).",
        "- Acted speech; spontaneous speech, languages not among the training corpora, far-field "
        "microphones and noise will lower accuracy (see leave one corpus out).",
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
