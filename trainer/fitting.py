"""Fitting a Keras model to training clips: balanced sample weights, batches with SpecAugment-style
masking and mixup, a fixed cosine schedule, and clip-level predictions pooled as the device pools.

No step watches the test speakers. With held-out clips (a cross-validation fold) the clip-level
UAR after every epoch is recorded, so that cross-validation can choose the number of epochs; the
weights are never picked by it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import tensorflow as tf
import tf_keras as keras

from edge.config import Normalisation, WindowingConfig
from trainer.dataset import ClipSet, clip_windows, fit_normalisation
from trainer.evaluate import uar
from trainer.model import build_model
from trainer.recipe import BALANCES, ModelConfig, Regularisation


def balanced_clip_weights(clips: ClipSet, labels: tuple[str, ...], balance: str) -> np.ndarray:
    """A training weight per clip so that no corpus, gender or class dominates.

    balance "corpus-class": every speaker counts the same towards their corpus's share, every class
    of a corpus gets an equal part of it, then classes are rescaled to equal totals, so a class that
    some corpora lack (CASIA has no disgust) is not under-weighted. "corpus-gender-class": the
    same, but a corpus's share is first split equally between its women and men (ASED has 31 men
    and 16 women among its development speakers). "class": equal class totals over the pooled
    clips. "none": all 1. Weights average 1.
    """
    utterances = clips.utterances
    if balance not in BALANCES:
        raise ValueError(f"unknown balance {balance!r}: {', '.join(BALANCES)}")
    if balance == "none":
        return np.ones(len(utterances))
    if balance == "class":
        cells = [u.label for u in utterances]
        counts = {c: cells.count(c) for c in set(cells)}
        weights = np.array([1.0 / counts[c] for c in cells])
        return weights * len(weights) / weights.sum()

    def group(u) -> tuple[str, str]:  # the part of a corpus that gets an equal share of it
        return (u.corpus, u.gender if balance == "corpus-gender-class" else "")

    corpora = sorted({u.corpus for u in utterances})
    speakers = {c: {u.speaker for u in utterances if u.corpus == c} for c in corpora}
    total_speakers = sum(len(s) for s in speakers.values())
    cell_count: dict[tuple[tuple[str, str], str], int] = {}
    for u in utterances:
        cell_count[group(u), u.label] = cell_count.get((group(u), u.label), 0) + 1
    groups = {g for g, _ in cell_count}
    groups_in = {c: sum(1 for g in groups if g[0] == c) for c in corpora}
    classes_in = {g: sum(1 for cell_group, _ in cell_count if cell_group == g) for g in groups}
    # the share of one (group, class) cell of the total
    share = {g: len(speakers[g[0]]) / total_speakers / groups_in[g[0]] / classes_in[g] for g in groups}
    class_total = {label: sum(share[g] for g, cell_label in cell_count if cell_label == label) for label in labels}
    present = [t for t in class_total.values() if t > 0]
    mean_total = sum(present) / len(present)
    weights = np.array([share[group(u)] / cell_count[group(u), u.label] * mean_total / class_total[u.label] for u in utterances])
    return weights * len(weights) / weights.sum()


class WindowBatches:
    """Shuffled training batches of (windows, one-hot targets, weights), masked and mixed anew
    each epoch with a seeded generator."""

    def __init__(self, x, targets, weights, n_classes: int, batch_size: int, regularisation: Regularisation, seed: int):
        self.x, self.weights, self.batch_size, self.reg = x, weights.astype(np.float32), batch_size, regularisation
        self.y = np.eye(n_classes, dtype=np.float32)[targets]
        self.rng = np.random.default_rng(seed)
        self.order = self.rng.permutation(len(x))

    def __len__(self) -> int:
        return math.ceil(len(self.x) / self.batch_size)

    def __getitem__(self, index: int):
        chosen = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        x, y, w = self.x[chosen].copy(), self.y[chosen], self.weights[chosen]
        self._mask(x)
        if self.reg.mixup > 0 and len(chosen) > 1:
            lam = self.rng.beta(self.reg.mixup, self.reg.mixup, size=len(chosen)).astype(np.float32)
            lam = np.maximum(lam, 1 - lam)  # the first window stays the larger part
            partner = self.rng.permutation(len(chosen))
            x = lam[:, None, None] * x + (1 - lam[:, None, None]) * x[partner]
            y = lam[:, None] * y + (1 - lam[:, None]) * y[partner]
            w = lam * w + (1 - lam) * w[partner]
        return x, y, w

    def _mask(self, x: np.ndarray) -> None:
        frames, features = x.shape[1], x.shape[2]
        for window in x:
            for _ in range(self.reg.time_masks):
                width = int(self.rng.integers(0, self.reg.max_time_mask + 1))
                start = int(self.rng.integers(0, max(frames - width, 0) + 1))
                window[start : start + width] = 0.0
            for _ in range(self.reg.feature_masks):
                width = int(self.rng.integers(0, self.reg.max_feature_mask + 1))
                start = int(self.rng.integers(0, max(features - width, 0) + 1))
                window[:, start : start + width] = 0.0

    def on_epoch_end(self) -> None:
        self.order = self.rng.permutation(len(self.x))

    def dataset(self):
        """The batches as a tf.data pipeline with fixed window shapes (an unrolled GRU needs to
        know its number of steps), a new order, masking and mixup on every pass."""
        frames, features, classes = self.x.shape[1], self.x.shape[2], self.y.shape[1]

        def epoch():
            for index in range(len(self)):
                yield self[index]
            self.on_epoch_end()

        signature = (
            tf.TensorSpec((None, frames, features), tf.float32),
            tf.TensorSpec((None, classes), tf.float32),
            tf.TensorSpec((None,), tf.float32),
        )
        return tf.data.Dataset.from_generator(epoch, output_signature=signature)


@dataclass
class Fit:
    """A trained Keras model with what it was trained on."""

    model: object
    normalisation: Normalisation
    history: dict
    """Per epoch: loss (training), and held_out_uar where held-out clips were given."""
    train_windows: np.ndarray
    """The training windows (unmasked, unmixed), for int8 calibration."""


def predict_probabilities(model, clips: ClipSet, normalisation: Normalisation, windowing: WindowingConfig) -> np.ndarray:
    """Keras class probabilities of each clip, its windows' probabilities averaged as the device
    averages them: (clips, classes)."""
    windows = [clip_windows(f, normalisation, windowing) for f in clips.features]
    probabilities = model.predict(np.concatenate(windows), verbose=0, batch_size=256)
    bounds = np.cumsum([0] + [len(w) for w in windows])
    return np.stack([probabilities[a:b].mean(axis=0) for a, b in zip(bounds[:-1], bounds[1:])])


class HeldOutUAR(keras.callbacks.Callback):
    """Records the clip-level UAR on held-out clips after every epoch (logs['held_out_uar'])."""

    def __init__(self, clips: ClipSet, labels, normalisation: Normalisation, windowing: WindowingConfig):
        super().__init__()
        self.clips, self.truth, self.n = clips, np.asarray(clips.targets(labels)), len(labels)
        self.normalisation, self.windowing = normalisation, windowing

    def on_epoch_end(self, epoch, logs=None):
        predicted = predict_probabilities(self.model, self.clips, self.normalisation, self.windowing).argmax(axis=1)
        logs["held_out_uar"] = uar(self.truth, predicted, self.n)


class Progress(keras.callbacks.Callback):
    """One line per epoch through ``log``."""

    def __init__(self, log, epochs: int):
        super().__init__()
        self.log, self.epochs, self.started = log, epochs, time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        held = f", held-out UAR {logs['held_out_uar']:.2%}" if "held_out_uar" in logs else ""
        self.log(f"epoch {epoch + 1}/{self.epochs}: loss {logs['loss']:.3f}{held} ({time.monotonic() - self.started:.0f} s)")


def fit(
    model_config: ModelConfig,
    train: ClipSet,
    labels: tuple[str, ...],
    windowing: WindowingConfig,
    *,
    epochs: int,
    seed: int,
    balance: str,
    regularisation: Regularisation,
    subtract_clip_mean: bool = True,
    divide_clip_std: bool = False,
    held_out: ClipSet | None = None,
    log=None,
) -> Fit:
    """Train on the training clips and their augmented copies for exactly ``epochs`` epochs, Adam
    with a cosine learning-rate decay; normalisation from the training clips' originals only."""
    normalisation = fit_normalisation(train.features, subtract_clip_mean, divide_clip_std, windowing.trim_db)
    clip_weights = balanced_clip_weights(train, labels, balance)
    xs, ys, ws = [], [], []
    for features, copies, target, weight in zip(train.features, train.augmented, train.targets(labels), clip_weights):
        versions = [features, *copies]
        for version in versions:
            windows = clip_windows(version, normalisation, windowing)
            xs.append(windows)
            ys.extend([target] * len(windows))
            # every clip weighs the same however many windows and copies it has
            ws.extend([weight / len(windows) / len(versions)] * len(windows))
    x, y, w = np.concatenate(xs), np.asarray(ys), np.asarray(ws)
    w = w * len(w) / w.sum()
    if log:
        log(f"{len(x)} training windows of shape {x.shape[1:]} from {len(train.features)} clips and their copies")
    keras.utils.set_random_seed(seed)
    model = build_model(model_config, x.shape[1], x.shape[2], len(labels))
    batches = WindowBatches(x, y, w, len(labels), model_config.batch_size, regularisation, seed)
    schedule = keras.optimizers.schedules.CosineDecay(model_config.learning_rate, decay_steps=epochs * len(batches))
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss="categorical_crossentropy")
    callbacks = [HeldOutUAR(held_out, labels, normalisation, windowing)] if held_out is not None else []
    if log:
        callbacks.append(Progress(log, epochs))
    history = model.fit(batches.dataset(), epochs=epochs, callbacks=callbacks, verbose=0)
    return Fit(model, normalisation, {k: [float(v) for v in vs] for k, vs in history.history.items()}, x)
