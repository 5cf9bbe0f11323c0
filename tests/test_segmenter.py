"""The segmenter: voice activity cuts a stream into utterances whose features are exactly the
offline frontend's on the same samples."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from support.helpers import read_speech

from edge.bundle import load_bundle
from edge.classifier import Classifier
from edge.errors import AudioError
from edge.frontend import compute_features
from edge.segmenter import Segmenter
from edge.settings import SegmenterSettings
from edge.voice_activity import SILENCE_DB, BackgroundLevel, block_levels
from trainer.corpus import SHIPPED_CORPORA

RATE = 16000


@pytest.fixture(scope="module")
def manifest():
    return load_bundle().manifest


def silence(seconds: float, level_db: float | None = None, seed: int = 0) -> np.ndarray:
    """Digital silence, or white noise at ``level_db`` dBFS."""
    n = round(seconds * RATE)
    if level_db is None:
        return np.zeros(n)
    return np.random.default_rng(seed).standard_normal(n) * 10 ** (level_db / 20)


def run(segmenter: Segmenter, stream: np.ndarray, chunk: int = 705) -> list:
    utterances = []
    for i in range(0, len(stream), chunk):
        utterances += segmenter.push(stream[i : i + chunk])
    return utterances + segmenter.flush()


def test_features_of_an_utterance_are_the_offline_features_of_its_samples(manifest, speech_files):
    speech = read_speech(speech_files[0])
    stream = np.concatenate([silence(1.7), speech, silence(2.0)])
    for chunk in (1, 160, 705, 4096):
        segmenter = Segmenter(SegmenterSettings(), manifest.frontend, manifest.windowing.min_frames)
        (utterance,) = run(segmenter, stream, chunk)
        first, last = round(utterance.start * RATE), round(utterance.end * RATE)
        assert np.array_equal(utterance.features, compute_features(stream[first:last], manifest.frontend))


def test_an_utterance_spans_the_speech_with_preroll_and_hangover(manifest, speech_files):
    settings = SegmenterSettings(preroll_seconds=0.5, hangover_seconds=0.6, detector="none")  # the level alone
    stream = np.concatenate([silence(3.0), read_speech(speech_files[1]), silence(2.0)])
    (utterance,) = run(Segmenter(settings, manifest.frontend), stream)
    step = manifest.frontend.frame_step
    levels = block_levels(stream[: len(stream) // step * step].reshape(-1, step))
    loud = np.flatnonzero(levels > settings.threshold_db)  # the background is digital silence here
    assert utterance.start == (loud[0] * step - round(0.5 * RATE / step) * step) / RATE
    assert utterance.end == ((loud[-1] + 1) * step + round(0.6 * RATE / step) * step) / RATE
    assert utterance.part == 1


def test_silence_between_two_clips_separates_them_and_a_short_pause_does_not(manifest, speech_files):
    one, two = read_speech(speech_files[2]), read_speech(speech_files[3])
    segmenter = Segmenter(SegmenterSettings(hangover_seconds=0.8), manifest.frontend, manifest.windowing.min_frames)
    assert len(run(segmenter, np.concatenate([silence(1), one, silence(2), two, silence(2)]))) == 2
    # The clips carry their own quiet edges; cut to the speech, a 0.3 s gap is a pause, not an end.
    voiced = [x[np.flatnonzero(np.abs(x) > 0.01)[0] : np.flatnonzero(np.abs(x) > 0.01)[-1]] for x in (one, two)]
    assert len(run(segmenter, np.concatenate([silence(1), voiced[0], silence(0.3), voiced[1], silence(2)]))) == 1


def test_a_long_utterance_is_emitted_in_parts_of_at_most_max_seconds(manifest, speech_files):
    voiced = [
        x[np.flatnonzero(np.abs(x) > 0.01)[0] : np.flatnonzero(np.abs(x) > 0.01)[-1]] for x in map(read_speech, speech_files[:6])
    ]
    settings = SegmenterSettings(max_seconds=4.0, hangover_seconds=0.8)
    stream = np.concatenate([silence(1)] + [np.concatenate([v, silence(0.2)]) for v in voiced] + [silence(2)])
    parts = run(Segmenter(settings, manifest.frontend, manifest.windowing.min_frames), stream)
    assert len(parts) >= 3
    assert [p.part for p in parts] == list(range(1, len(parts) + 1))
    assert all(p.duration <= 4.0 + 1e-9 for p in parts)
    assert all(np.isclose(a.end, b.start) for a, b in itertools.pairwise(parts))  # nothing lost between parts


def test_clicks_and_steady_noise_make_no_utterance(manifest):
    settings = SegmenterSettings()
    click = np.concatenate([silence(2), np.full(80, 0.5), silence(2)])  # 5 ms at -6 dBFS
    assert run(Segmenter(settings, manifest.frontend, manifest.windowing.min_frames), click) == []
    fan = silence(10, level_db=-35)  # louder than threshold_db: only the background tracking rejects it
    assert run(Segmenter(settings, manifest.frontend, manifest.windowing.min_frames), fan) == []


def test_speech_is_found_over_a_steady_background_noise(manifest, speech_files):
    speech = read_speech(speech_files[4])
    stream = np.concatenate([silence(3), speech, silence(2)]) + silence(3 + len(speech) / RATE + 2, level_db=-50)
    assert len(run(Segmenter(SegmenterSettings(), manifest.frontend, manifest.windowing.min_frames), stream)) == 1


def test_reset_drops_an_open_utterance(manifest, speech_files):
    segmenter = Segmenter(SegmenterSettings(), manifest.frontend, manifest.windowing.min_frames)
    speech = read_speech(speech_files[5])
    assert segmenter.push(np.concatenate([silence(1), speech[: len(speech) // 2]])) == []
    segmenter.reset()
    assert segmenter.push(silence(3)) == [] and segmenter.flush() == []


class ScriptedDetector:
    """A speech detector whose probability for each block of the stream is given in advance: to
    state the segmenter's rules on probabilities (the real detector's own are tested in
    test_speech_detector)."""

    name, block = "scripted", 256

    def __init__(self, probabilities: np.ndarray):
        self.probabilities, self.position = probabilities, 0

    def push(self, blocks: np.ndarray, asked: np.ndarray) -> np.ndarray:
        chosen = self.probabilities[self.position : self.position + len(blocks)]
        self.position += len(blocks)
        return np.where(asked, chosen, np.nan)

    def reset(self) -> None:
        pass


def scripted_stream(manifest, parts: list[tuple[float, float | None, float]]) -> list:
    """The utterances of a stream of (seconds, level in dBFS or None for the room's hiss,
    detector probability) parts, over hiss at -70 dBFS."""
    samples, probabilities = [], []
    for index, (seconds, level_db, probability) in enumerate(parts):
        samples.append(silence(seconds, level_db if level_db is not None else -70, seed=index))
        probabilities.append(np.full(round(seconds * RATE / 256), probability))
    segmenter = Segmenter(SegmenterSettings(), manifest.frontend, manifest.windowing.min_frames)
    segmenter.voice.detector = ScriptedDetector(np.concatenate(probabilities))
    return run(segmenter, np.concatenate(samples), chunk=1600)


def test_clear_speech_starts_an_utterance_and_likely_speech_a_little_above_the_room_holds_it(manifest):
    """Hysteresis: ``speech_threshold`` (0.7) to start, ``hold_threshold`` (0.3) to go on, on
    blocks ``hold_margin_db`` (5) but not ``hold_level_db`` (7) above the background."""
    opening = [(10.0, None, 0.0), (0.5, -40, 0.9)]
    held = scripted_stream(manifest, [*opening, (1.5, -64, 0.5), (3.0, None, 0.0)])
    assert len(held) == 1 and held[0].speech_end == pytest.approx(12.0, abs=0.02)
    not_held = scripted_stream(manifest, [*opening, (1.5, -64, 0.2), (3.0, None, 0.0)])
    assert len(not_held) == 1 and not_held[0].speech_end == pytest.approx(10.5, abs=0.02)
    never_started = scripted_stream(manifest, [(10.0, None, 0.0), (2.0, -40, 0.5), (3.0, None, 0.0)])
    assert never_started == []


def test_an_utterance_needs_min_seconds_of_speech_blocks_not_of_held_ones(manifest):
    """0.2 s that could start an utterance, held for 1.5 s more by likely speech, is not 0.3 s of speech."""
    short = scripted_stream(manifest, [(10.0, None, 0.0), (0.2, -40, 0.9), (1.5, -64, 0.5), (3.0, None, 0.0)])
    assert short == []


def test_block_levels_are_dbfs_of_the_sound_around_any_dc_offset():
    square = np.tile([1.0, -1.0], 128)
    blocks = np.stack([square, 0.1 * square, 0.1 * square + 0.5, np.full(256, 0.5), np.zeros(256)])
    levels = block_levels(blocks)
    assert np.allclose(levels[:3], [0.0, -20.0, -20.0])
    assert levels[3] == levels[4] == SILENCE_DB  # a constant is no sound


@pytest.mark.corpus
def test_every_clip_of_every_corpus_but_one_word_has_speech_for_the_detector(corpus_dir, shipped_bundle):
    """``ser classify`` refuses files in which the segmenter finds no utterance with 0.2 s from its
    first to its last speech block; no real recording may be
    refused, quiet ones, ones with a DC offset and ASED's, recorded where its speakers chose,
    included; of single words, at most one in a thousand."""
    classifier, checked, refused = Classifier(shipped_bundle), 0, []
    for kind in SHIPPED_CORPORA:
        for path in sorted(corpus_dir(kind).rglob("*.flac")):
            speech, samples = classifier.speech_check(), read_speech(path)
            speech.push(samples)
            speech.add_frames(compute_features(samples, classifier.manifest.frontend))
            try:
                classifier.check_speech(speech, str(path))
            except AudioError as error:
                refused.append(str(error))
            checked += 1
    print("\n".join(refused))
    assert checked > 5400 and len(refused) <= checked // 1000
    assert all("/casia/" in line for line in refused)  # CASIA's one-word texts (245: a syllable)


@pytest.mark.parametrize("window_blocks", [1, 3, 312, 5000])
@pytest.mark.parametrize("percentile", [0.0, 40.0])
def test_the_background_after_each_of_many_blocks_is_that_of_one_block_at_a_time(window_blocks, percentile):
    rng = np.random.default_rng(window_blocks)
    levels = np.where(rng.random(3000) < 0.2, -60.0, rng.uniform(-90, -20, 3000))
    one_by_one, at_once = (BackgroundLevel(1.0, window_blocks, percentile) for _ in range(2))
    expected = []
    for level in levels:
        one_by_one.update(float(level))
        expected.append(one_by_one.level)
    cuts = [0, 1, 7, 700, 2999, 3000]
    got = np.concatenate([at_once.after_each(levels[a:b]) for a, b in zip(cuts, cuts[1:])])
    assert np.array_equal(got, expected) and at_once.level == one_by_one.level


@pytest.mark.parametrize("window_blocks", [1, 3, 312])
@pytest.mark.parametrize("percentile", [0.0, 40.0])
def test_background_is_a_low_percentile_of_the_blocks_of_the_last_window(window_blocks, percentile):
    rng = np.random.default_rng(window_blocks)
    levels = np.where(rng.random(3000) < 0.2, -60.0, rng.uniform(-90, -20, 3000))  # ties included
    background = BackgroundLevel(block_seconds=1.0, window_seconds=window_blocks, percentile=percentile)
    assert background.level == SILENCE_DB  # nothing heard yet
    for index, level in enumerate(levels):
        background.update(float(level))
        recent = levels[max(0, index + 1 - window_blocks) : index + 1]
        # An order statistic of the levels heard (NumPy's "lower" percentile): one of them, exactly.
        assert background.level == np.percentile(recent, percentile, method="lower")
