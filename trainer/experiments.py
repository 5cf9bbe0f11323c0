"""Experiments beyond one training run: hyperparameter search with speaker-grouped
cross-validation, and the gender-dependent experiment (train on female, male or both)."""

from __future__ import annotations

import dataclasses
import itertools
import time

import numpy as np

from trainer.dataset import ClipSet, speaker_folds
from trainer.evaluate import accuracy, uar
from trainer.model import ModelConfig
from trainer.train import TrainOptions, _log, fit, predict_clips

SEARCH_SPACE = {"layers": (1, 2), "units": (32, 64, 128), "learning_rate": (1e-3, 3e-4), "batch_size": (32, 64)}


def search_candidates(base: ModelConfig, seed: int) -> list[ModelConfig]:
    """Every combination of SEARCH_SPACE in a seeded random order (the base config first), so a
    search cut short by its budget has still tried a spread of configurations."""
    combos = [dict(zip(SEARCH_SPACE, values)) for values in itertools.product(*SEARCH_SPACE.values())]
    order = np.random.default_rng(seed).permutation(len(combos))
    candidates = [base] + [dataclasses.replace(base, **combos[i]) for i in order]
    unique = []
    for candidate in candidates:
        if candidate not in unique:
            unique.append(candidate)
    return unique


def cross_validate(options: TrainOptions, clips: ClipSet, labels: tuple[str, ...], folds) -> dict:
    """Mean clip-level UAR and accuracy over speaker folds; each fold's held-out speakers also
    drive its early stopping, so scores are comparable between configurations but optimistic."""
    uars, accuracies, epochs = [], [], []
    for train_speakers, held_speakers in folds:
        train = clips.subset(lambda u: u.speaker in train_speakers)
        held = clips.subset(lambda u: u.speaker in held_speakers)
        result = fit(options, train, held, labels, verbose=0)
        predicted, truth = predict_clips(result, held, options.windowing), np.asarray(held.targets(labels))
        uars.append(uar(truth, predicted, len(labels)))
        accuracies.append(accuracy(truth, predicted, len(labels)))
        epochs.append(int(np.argmin(result.history["val_loss"])) + 1)
    return {"uar": round(float(np.mean(uars)), 4), "accuracy": round(float(np.mean(accuracies)), 4),
            "fold_uar": [round(u, 4) for u in uars], "best_epochs": epochs}  # fmt: skip


def tune(options: TrainOptions, clips: ClipSet, labels: tuple[str, ...], k: int, budget_seconds: float,
         max_configs: int | None = None) -> dict:  # fmt: skip
    """Search layers, units, learning rate and batch size by speaker-grouped k-fold CV on the
    given (training and validation) clips, until the budget is spent. Returns every
    configuration tried with its score, best first, and the time spent."""
    folds = speaker_folds(clips.utterances, k, options.seed)
    started = time.monotonic()
    tried = []
    candidates = search_candidates(options.model, options.seed)[:max_configs]
    for number, config in enumerate(candidates, start=1):
        if time.monotonic() - started > budget_seconds:
            break
        began = time.monotonic()
        score = cross_validate(dataclasses.replace(options, model=config), clips, labels, folds)
        tried.append({"config": dataclasses.asdict(config), **score, "seconds": round(time.monotonic() - began, 1)})
        _log(f"tune {number}/{len(candidates)}: {_describe(config)} → CV UAR {score['uar']:.2%} "
             f"({time.monotonic() - started:.0f} s spent)")  # fmt: skip
    return {
        "folds": [{"train": list(t), "held_out": list(h)} for t, h in folds],
        "tried": sorted(tried, key=lambda row: -row["uar"]),
        "untried": len(candidates) - len(tried),
        "seconds": round(time.monotonic() - started, 1),
        "budget_seconds": budget_seconds,
    }


def _describe(config: ModelConfig) -> str:
    return f"{config.architecture} {config.layers}x{config.units}, lr {config.learning_rate:g}, batch {config.batch_size}"


def gender_experiment(options: TrainOptions, train: ClipSet, validation: ClipSet, test: ClipSet, labels) -> list[dict]:
    """Train on female training speakers only, male only, and both; test each model on the
    female, male and all test speakers (float32 Keras, clip level)."""
    rows = []
    truth = np.asarray(test.targets(labels))
    genders = np.array([u.gender for u in test.utterances])
    for trained_on in ("female", "male", "both"):
        subset = train.subset(lambda u: trained_on == "both" or u.gender == trained_on)
        result = fit(options, subset, validation, labels, verbose=0)
        predicted = predict_clips(result, test, options.windowing)
        for tested_on in ("female", "male", "all"):
            mask = genders == tested_on if tested_on != "all" else np.ones(len(truth), bool)
            rows.append({
                "trained_on": trained_on, "tested_on": tested_on, "train_speakers": len({u.speaker for u in subset.utterances}),
                "clips": int(mask.sum()), "accuracy": round(accuracy(truth[mask], predicted[mask], len(labels)), 4),
                "uar": round(uar(truth[mask], predicted[mask], len(labels)), 4),
            })  # fmt: skip
        _log(f"gender experiment: trained on {trained_on}: " + ", ".join(
            f"{r['tested_on']} UAR {r['uar']:.2%}" for r in rows[-3:]))  # fmt: skip
    return rows
