"""The speech detector: speech in a noisy room is speech; dishes, an exercise bike and a running
tap are not, whatever their level. The segmenter cuts on its decisions, `ser
classify` refuses a file without speech, and a replayed stream is scored against its truth."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile
from support.helpers import FIXTURES, corpus_root, run_ser, run_train, unavailable

from edge.api import EmotionModel
from edge.bundle import load_bundle
from edge.errors import AudioError
from edge.frontend import StreamingFrontend, compute_features, shared_columns
from edge.model_input import normalise
from edge.segmenter import Segmenter
from edge.settings import SegmenterSettings
from edge.speech_detector import speech_detector
from edge.voice_activity import SpeechCheck
from trainer.streams import Event, StreamCondition, build_stream, conditions, replay, score

RATE = 16000
NOISES = ("doing_the_dishes.flac", "exercise_bike.flac", "running_tap.flac")
pytestmark = pytest.mark.usefixtures("noise_dir")


STREAM_CLIPS = (
    "ravdess/Actor_13/03-01-03-02-01-01-13.flac",
    "ravdess/Actor_14/03-01-06-01-01-02-14.flac",
    "ravdess/Actor_15/03-01-04-02-02-02-15.flac",
    "ravdess/Actor_16/03-01-08-02-01-01-16.flac",
    "emodb/wav/03a02Ta.flac",
    "emodb/wav/08a01Wa.flac",
    "savee/KL_a15.flac",
    "casia/liuchanhg/angry/203.flac",
)
"""Eight clips of the streams' validation speakers (``trainer.streams.stream_material``), whom the
detector never trained on; in tests/fixtures/streams too."""


@pytest.fixture(scope="module")
def material() -> list[Path]:
    """Eight clips of the streams' speakers, from the corpora, or (where they are absent, not under
    CI) the same clips in tests/fixtures/streams."""
    root = corpus_root()
    if not all((root / clip).is_file() for clip in STREAM_CLIPS):
        if os.environ.get("CI"):
            unavailable(f"the streams' clips are not all in {root}")
        root = FIXTURES / "streams"
    return [root / clip for clip in STREAM_CLIPS]


@pytest.fixture(scope="module")
def manifest():
    return load_bundle().manifest


def replayed(stream, manifest, settings: SegmenterSettings = SegmenterSettings()):
    return replay(stream, Segmenter(settings, manifest.frontend, manifest.windowing.min_frames))


def test_eight_utterances_over_household_noise_at_10_db_give_one_event_each_and_nothing_else(material, manifest):
    stream = build_stream(StreamCondition("household 10 dB", "household", 10), material)
    figures = score(stream.truth, replayed(stream, manifest))
    assert (figures["one_event"], figures["events_over_no_utterance"]) == (8, 0), figures
    print(figures)
    assert figures["start_error_median_s"] < 0.2 and figures["end_error_median_s"] < 0.4, figures


@pytest.mark.parametrize("noise", NOISES)
def test_household_noise_alone_gives_no_utterance_at_any_level(noise, manifest):
    for level_dbfs in (-50.0, -40.0, -25.0):
        stream = build_stream(
            StreamCondition(f"{noise} alone", noise, speech=False), [], noise_seconds=30.0, noise_dbfs=level_dbfs
        )
        assert replayed(stream, manifest) == [], f"{noise} at {level_dbfs} dBFS"


def test_streamed_probabilities_are_the_offline_ones_however_the_stream_is_cut_and_asked(material):
    """The detector's frontend runs only while blocks are asked about; whenever it starts again,
    a block's probability is that of the window of the whole stream's offline features ending
    with the frame the block completes."""
    stream = build_stream(StreamCondition("household 10 dB", "household", 10), material[:2])
    detector = speech_detector(SegmenterSettings().detector)
    blocks = stream.samples[: len(stream.samples) // detector.block * detector.block].reshape(-1, detector.block)
    manifest = detector.bundle.manifest
    frames = normalise(compute_features(blocks.reshape(-1), manifest.frontend), manifest.normalisation)
    window = manifest.windowing.window_frames
    completed = np.arange(len(blocks)) - 1  # a frame is two blocks: block g completes frame g - 1
    offline = np.full(len(blocks), np.nan)
    whole = np.flatnonzero(completed >= window - 1)
    offline[whole] = detector.window_probabilities(np.stack([frames[t - window + 1 : t + 1] for t in completed[whole]]))
    rng = np.random.default_rng(0)
    bursts = np.repeat(rng.random(len(blocks) // 25 + 1) < 0.3, 25)[: len(blocks)]  # asked in stretches, as speech comes
    for asked in (np.ones(len(blocks), dtype=bool), rng.random(len(blocks)) < 0.5, bursts & (rng.random(len(blocks)) < 0.8)):
        for size in (1, 6, 64):
            detector.reset()
            pieces = [detector.push(blocks[i : i + size], asked[i : i + size]) for i in range(0, len(blocks), size)]
            streamed = np.concatenate(pieces)
            assert np.array_equal(streamed[asked], offline[asked], equal_nan=True), size
            assert np.isnan(streamed[~asked]).all()


def test_a_clip_gives_the_detector_its_features_from_the_emotion_models_columns_bit_for_bit(material, manifest):
    """``ser classify`` computes one frontend per clip: the detector's 15 features are 15 columns
    of the emotion model's, the same bits, so the speech check decides the same either way."""
    detector = speech_detector(SegmenterSettings().detector)
    columns = shared_columns(detector.bundle.manifest.frontend, manifest.frontend)
    assert columns == [*range(13), 21, 22]  # 13 cepstra, the zero-crossing rate, the pitch
    stream = build_stream(StreamCondition("household 10 dB", "household", 10), material[:3])
    own = compute_features(stream.samples, detector.bundle.manifest.frontend)
    shared = compute_features(stream.samples, manifest.frontend)[:, columns]
    assert np.array_equal(shared, own)
    blocks = stream.samples[: len(stream.samples) // detector.block * detector.block].reshape(-1, detector.block)
    asked = np.random.default_rng(1).random(len(blocks)) < 0.7
    frames = normalise(shared, detector.bundle.manifest.normalisation)
    from_shared = detector.judge_blocks(frames, 0, np.arange(len(blocks)), asked)
    assert np.array_equal(detector.push(blocks, asked), from_shared, equal_nan=True)
    assert np.count_nonzero(np.isfinite(from_shared)) > 0.6 * len(blocks)

    settings = SegmenterSettings().for_a_clip()
    clips = {path.name: soundfile.read(path)[0] for path in material}
    clips |= {
        f"{noise} at {dbfs} dBFS": build_stream(
            StreamCondition(noise, noise, speech=False), [], noise_seconds=20.0, noise_dbfs=dbfs
        ).samples
        for noise in NOISES
        for dbfs in (-40.0, -25.0)
    }
    clips["speech in noise"], clips["silence"] = stream.samples, np.zeros(RATE)
    answers = {}
    for name, samples in clips.items():
        computed, shared = SpeechCheck(settings, 256, RATE), SpeechCheck(settings, 256, RATE, features=manifest.frontend)
        computed.push(samples)
        frontend = StreamingFrontend(manifest.frontend)
        for start in range(0, len(samples), 5000):  # in pieces, the features lagging as a file's do
            shared.push(samples[start : start + 5000])
            shared.add_frames(frontend.push(samples[start : start + 5000]))
        shared.add_frames(frontend.flush())
        answers[name] = (computed.found(), shared.found())
    assert all(computed == shared for computed, shared in answers.values()), answers
    assert [found for found, _ in answers.values()].count(True) == len(material) + 1, answers  # the clips and the speech in noise


def test_ser_classify_says_no_speech_for_two_minutes_of_noise_and_classifies_speech(tmp_path, material):
    """Two minutes of each household noise at -40 dBFS (the part of its recording no training
    used, looped), as a user's noise-only file would be: the longer the file, the more chances
    for a stray block to sound like speech, so "speech" is an utterance the segmenter keeps."""
    noises = []
    for noise in NOISES:
        stream = build_stream(StreamCondition(noise, noise, speech=False), [])
        path = tmp_path / f"{noise[:-5]}.wav"
        soundfile.write(path, stream.samples, RATE)
        noises.append(path)
    result = run_ser("classify", "--json", *map(str, noises), str(material[0]))
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert result.returncode == 1, result.stderr
    assert [(r["file"], r.get("error")) for r in records] == [(str(p), f"{p}: no speech found") for p in noises] + [
        (str(material[0]), None)
    ], result.stdout


def test_the_score_counts_one_event_missed_split_merged_and_events_over_nothing():
    truth = ((1.0, 2.0), (4.0, 5.0), (7.0, 8.0), (10.0, 11.0), (11.5, 12.0))
    events = [
        Event(1.1, 2.1, 2.9),  # one event, 0.1 s late at both ends
        Event(7.0, 7.4, 8.0),  # the third utterance split in two
        Event(7.6, 8.0, 8.8),
        Event(10.0, 12.0, 12.8),  # the fourth and fifth merged
        Event(14.0, 14.5, 15.3),  # over nothing
    ]
    figures = score(truth, events)
    assert {k: figures[k] for k in ("one_event", "missed", "split", "merged", "events_over_no_utterance")} == {
        "one_event": 1,
        "missed": 1,
        "split": 1,
        "merged": 2,
        "events_over_no_utterance": 1,
    }
    assert figures["start_error_median_s"] == pytest.approx(0.1) and figures["delay_median_s"] == pytest.approx(0.9)


@pytest.mark.integration
def test_ser_train_speech_detector_writes_a_bundle_the_segmenter_loads_and_scores_it_on_streams(corpus_dir, tmp_path):
    corpus_dir("ravdess")
    out = tmp_path / "detector"
    result = run_train("speech-detector", str(out), "--corpus", "ravdess", "--epochs", "1")
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = load_bundle(str(out), variant="int8").manifest  # verified: files, hashes, fingerprint
    assert manifest.is_speech_detector and manifest.windowing.window_frames == 20
    speakers = manifest.document["training"]["speakers"]
    assert not set(speakers["train"]) & {"13", "14", "15", "16", "17", "18", "19", "20"}, speakers
    figures = json.loads((out / "streams.json").read_text())
    assert set(figures["conditions"]) == {c.name for c in conditions()}
    assert figures["utterances_per_stream"] == 80 and figures["speakers"] == ["13", "14", "15", "16"]
    assert Segmenter(SegmenterSettings(detector=str(out)), manifest.frontend).voice.detector.name == "detector"


def test_the_python_api_says_no_speech_for_an_array_of_noise_and_a_stream_of_it_gives_no_event(noise_dir):
    model = EmotionModel.load()
    stream = build_stream(StreamCondition("running tap alone", "running_tap.flac", speech=False), [], noise_seconds=20.0)
    with pytest.raises(AudioError, match="^audio: no speech found$"):
        model.classify(stream.samples, RATE)
    listening = model.stream(RATE, live=False)
    events = [e for i in range(0, len(stream.samples), 1600) for e in listening.push(stream.samples[i : i + 1600])]
    assert events + listening.close() == []
