"""Experiments beyond one training run, every one scored through the device's own classifier on
the int8 model it would ship:

- speaker-grouped cross-validation over the development speakers of all corpora (the recipe's
  figures per corpus and per gender, and the epoch count),
- leave-one-corpus-out (trained without a corpus, tested on it: a language never heard),
- the gender-dependent experiment (train on female, male or both speakers),
- a search over model settings by cross-validation.
"""

from __future__ import annotations

import dataclasses
import itertools
import multiprocessing
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trainer.corpus import Corpus, Utterance
from trainer.dataset import ClipSet, babble_pool, choose_split, load_clips, speaker_folds
from trainer.evaluate import accuracy, uar
from trainer.gate import device_probabilities
from trainer.progress import counter, say
from trainer.recipe import ModelConfig, TrainOptions
from trainer.room_evaluation import condition_features
from trainer.train import export_bundle, fit

SEARCH_SPACE = {"units": (32, 64, 96), "learning_rate": (1e-3, 3e-3), "dropout": (0.2, 0.4)}


@dataclass(frozen=True)
class Experiment:
    """What an experiment runs on: the recipe with its speaker split, the development speakers'
    clips (with augmented copies) and, if asked for, the test speakers' clips."""

    recipe: TrainOptions
    clips: ClipSet
    test: ClipSet | None


def prepare_experiment(
    corpus: Corpus, recipe: TrainOptions, speakers: tuple[tuple[str, ...] | None, ...], with_test: bool = False
) -> Experiment:
    """``recipe`` split by ``speakers`` (train, validation, test; ``trainer.dataset.choose_split``
    fills in what is None) and the clips of its development speakers (and test speakers)."""
    recipe = dataclasses.replace(recipe, split=choose_split(corpus, *speakers, seed=recipe.seed))
    return Experiment(recipe, *development_clips(corpus, recipe, with_test))


def development_clips(corpus: Corpus, recipe: TrainOptions, with_test: bool = False) -> tuple[ClipSet, ClipSet | None]:
    """The features of the development speakers (the recipe split's training and validation
    speakers: everything but the test speakers), with augmented copies; with ``with_test`` also the
    test speakers' clips, without copies."""
    split = recipe.split
    development = set(split.train) | set(split.validation)
    what = f"features (with {recipe.augment.copies} augmented copies)" if recipe.augment.copies else "features"
    utterances = [u for u in corpus.utterances if u.speaker in development]
    talkers = babble_pool(utterances, recipe.augment, recipe.seed)
    clips = load_clips(utterances, recipe.frontend, recipe.augment, recipe.seed, counter(what), talkers=talkers)
    if not with_test:
        return clips, None
    return clips, load_clips(split.of(corpus.utterances, "test"), recipe.frontend, None, recipe.seed, counter("features test"))


def train_and_score(
    options: TrainOptions,
    train: ClipSet,
    held: ClipSet,
    labels: tuple[str, ...],
    what: str,
    record_epochs: bool = True,
    rooms: tuple = (),
) -> dict:
    """Fit on ``train``, export the int8 model and classify ``held`` with the device's classifier,
    also as delivered in each of ``rooms`` (``trainer.room_evaluation`` conditions). Returns the
    predictions with each clip's corpus and gender, and the per-epoch held-out UAR of the Keras
    model (for choosing the epoch count)."""
    began = time.monotonic()
    trained = fit(options, train, labels, held if record_epochs else None, log=lambda message: say(f"{what}: {message}"))
    in_rooms = {}
    with tempfile.TemporaryDirectory() as scratch:
        _, bundle = export_bundle(trained, dataclasses.replace(options, name="experiment"), labels, Path(scratch))
        predicted = device_probabilities(bundle, held.features).argmax(axis=1)
        for condition in rooms:
            features = condition_features(condition, held.utterances, options.frontend)
            in_rooms[condition.name] = device_probabilities(bundle, features).argmax(axis=1).tolist()
    truth = np.asarray(held.targets(labels))
    result = {
        "speakers": sorted({u.speaker for u in held.utterances}),
        "true": truth.tolist(),
        "predicted": predicted.tolist(),
        "corpus": [u.corpus for u in held.utterances],
        "gender": [u.gender for u in held.utterances],
        "epoch_uar": [round(v, 4) for v in trained.history.get("held_out_uar", [])],
        "rooms": in_rooms,
        "seconds": round(time.monotonic() - began, 1),
    }
    rooms_text = "".join(f", {name} {uar(truth, np.asarray(p), len(labels)):.2%}" for name, p in in_rooms.items())
    say(
        f"{what}: int8 UAR {uar(truth, predicted, len(labels)):.2%}{rooms_text} on {len(truth)} clips ({result['seconds']:.0f} s)"
    )
    return result


