"""A self-contained HTML report of a bundle: exploration of its corpus and splits, training
curves, test results of float32 and int8, the gender analysis, and tuning and gender-experiment
tables when given. Plots are PNGs embedded as data URIs, so the file travels alone."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import soundfile  # noqa: E402

from edge.audio import load_audio  # noqa: E402
from edge.config import FrontendConfig  # noqa: E402
from edge.frontend import compute_features, frame_signal, power_spectrum  # noqa: E402
from trainer.corpus import Corpus  # noqa: E402
from trainer.model_card import ROOM_PLOT_FILE, difference_interval_text  # noqa: E402

REPORT_FILE = "report.html"
PARTS = ("train", "validation", "test")


def _image(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(figure)
    return f'<img src="data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}">'


def _table(header: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def exploration(corpus: Corpus, speakers: dict, frontend: FrontendConfig) -> str:
    """Emotion and gender mix and durations per split, and one clip per emotion drawn three ways."""
    parts = {part: [u for u in corpus.utterances if u.speaker in set(speakers[part])] for part in PARTS}
    labels = corpus.labels
    rows = [
        [part, len({u.speaker for u in items}), len(items)]
        + [sum(u.label == label for u in items) for label in labels]
        + [sum(u.gender == "female" for u in items), sum(u.gender == "male" for u in items)]
        for part, items in parts.items()
    ]
    counts = _table(["split", "speakers", "clips", *labels, "female clips", "male clips"], rows)
    corpora = sorted({u.corpus for u in corpus.utterances})
    if len(corpora) > 1:
        rows = [
            [name, len({u.speaker for u in corpus.utterances if u.corpus == name})]
            + [sum(u.corpus == name and u.label == label for u in corpus.utterances) for label in labels]
            + [sum(u.corpus == name and u.speaker in set(speakers["test"]) for u in corpus.utterances)]
            for name in corpora
        ]
        counts += _table(["corpus", "speakers", *labels, "test clips"], rows)
    figure, axis = plt.subplots(figsize=(7, 3))
    for part, items in parts.items():
        durations = [soundfile.info(u.path).duration for u in items]
        axis.hist(durations, bins=30, alpha=0.5, label=f"{part} (median {np.median(durations):.2f} s)")
    axis.set(xlabel="duration (s)", ylabel="clips", title="Clip durations per split")
    axis.legend()
    durations_plot = _image(figure)
    examples = []
    for label in labels:
        utterance = next((u for u in parts["train"] if u.label == label), None)
        if utterance is None:  # the corpus read is not the one the bundle was trained on
            continue
        samples = load_audio(utterance.path, frontend.sample_rate)
        figure, axes = plt.subplots(1, 3, figsize=(12, 2.4))
        axes[0].plot(np.arange(len(samples)) / frontend.sample_rate, samples, linewidth=0.4)
        axes[0].set(title=f"{label}: waveform", xlabel="s")
        spectrum = power_spectrum(frame_signal(samples, 512, 160) * np.hanning(512), 512)
        axes[1].imshow(
            10 * np.log10(spectrum + 1e-10),
            origin="lower",
            aspect="auto",
            cmap="magma",
            extent=(0, len(samples) / frontend.sample_rate, 0, frontend.sample_rate / 2000),
        )
        axes[1].set(title="spectrogram", xlabel="s", ylabel="kHz")
        axes[2].imshow(
            compute_features(samples, frontend)[:, : frontend.n_cepstra].T, origin="lower", aspect="auto", cmap="coolwarm"
        )
        axes[2].set(title="MFCC (model frontend)", xlabel="frame", ylabel="coefficient")
        examples.append(
            f"<p>{html.escape(utterance.path.name)} ({utterance.gender} speaker {utterance.speaker})</p>{_image(figure)}"
        )
    return f"<h2>Corpus and splits</h2>{counts}{durations_plot}<h3>One training clip per emotion</h3>{''.join(examples)}"


def training_curves(history: dict) -> str:
    figure, axes = plt.subplots(1, 2, figsize=(11, 3))
    axes[0].plot(history["loss"], label="training loss (masked, mixed windows)")
    axes[0].set(xlabel="epoch", title="loss")
    axes[0].legend()
    if "held_out_uar" in history:
        axes[1].plot(history["held_out_uar"], label="validation speakers' UAR")
        axes[1].set(xlabel="epoch", title="UAR", ylim=(0, 1))
        axes[1].legend()
    else:
        axes[1].set_axis_off()
    return (
        f"<h2>Training</h2><p>{len(history['loss'])} epochs, a number chosen by cross-validation; the weights after the "
        f"last epoch are the model.</p>{_image(figure)}"
    )


def test_results(manifest: dict) -> str:
    metrics, labels = manifest["metrics"], manifest["labels"]
    rows = [
        [
            name,
            metrics[name]["clips"],
            _pct(metrics[name]["accuracy"]),
            _pct(metrics[name]["uar"]),
            _pct(metrics[name]["macro_f1"]),
        ]
        for name in ("float32", "int8")
    ]
    summary = _table(["model", "clips", "accuracy", "UAR", "macro F1"], rows)
    gate = (
        f"<p>int8 and float32 agree on {_pct(metrics['int8_float32_agreement'])} of test clips; the largest difference of a "
        f"pooled class probability is {metrics['max_probability_difference']:.3f}.</p>"
    )
    figure, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    for axis, name in zip(axes[:2], ("float32", "int8")):
        matrix = np.array(metrics[name]["confusion_matrix"])
        axis.imshow(matrix, cmap="Blues")
        for (i, j), n in np.ndenumerate(matrix):
            axis.text(j, i, n, ha="center", va="center", fontsize=8)
        axis.set(
            title=f"confusion, {name}", xticks=range(len(labels)), yticks=range(len(labels)), xlabel="predicted", ylabel="true"
        )
        axis.set_xticklabels(labels, rotation=45, ha="right")
        axis.set_yticklabels(labels)
    x = np.arange(len(labels))
    for offset, name in ((-0.2, "float32"), (0.2, "int8")):
        axes[2].bar(x + offset, [metrics[name]["per_class"][label]["f1"] for label in labels], 0.4, label=name)
    axes[2].set(title="F1 per class", xticks=x, ylim=(0, 1))
    axes[2].set_xticklabels(labels, rotation=45, ha="right")
    axes[2].legend()
    return f"<h2>Test speakers</h2>{summary}{gate}{_image(figure)}"


def gender_section(manifest: dict, experiment: list[dict] | None) -> str:
    analysis = manifest["metrics"]["int8_gender"]
    genders = list(analysis["by_gender"])
    rows = [
        [
            g,
            m["clips"],
            f"{_pct(m['accuracy'])} ({_pct(m['accuracy_ci95'][0])}–{_pct(m['accuracy_ci95'][1])})",
            f"{_pct(m['uar'])} ({_pct(m['uar_ci95'][0])}–{_pct(m['uar_ci95'][1])})",
        ]
        for g, m in analysis["by_gender"].items()
    ]
    parts = [f"<h2>Female and male speakers</h2>{_table(['speakers', 'clips', 'accuracy (95% CI)', 'UAR (95% CI)'], rows)}"]
    parts += [
        f"<p>Female minus male {metric}: {100 * d['female_minus_male']:+.1f} points{difference_interval_text(d)}, "
        f"permutation p = {d['p_value']:.3f} "
        "(clips exchanged between genders; with few speakers per gender, weak evidence about genders in general).</p>"
        for metric, d in analysis["difference"].items()
    ]
    figure, axes = plt.subplots(1, 1 + len(genders), figsize=(5 * (1 + len(genders)), 3.5))
    for index, metric in enumerate(("accuracy", "uar")):
        values = [analysis["by_gender"][g][metric] for g in genders]
        errors = np.array(
            [
                [v - analysis["by_gender"][g][f"{metric}_ci95"][0], analysis["by_gender"][g][f"{metric}_ci95"][1] - v]
                for g, v in zip(genders, values)
            ]
        ).T
        axes[0].bar(np.arange(len(genders)) + 0.4 * index, values, 0.4, yerr=errors, capsize=4, label=metric)
    axes[0].set(title="int8, by gender", xticks=np.arange(len(genders)) + 0.2, ylim=(0, 1))
    axes[0].set_xticklabels(genders)
    axes[0].legend()
    for axis, gender in zip(axes[1:], genders):
        axis.imshow(np.array(analysis["by_gender"][gender]["confusion_matrix"]), cmap="Purples")
        axis.set(title=f"confusion, {gender} speakers", xlabel="predicted", ylabel="true")
    parts.append(_image(figure))
    if experiment:
        table = _table(
            ["trained on", "tested on", "training speakers", "clips", "accuracy", "UAR"],
            [
                [r["trained_on"], r["tested_on"], r["train_speakers"], r["clips"], _pct(r["accuracy"]), _pct(r["uar"])]
                for r in experiment
            ],
        )
        figure, axis = plt.subplots(figsize=(7, 3.5))
        trained = ("female", "male", "both")
        for index, tested in enumerate(("female", "male", "all")):
            values = [next(r["uar"] for r in experiment if r["trained_on"] == t and r["tested_on"] == tested) for t in trained]
            axis.bar(np.arange(3) + 0.27 * index, values, 0.27, label=f"tested on {tested}")
        axis.set(title="Gender-dependent training (int8, UAR)", xticks=np.arange(3) + 0.27, ylim=(0, 1))
        axis.set_xticklabels([f"trained on {t}" for t in trained])
        axis.legend()
        parts.append(f"<h3>Gender-dependent experiment</h3>{table}{_image(figure)}")
    return "".join(parts)


def tuning_section(tuning: dict | None) -> str:
    if not tuning:
        return ""
    rows = [
        [
            r["config"]["architecture"],
            r["config"]["design"],
            r["config"]["units"],
            r["config"]["learning_rate"],
            r["config"]["dropout"],
            _pct(r["uar"]),
            _pct(r["accuracy"]),
            " ".join(_pct(u) for u in r["fold_uar"]),
            f"{r['seconds']:.0f}",
        ]
        for r in tuning["tried"]
    ]
    return (
        f"<h2>Tuning</h2><p>{len(tuning['tried'])} configurations by {tuning['folds']}-fold speaker-grouped "
        f"cross-validation in {tuning['seconds']:.0f} s ({tuning['untried']} left untried by the budget).</p>"
        + _table(["cell", "design", "units", "learning rate", "dropout", "CV UAR", "CV accuracy", "fold UAR", "s"], rows)
    )


def _mean_std(summary: dict) -> str:
    return f"{_pct(summary['mean'])} ± {_pct(summary['std'])}"


def cross_validation_section(cv: dict | None, loco: dict | None) -> str:
    """The recipe's cross-validated figures per corpus and gender, its epoch curve, and the
    leave-one-corpus-out table."""
    parts = []
    if cv:
        groups = {"all": {"uar": cv["uar"], "accuracy": cv["accuracy"]}, **cv["per_corpus"], **cv["per_gender"]}
        rows = [
            [name, _mean_std(row["uar"]), _mean_std(row["accuracy"]), " ".join(_pct(u) for u in row["uar"]["folds"])]
            for name, row in groups.items()
        ]
        figure, axis = plt.subplots(figsize=(7, 3))
        axis.plot(np.arange(1, len(cv["epoch_uar"]) + 1), cv["epoch_uar"])
        axis.set(xlabel="epoch", ylabel="mean held-out UAR (float32)", title="Cross-validation: UAR after each epoch")
        parts.append(
            f"<h2>Cross-validation</h2><p>{cv['folds']} folds grouped by speaker over every development speaker; "
            "int8 models through the device's classifier; mean ± standard deviation over folds.</p>"
            + _table(["held-out clips", "UAR", "accuracy", "fold UAR"], rows)
            + _image(figure)
        )
    if loco:
        rows = [
            [name, row["clips"], row["classes"], _pct(row["uar"]), _pct(row["chance_uar"]), _pct(row["accuracy"])]
            for name, row in loco["corpora"].items()
        ]
        parts.append(
            "<h2>Leave one corpus out</h2><p>Trained without the corpus, tested on all of it.</p>"
            + _table(["corpus left out", "clips", "classes", "UAR", "chance", "accuracy"], rows)
        )
    return "".join(parts)


def room_plot(rooms: dict):
    """UAR (int8, and float32 dashed) against SNR for each background, with the clean room-level
    and reverberant figures as lines across."""
    figure, axis = plt.subplots(figsize=(7, 4))
    by_noise: dict[str, list[tuple[float, dict]]] = {}
    for row in rooms["conditions"].values():
        condition = row["condition"]
        if condition["noise"] and not condition["room"]:
            by_noise.setdefault(Path(condition["noise"]).stem, []).append((condition["snr_db"], row))
    for noise, points in by_noise.items():
        points.sort(key=lambda p: p[0])
        snrs = [p[0] for p in points]
        line = axis.plot(snrs, [100 * p[1]["int8"]["uar"] for p in points], marker="o", label=noise)[0]
        axis.plot(snrs, [100 * p[1]["float32"]["uar"] for p in points], linestyle="--", color=line.get_color())
    for name, style in (("room level", ":"), ("reverberant", "-.")):
        if name in rooms["conditions"]:
            axis.axhline(
                100 * rooms["conditions"][name]["int8"]["uar"], color="grey", linestyle=style, label=f"{name} (no noise)"
            )
    axis.set(xlabel="SNR (dB)", ylabel="UAR (%)", title="In a room: int8 (solid) and float32 (dashed)")
    axis.legend(fontsize=8)
    return figure


def room_section(rooms: dict | None, out_dir: Path) -> str:
    """The "In a room" table and plot; the plot is also written beside the model card."""
    if not rooms:
        return ""
    corpora = list(next(iter(rooms["conditions"].values()))["int8"]["per_corpus"])
    corpora = corpora if len(corpora) > 1 else []  # one corpus: its column would repeat the int8 one
    rows = [
        [name, _pct(row["float32"]["uar"]), _pct(row["int8"]["uar"]), *(_pct(row["int8"]["per_corpus"][c]) for c in corpora)]
        for name, row in rooms["conditions"].items()
    ]
    figure = room_plot(rooms)
    figure.savefig(out_dir / ROOM_PLOT_FILE, dpi=90, bbox_inches="tight")  # beside the card, which links it
    return (
        f"<h2>In a room</h2><p>The test speakers' {rooms['clips']} clips delivered as a room would (ser-train rooms): "
        "rooms, noise segments and babble talkers that training never used. UAR through the device's classifier.</p>"
        + _table(["condition", "float32", "int8", *(f"int8 {c}" for c in corpora)], rows)
        + _image(figure)
    )


def write_report(manifest: dict, corpus: Corpus, out_dir: Path, experiments: dict) -> Path:
    """Write report.html for a bundle into ``out_dir``, with the experiments found beside it
    (``trainer.model_card.read_experiments``)."""
    frontend = FrontendConfig.from_dict(manifest["frontend"])
    sections = [
        exploration(corpus, manifest["training"]["speakers"], frontend),
        training_curves(manifest["training"]["history"]),
        test_results(manifest),
        room_section(experiments.get("rooms"), out_dir),
        gender_section(manifest, experiments.get("gender", {}).get("rows")),
        cross_validation_section(experiments.get("cv"), experiments.get("loco")),
        tuning_section(experiments.get("tuning")),
    ]
    style = (
        "body{font-family:sans-serif;max-width:1200px;margin:auto}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}img{max-width:100%}"
    )
    document = (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(manifest['name'])}</title>"
        f"<style>{style}</style></head><body><h1>Report: {html.escape(manifest['name'])}</h1>"
        f"<p><code>{html.escape(manifest['command'])}</code></p>{''.join(sections)}</body></html>"
    )
    path = out_dir / REPORT_FILE
    path.write_text(document)
    return path
