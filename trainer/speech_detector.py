"""The speech detector: a small int8 model of ours that tells, block by block, whether someone
speaks in the foreground, over the frontend's bit-exact features of the last third of a second.

It learns from the development speakers' clips in rooms (``trainer.rooms``: echo, household noise,
other people talking, white and pink noise, a microphone's colouring and hiss) and from those
backgrounds alone: a frame is speech where the clip's speaker speaks (``trainer.streams``'s
extent of the clean clip), and nothing else is, not even babble. ``trainer.streams.VALIDATION_SPEAKERS`` never
train it: the stream replay (``trainer.streams``) scores it on them.

It ships as a bundle like the emotion models (``models/speech-detector``): the same manifest,
fingerprint and int8 path, so its decisions are the same bits on every CPU.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import textwrap
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edge.audio import load_audio
from edge.config import FrontendConfig, Normalisation, WindowingConfig
from edge.frontend import compute_features
from edge.manifest import SPEECH_DETECTOR_LABELS, Manifest
from edge.model_input import normalise
from trainer.corpus import Corpus, default_test_speakers
from trainer.rooms import (
    RoomConfig,
    RoomSources,
    background,
    draw_condition,
    noise_root,
    noise_segments,
    power,
    render,
)
from trainer.streams import speech_extent, validation_speakers

FRONTEND = FrontendConfig(
    frame_length=512,
    frame_step=256,
    n_filters=40,
    n_cepstra=13,
    extras=("zcr", "pitch"),
    delta_order=0,
    noise_floor_dbfs=-80.0,
)
"""The detector's features: 13 cepstra with the log energy, the zero-crossing rate and the pitch
(voicing tells a voice from a tap), without deltas (the window gives the model their context).
Frames as the emotion models': a frame step is the segmenter's block, 16 ms."""
ROOMS = RoomConfig(
    noise_share=0.85,
    noise_kinds=("household", "babble", "babble", "white", "pink"),
    snr_db=(-5.0, 25.0),
    babble_talkers=(3, 6),
    level_dbfs=(-70.0, -10.0),
)
"""The training copies' rooms: more of them noisy, and noisier, than the emotion models', at any
level a microphone may deliver (a soft voice far away: -70 dBFS; the level gate, not the detector,
judges loudness), and babble twice as often as any other background (other people talking are not
the speaker)."""
PADDING_SECONDS = 1.0
"""Background before and after each clip: the detector learns where speech starts and ends."""
ALONE_LEVEL_DBFS = (-70.0, -20.0)
"""RMS level of a background alone."""


@dataclass(frozen=True)
class DetectorOptions:
    """How the detector is trained."""

    window_frames: int = 20
    """Frames a decision looks at, the newest last: 20 are 0.33 s."""
    hidden: int = 32
    """Units of each of the two hidden layers."""
    alone_share: float = 0.5
    """Pieces with a background alone, per clip."""
    epochs: int = 30
    batch_size: int = 256
    learning_rate: float = 1e-3
    stride: int = 3
    """Every this many frames a training window ends (neighbouring windows are nearly the same)."""
    seed: int = 0


def frame_labels(n_frames: int, extent: tuple[int, int] | None, offset: int, step: int) -> np.ndarray:
    """1 for each frame whose newest ``step`` samples centre inside ``extent`` (samples, shifted by
    ``offset``), else 0: a frame is judged as the block it completes."""
    if extent is None:
        return np.zeros(n_frames, dtype=np.int64)
    centres = (np.arange(n_frames) + 1) * step + step // 2
    return ((centres >= extent[0] + offset) & (centres < extent[1] + offset)).astype(np.int64)


def piece(path: Path | None, sources: RoomSources, rng: np.random.Generator, rate: int) -> tuple[np.ndarray, np.ndarray]:
    """One training piece: the clip at ``path`` in a random room between ``PADDING_SECONDS`` of
    its background, or (``path`` None) a background alone. Its features and frame labels."""
    pad = int(PADDING_SECONDS * rate)
    if path is None:
        condition = draw_condition(dataclasses.replace(ROOMS, noise_share=1.0), sources, rng)
        length = int(rng.uniform(2.0, 6.0) * rate)
        noise = background(condition, sources, length, rate, rng)
        level = 10 ** (rng.uniform(*ALONE_LEVEL_DBFS) / 20)
        samples = noise * level / np.sqrt(max(power(noise), 1e-20))
        samples += 10 ** (rng.uniform(*ROOMS.floor_dbfs) / 20) * rng.standard_normal(length)
        extent = None
    else:
        clip = load_audio(path, rate)
        extent = speech_extent(clip - clip.mean())
        samples = render(
            np.concatenate([np.zeros(pad), clip, np.zeros(pad)]), rate, draw_condition(ROOMS, sources, rng), sources, rng
        )
    features = compute_features(np.clip(samples, -1.0, 1.0), FRONTEND)
    return features, frame_labels(len(features), extent, pad, FRONTEND.frame_step)


def _pieces(job) -> list[tuple[np.ndarray, np.ndarray]]:
    paths, sources, seed = job
    rng = np.random.default_rng(seed)
    return [piece(p, sources, rng, FRONTEND.sample_rate) for p in paths]


def training_pieces(
    clips: list[Path], sources: RoomSources, alone_share: float, seed: int, jobs: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Every clip in a room, and ``alone_share`` as many backgrounds alone, in ``jobs`` processes."""
    rng = np.random.default_rng(seed)
    paths: list[Path | None] = list(clips) + [None] * int(alone_share * len(clips))
    order = rng.permutation(len(paths))
    chunks = [[paths[i] for i in order[k::64]] for k in range(64)]
    jobs_list = [(chunk, sources, [seed, k]) for k, chunk in enumerate(chunks)]
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        return [p for result in pool.map(_pieces, jobs_list) for p in result]


