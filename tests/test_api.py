"""The Python API: what a program embedding edge-ser gets from files, arrays and live blocks."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import soundfile
from support.helpers import REPO, read_speech

from edge.api import EmotionModel
from edge.audio import load_audio, resample
from edge.errors import AudioError, BundleError
from edge.segmenter import Segmenter
from edge.settings import SegmenterSettings

RATE = 16000


@pytest.fixture(scope="module")
def model() -> EmotionModel:
    return EmotionModel.load()


def test_load_by_name_or_folder_and_refuse_what_is_not_a_bundle(model, tmp_path):
    assert model.classifier.manifest.name == "lstm-multilingual"
    assert EmotionModel.load(REPO / "models" / "gru-multilingual").classifier.manifest.name == "gru-multilingual"
    assert model.labels == ("neutral", "happy", "sad", "angry", "fearful", "disgust", "surprised")
    with pytest.raises(BundleError, match="no such model bundle"):
        EmotionModel.load(tmp_path / "nothing")


def test_a_file_and_the_same_audio_as_an_array_give_the_same_emotion(model, speech_files, tmp_path):
    path = speech_files[3]
    from_file = model.classify_file(path)
    assert model.classify(read_speech(path), sample_rate=RATE) == from_file
    stereo_44k = np.stack([resample(read_speech(path), RATE, 44100)] * 2, axis=1)
    assert model.classify(stereo_44k, sample_rate=44100).emotion == from_file.emotion
    soundfile.write(tmp_path / "silence.wav", np.zeros(3 * RATE), RATE)
    with pytest.raises(AudioError, match="no speech found"):
        model.classify_file(tmp_path / "silence.wav")


def played(clips, rate: int) -> np.ndarray:
    """The clips one after another with 1.5 s of silence before each and after the last, at ``rate``."""
    gap = np.zeros(round(1.5 * rate))
    return np.concatenate([part for clip in clips for part in (gap, resample(load_audio(clip, RATE), RATE, rate))] + [gap])


@pytest.mark.parametrize("block", [1, 333, 4096])
def test_a_stream_at_the_models_rate_gives_the_daemons_segmenter_and_classifier_results(model, speech_files, block):
    audio = played(speech_files[:3], RATE)
    segmenter = Segmenter(SegmenterSettings(), model.classifier.manifest.frontend, model.classifier.manifest.windowing.min_frames)
    expected = [model.classifier.classify_features(u.features) for u in [*segmenter.push(audio), *segmenter.flush()]]
    stream = model.stream()
    events = [e for start in range(0, len(audio), block) for e in stream.push(audio[start : start + block])] + stream.close()
    assert [(e.emotion, e.confidence, e.scores) for e in events] == [(p.emotion, p.confidence, p.scores) for p in expected]
    assert len(events) == 3 and all(e.model == "lstm-multilingual" and e.end > e.start for e in events)


def test_a_stream_at_any_rate_finds_every_utterance(model, speech_files):
    audio = played(speech_files[:3], 48000)
    stream = model.stream(sample_rate=48000)
    events = [e for start in range(0, len(audio), 960) for e in stream.push(audio[start : start + 960])] + stream.close()
    assert len(events) == 3
    for event, clip in zip(events, speech_files[:3]):  # each spans its clip's speech, pre-roll and hang-over
        assert abs(event.duration - soundfile.info(clip).duration) < 2.0
    assert stream.seconds == 0.0  # closed: a fresh stream


def test_the_example_script_runs(speech_files):
    result = subprocess.run(
        [sys.executable, str(REPO / "examples" / "embed.py")], capture_output=True, text=True, cwd=REPO, timeout=300
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "03-01-05-02-01-01-18.flac: angry (0.99)" in " ".join(lines)
    live = lines[lines.index("live audio, 20 ms blocks at 48 kHz:") + 1 :]
    assert len(live) == 5 and all(line.split()[0] in EmotionModel.load().labels for line in live)