@dataclass(frozen=True)
class Run:
    """One model of an experiment: what it trains on and what it is scored on."""

    options: TrainOptions
    train: tuple[Utterance, ...]
    held: tuple[Utterance, ...]
    labels: tuple[str, ...]
    what: str
    """Its name in the progress lines, e.g. 'fold 2/4'."""
    held_with_copies: bool = True
    """Whether the held-out clips are development clips, cached with their augmented copies (the
    copies are not used; the flag only finds the same cache entries)."""
    record_epochs: bool = True
    """Record the held-out UAR after every epoch (cross-validation's epoch curve); off where the
    held-out clips are the test speakers', which nothing may watch."""
    talkers: dict | None = None
    """The babble talkers the experiment's features were made with (``trainer.dataset.babble_pool``)."""
    rooms: tuple = ()
    """Room conditions the held-out clips are also scored in."""


def _run(run: Run) -> dict:
    """Train and score one run; its features come from the cache the experiment filled."""
    augment, seed = run.options.augment, run.options.seed
    train = load_clips(run.train, run.options.frontend, augment, seed, workers=1, talkers=run.talkers)
    held_augment = augment if run.held_with_copies else None
    held = load_clips(run.held, run.options.frontend, held_augment, seed, workers=1, talkers=run.talkers)
    return train_and_score(run.options, train, held, run.labels, run.what, run.record_epochs, run.rooms)


def run_all(runs: list[Run], jobs: int) -> list[dict]:
    """The results of the runs in order, ``jobs`` at a time in worker processes (TensorFlow's
    recurrent layers keep about one core busy each)."""
    if jobs <= 1 or len(runs) <= 1:
        return [_run(run) for run in runs]
    with ProcessPoolExecutor(min(jobs, len(runs)), mp_context=multiprocessing.get_context("spawn")) as pool:
        return list(pool.map(_run, runs))


def scores(results: list[dict], n_classes: int, key: str | tuple[str, ...] | None = None) -> dict:
    """UAR and accuracy of each result (a fold), overall or per value of ``key`` (corpus or
    gender, or both: ("corpus", "gender") gives 'ravdess/male'...): mean and standard deviation
    over the results that have clips of that value."""

    def column(result) -> list[str]:
        if isinstance(key, str):
            return result[key]
        return ["/".join(parts) if all(parts) else "" for parts in zip(*(result[k] for k in key))]

    def summary(values: list[float]) -> dict:
        return {
            "mean": round(float(np.mean(values)), 4),
            "std": round(float(np.std(values)), 4),
            "folds": [round(v, 4) for v in values],
        }

    def metric_pairs(result, keep):
        truth, predicted = np.asarray(result["true"])[keep], np.asarray(result["predicted"])[keep]
        return uar(truth, predicted, n_classes), accuracy(truth, predicted, n_classes)

    if key is None:
        pairs = [metric_pairs(r, slice(None)) for r in results]
        return {"uar": summary([u for u, _ in pairs]), "accuracy": summary([a for _, a in pairs])}
    table = {}
    columns = [column(r) for r in results]
    for value in sorted({v for c in columns for v in c} - {""}):
        pairs = [metric_pairs(r, np.asarray(c) == value) for r, c in zip(results, columns) if value in c]
        table[value] = {
            "uar": summary([u for u, _ in pairs]),
            "accuracy": summary([a for _, a in pairs]),
            "clips": sum(c.count(value) for c in columns),
        }
    return table


def cross_validate(
    options: TrainOptions, clips: ClipSet, labels: tuple[str, ...], k: int, jobs: int = 1, rooms: tuple = ()
) -> dict:
    """Speaker-grouped k-fold cross-validation (folds stratified by corpus, emotion and gender):
    int8 scores overall, per corpus and per gender, mean and spread over folds, and in each of
    ``rooms``; the mean held-out UAR after each epoch, and the epoch count where it peaks."""
    talkers = babble_pool(clips.utterances, options.augment, options.seed)
    if talkers and k != options.augment.babble_folds:
        raise ValueError(f"{k} folds, but the copies' babble was made for {options.augment.babble_folds} (--folds sets both)")
    folds = speaker_folds(clips.utterances, k, options.seed)
    runs = [
        Run(
            options,
            tuple(u for u in clips.utterances if u.speaker in set(train_speakers)),
            tuple(u for u in clips.utterances if u.speaker in set(held_speakers)),
            labels,
            f"fold {number}/{k}",
            talkers=talkers,
            rooms=rooms,
        )
        for number, (train_speakers, held_speakers) in enumerate(folds, start=1)
    ]
    results = run_all(runs, jobs)
    curve = np.mean([r["epoch_uar"] for r in results], axis=0) if results[0]["epoch_uar"] else np.zeros(0)
    return {
        "folds": k,
        **scores(results, len(labels)),
        "per_corpus": scores(results, len(labels), "corpus"),
        "per_gender": scores(results, len(labels), "gender"),
        "per_corpus_gender": scores(results, len(labels), ("corpus", "gender")),
        "rooms": {
            condition.name: scores([{**r, "predicted": r["rooms"][condition.name]} for r in results], len(labels))
            for condition in rooms
        },
        "epoch_uar": [round(float(v), 4) for v in curve],
        "best_epochs": int(np.argmax(curve)) + 1 if len(curve) else None,
        "results": results,
    }