def piece_windows(
    features: np.ndarray, labels: np.ndarray, frames: int, stride: int, first: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """The windows of ``frames`` frames ending at every ``stride``-th frame from ``first`` (after a
    whole window's frames), and their last frames' labels: (windows, frames, features), (windows,)."""
    ends = np.arange(frames - 1 + first, len(features), stride)
    if not len(ends):
        return np.empty((0, frames, features.shape[1])), np.empty(0, dtype=np.int64)
    return np.stack([features[e - frames + 1 : e + 1] for e in ends]), labels[ends]


def fit_normalisation(pieces: list[tuple[np.ndarray, np.ndarray]]) -> Normalisation:
    """Mean and std of every feature over all training frames."""
    frames = np.concatenate([f for f, _ in pieces])
    return Normalisation(tuple(map(float, frames.mean(axis=0))), tuple(map(float, np.maximum(frames.std(axis=0), 1e-6))))


def dataset(pieces, normalisation: Normalisation, options: DetectorOptions, rng) -> tuple[np.ndarray, np.ndarray]:
    """Normalised windows and labels of the pieces, float32, shuffled."""
    stride = options.stride
    parts = [
        piece_windows(normalise(f, normalisation), y, options.window_frames, stride, int(rng.integers(stride))) for f, y in pieces
    ]
    x = np.concatenate([p[0] for p in parts]).astype(np.float32)
    y = np.concatenate([p[1] for p in parts])
    order = rng.permutation(len(y))
    return x[order], y[order]


def build_model(hidden: int, frames: int, features: int, batch_size: int | None = None):
    """Flatten the window, two ReLU layers, two logits."""
    import tf_keras as keras

    inputs = keras.Input((frames, features), batch_size=batch_size, name="features")
    x = keras.layers.Flatten(name="flatten")(inputs)
    x = keras.layers.Dense(hidden, activation="relu", name="hidden_1")(x)
    x = keras.layers.Dense(hidden, activation="relu", name="hidden_2")(x)
    return keras.Model(inputs, keras.layers.Dense(len(SPEECH_DETECTOR_LABELS), name="logits")(x))


def balanced_accuracy(model, x: np.ndarray, y: np.ndarray) -> float:
    """The mean of the shares of speech and of other windows the model gets right."""
    predicted = model.predict(x, batch_size=4096, verbose=0).argmax(axis=1)
    return float(np.mean([np.mean(predicted[y == k] == k) for k in (0, 1)]))


def fit(x, y, x_val, y_val, options: DetectorOptions, log=print):
    """Train on (x, y), keeping the weights of the epoch with the best balanced accuracy on the
    validation windows; class weights balance speech against the rest. Returns the model and
    that accuracy."""
    import tensorflow as tf
    import tf_keras as keras

    class KeepBest(keras.callbacks.Callback):
        best, weights = -1.0, None

        def on_epoch_end(self, epoch, logs=None):
            balanced = balanced_accuracy(self.model, x_val, y_val)
            log(f"epoch {epoch + 1}: validation balanced accuracy {balanced:.4f}")
            if balanced > self.best:
                self.best, self.weights = balanced, self.model.get_weights()

    tf.keras.utils.set_random_seed(options.seed)
    model = build_model(options.hidden, *x.shape[1:])
    model.compile(
        optimizer=keras.optimizers.Adam(options.learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    share = y.mean()
    keep = KeepBest()
    model.fit(
        x,
        y,
        batch_size=options.batch_size,
        epochs=options.epochs,
        class_weight={0: 0.5 / (1 - share), 1: 0.5 / share},
        callbacks=[keep],
        verbose=0,
    )
    model.set_weights(keep.weights)
    return model, keep.best


def export(model, options: DetectorOptions, calibration: np.ndarray | None) -> bytes:
    """The model as TFLite with batch 1: float32, or full int8 with ``calibration`` windows."""
    import tensorflow as tf

    from trainer.model import compact

    fixed = build_model(options.hidden, *model.input_shape[1:], batch_size=1)
    fixed.set_weights(model.get_weights())
    converter = tf.lite.TFLiteConverter.from_keras_model(fixed)
    if calibration is not None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([w[None]] for w in calibration)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return compact(converter.convert())


def split_speakers(corpus: Corpus) -> tuple[list[Path], list[Path]]:
    """Clips of the training speakers (neither validation nor test speakers), and of the validation speakers."""
    validation_ids = set(validation_speakers(corpus))
    held_out = validation_ids | set(default_test_speakers(corpus))
    train = [u.path for u in corpus.utterances if u.speaker not in held_out]
    validation = [u.path for u in corpus.utterances if u.speaker in validation_ids]
    return train, validation


def train_detector(corpus: Corpus, out_dir: Path, options: DetectorOptions, command: str, jobs: int = 2, log=print) -> Manifest:
    """Train the detector on ``corpus``'s training speakers and write its bundle into ``out_dir``:
    model.tflite (int8), manifest.json. Returns the manifest (without the stream figures)."""
    from trainer.train import MODEL_FILE, int8_manifest

    started = time.time()
    speaker_of = {u.path: u.speaker for u in corpus.utterances}
    train_clips, validation_clips = split_speakers(corpus)
    sources = RoomSources(ROOMS.simulation, noise_segments("train"), noise_root(), tuple(train_clips[::9]))
    log(f"rendering {len(train_clips)} training clips and {len(validation_clips)} validation clips in rooms")
    train_pieces = training_pieces(train_clips, sources, options.alone_share, options.seed, jobs)
    # Validation: the validation speakers in the training rooms and noises (the stream replay then
    # scores the chosen model on the evaluation rooms and noises).
    validation_pieces = training_pieces(validation_clips, sources, options.alone_share, options.seed + 1, jobs)
    normalisation = fit_normalisation(train_pieces)
    rng = np.random.default_rng(options.seed)
    x, y = dataset(train_pieces, normalisation, options, rng)
    x_val, y_val = dataset(validation_pieces, normalisation, options, rng)
    log(f"{len(y)} training windows ({y.mean():.0%} speech), {len(y_val)} validation windows")
    model, balanced = fit(x, y, x_val, y_val, options, log)

    out_dir.mkdir(parents=True, exist_ok=True)
    model_path = out_dir / MODEL_FILE
    model_path.write_bytes(export(model, options, x[rng.permutation(len(x))[:1000]]))
    manifest, _, _ = int8_manifest(
        model_path,
        {"architecture": {"architecture": "dense", **asdict(options)}, "parameters": int(model.count_params())},
        name=out_dir.name,
        labels=SPEECH_DETECTOR_LABELS,
        frontend=FRONTEND,
        normalisation=normalisation,
        windowing=WindowingConfig(window_frames=options.window_frames, hop_frames=1, min_frames=options.window_frames),
        command=command,
        training={
            "speakers": {
                "train": sorted({speaker_of[p] for p in train_clips}),
                "validation": list(validation_speakers(corpus)),
            },
            "clips": {"train": len(train_clips), "validation": len(validation_clips)},
            "rooms": ROOMS.to_dict(),
            "noise_segments": [asdict(s) for s in noise_segments("train")],
            "windows": {"train": int(len(y)), "validation": int(len(y_val))},
            "validation_balanced_accuracy_float": float(balanced),
            "seconds": round(time.time() - started),
        },
    )
    manifest.write(out_dir)
    return manifest


def model_card(manifest: dict, streams: dict) -> str:
    """The detector's MODEL_CARD.md: what it is, what it learnt from, how it does on the
    validation speakers' streams (``streams``: ``trainer.streams.evaluate_streams``'s figures)."""
    training, model = manifest["training"], manifest["model"]
    speakers = training["speakers"]
    rows = [
        f"| {name} | {row['one_event']} / {row['utterances']} | {row['missed']} | {row['split']} | {row['merged']} "
        f"| {row['events_over_no_utterance']} |"
        if row["utterances"]
        else f"| {name} | | | | | {row['events_over_no_utterance']} |"
        for name, row in streams["conditions"].items()
    ]
    corpora = ", ".join(sorted({speaker.partition("/")[0] for speaker in speakers["train"] if "/" in speaker}))
    settings = streams["settings"]
    return "\n".join(
        [
            f"# Model card: {manifest['name']}",
            "",
            "A speech detector, not an emotion model: for each 16 ms block that the segmenter's level gate",
            "lets through, the probability that someone speaks in it, from the frontend's features of the last",
            f"{model['architecture']['window_frames']} frames (13 cepstra with the log energy, zero-crossing rate and pitch).",
            f"A dense network of {model['parameters']:,} parameters, full int8 ({model['size_bytes']:,} bytes); the device",
            "runs the int8 model only, so its decisions are the same on every CPU.",
            "",
            "## What it learnt from",
            "",
            f"- {training['clips']['train']:,} clips of {len(speakers['train'])} development speakers ({corpora}),",
            "  each in a simulated room between a second of its background: household noise (dishes,",
            "  exercise bike, running tap, a man miaowing),",
            "  other people talking (three to six training speakers at once), white or pink noise, at -5 to 25 dB,",
            "  at -70 to -10 dBFS, with a microphone's colouring and hiss; and as many backgrounds alone. A frame is",
            "  speech where the clip's speaker speaks, and nothing else is, not even other people talking.",
            f"- Chosen (its epoch) on the {len(speakers['validation'])} validation speakers, who never trained it:",
            *textwrap.wrap(", ".join(speakers["validation"]) + ".", 96, initial_indent="  ", subsequent_indent="  "),
            "  The test speakers of the emotion models never trained it either.",
            "- The noise is the Speech Commands data set's background noise (Warden 2018, arXiv:1804.03209,",
            "  CC BY 4.0): the first 80 % of each recording trained it, the last 15 % built the streams below.",
            "",
            "## On streams of the validation speakers",
            "",
            f"{streams['utterances_per_stream']} utterances per stream, 2 s apart, at a room's level, over a background no",
            "training used; and 2 minutes of each noise alone at -40 dBFS (`trainer/streams.py`). The",
            f"segmenter's settings: speech threshold {settings['speech_threshold']:g} to start and "
            f"{settings['hold_threshold']:g} to hold, margins {settings['noise_margin_db']:g} dB to start and",
            f"{settings['hold_margin_db']:g} dB to hold ({settings['hold_level_db']:g} dB whatever the detector says), the "
            f"background the {settings['floor_percentile']:g}th percentile of the last {settings['floor_seconds']:g} s.",
            "",
            "| stream | one event | missed | split | merged | events over no utterance |",
            "|---|---|---|---|---|---|",
            *rows,
            "",
            "## Limits",
            "",
            "- Other people talking are speech to it about a third of the time: in a room of talkers the",
            "  speaker is told from them by level, and their louder moments can still become events.",
            "- A human voice that is not speech (a man miaowing) is sometimes speech to it, and so is some",
            "  clattering of dishes, even in the part of the recording it trained on.",
            "- Soft speech under loud noise (5 dB) is missed more often than the level alone would miss it.",
            "",
            "## Licence",
            "",
            "It learnt from the shipped corpora (RAVDESS: CC BY-NC-SA 4.0; EmoDB, SAVEE, CASIA, ASED: research",
            "use; emotiontts: CC BY-NC-SA) and the Speech Commands noise (CC BY 4.0): research and",
            "non-commercial use, with attribution and share-alike.",
            "",
        ]
    )