def leave_one_corpus_out(options: TrainOptions, clips: ClipSet, labels: tuple[str, ...], jobs: int = 1) -> dict:
    """For every corpus: train on all the others, test on it (int8, device classifier); the
    figures say how the recipe does on a language and recording setup it never heard."""
    corpora = sorted({u.corpus for u in clips.utterances})
    talkers = babble_pool(clips.utterances, options.augment, options.seed)
    runs = [
        Run(
            options,
            tuple(u for u in clips.utterances if u.corpus != corpus),
            tuple(u for u in clips.utterances if u.corpus == corpus),
            labels,
            f"without {corpus}",
            talkers=talkers,
        )
        for corpus in corpora
    ]
    table = {}
    for corpus, result in zip(corpora, run_all(runs, jobs)):
        truth, predicted = np.asarray(result["true"]), np.asarray(result["predicted"])
        table[corpus] = {
            "clips": len(truth),
            "classes": len(set(truth.tolist())),
            "uar": round(uar(truth, predicted, len(labels)), 4),
            "accuracy": round(accuracy(truth, predicted, len(labels)), 4),
            "chance_uar": round(1 / len(set(truth.tolist())), 4),
            "per_gender": scores([result], len(labels), "gender"),
        }
    return table


def gender_experiment(
    options: TrainOptions, train: ClipSet, test: ClipSet, labels: tuple[str, ...], jobs: int = 1, both=None
) -> list[dict]:
    """Train on female development speakers only, male only, and both; test each int8 model on the
    female, male and all test speakers, through the device's classifier. ``both``: a bundle trained
    with the same recipe on all of them (the shipped one) stands for the third model."""
    groups = ("female", "male") if both is not None else ("female", "male", "both")
    talkers = babble_pool(train.utterances, options.augment, options.seed)
    runs = [
        Run(
            options,
            tuple(u for u in train.utterances if group == "both" or u.gender == group),
            tuple(test.utterances),
            labels,
            f"trained on {group}",
            held_with_copies=False,
            record_epochs=False,
            talkers=talkers,
        )
        for group in groups
    ]
    results = run_all(runs, jobs)
    if both is not None:
        predicted = device_probabilities(both, test.features).argmax(axis=1)
        results.append(
            {"true": test.targets(labels), "predicted": predicted.tolist(), "gender": [u.gender for u in test.utterances]}
        )
    rows = []
    for trained_on, result in zip(("female", "male", "both"), results):
        subset = train.subset(lambda u: trained_on == "both" or u.gender == trained_on)
        truth, predicted, genders = np.asarray(result["true"]), np.asarray(result["predicted"]), np.asarray(result["gender"])
        for tested_on in ("female", "male", "all"):
            mask = genders == tested_on if tested_on != "all" else np.ones(len(truth), bool)
            rows.append(
                {
                    "trained_on": trained_on,
                    "tested_on": tested_on,
                    "train_speakers": len({u.speaker for u in subset.utterances}),
                    "clips": int(mask.sum()),
                    "accuracy": round(accuracy(truth[mask], predicted[mask], len(labels)), 4),
                    "uar": round(uar(truth[mask], predicted[mask], len(labels)), 4),
                }
            )
    return rows


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


def tune(
    options: TrainOptions, clips: ClipSet, labels: tuple[str, ...], k: int, budget_seconds: float, max_configs: int | None = None
) -> dict:
    """Search model settings by speaker-grouped k-fold CV on the given (development) clips until
    the budget is spent. Returns every configuration tried with its score, best first."""
    started = time.monotonic()
    tried, held_out = [], []
    candidates = search_candidates(options.model, options.seed)[:max_configs]
    for number, config in enumerate(candidates, start=1):
        if time.monotonic() - started > budget_seconds:
            break
        began = time.monotonic()
        result = cross_validate(dataclasses.replace(options, model=config), clips, labels, k)
        held_out = [fold["speakers"] for fold in result["results"]]  # the same folds for every configuration
        tried.append(
            {
                "config": dataclasses.asdict(config),
                "uar": result["uar"]["mean"],
                "accuracy": result["accuracy"]["mean"],
                "fold_uar": result["uar"]["folds"],
                "seconds": round(time.monotonic() - began, 1),
            }
        )
        say(f"tune {number}/{len(candidates)}: {config} → CV UAR {result['uar']['mean']:.2%}")
    return {
        "folds": k,
        "held_out": held_out,
        "tried": sorted(tried, key=lambda row: -row["uar"]),
        "untried": len(candidates) - len(tried),
        "seconds": round(time.monotonic() - started, 1),
        "budget_seconds": budget_seconds,
    }
