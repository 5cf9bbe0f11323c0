"""Classifying a file: a block at a time in memory that does not grow with the file, the same bits
as the whole file in memory, and no emotion for a file without speech."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import soundfile
from support.helpers import read_speech

import edge.classifier
from edge.audio import load_audio
from edge.bundle import ModelBundle
from edge.classifier import KEPT_FRAMES, Classifier
from edge.errors import AudioError

BLOCK_SECONDS = (0.05, 0.7, 3.0, 1000.0)


@pytest.fixture(scope="module")
def files(speech_files, tmp_path_factory):
    """Clips of several lengths and formats: corpus clips, one shorter than a model window, and a
    12 s stereo 44.1 kHz WAV of three clips in a row (resampled on the way in)."""
    folder = tmp_path_factory.mktemp("clips")
    short = folder / "short.flac"
    soundfile.write(short, read_speech(speech_files[3])[16000:36000], 16000)
    joined = np.concatenate([read_speech(p) for p in speech_files[4:7]])
    stereo = folder / "three-clips-44k.wav"
    resampled = np.interp(np.arange(0, len(joined), 16000 / 44100), np.arange(len(joined)), joined)
    soundfile.write(stereo, np.stack([resampled, 0.5 * resampled], axis=1), 44100, subtype="PCM_24")
    return [*speech_files[:3], short, stereo]


def with_windowing(bundle: ModelBundle, **changes) -> Classifier:
    """A classifier whose manifest windows differently (the model is the same; only the paths are compared)."""
    manifest = dataclasses.replace(bundle.manifest, windowing=dataclasses.replace(bundle.manifest.windowing, **changes))
    return Classifier(dataclasses.replace(bundle, manifest=manifest))


@pytest.mark.parametrize("kept_frames", [0, KEPT_FRAMES], ids=["decoded again", "features kept"])
@pytest.mark.parametrize("windowing", [{}, {"trim_db": 20.0}, {"hop_frames": 37}])
def test_a_file_streamed_in_blocks_of_any_size_gives_the_whole_files_bits(
    shipped_bundle, files, windowing, kept_frames, monkeypatch
):
    monkeypatch.setattr(edge.classifier, "KEPT_FRAMES", kept_frames)  # long files are decoded twice
    classifier = with_windowing(shipped_bundle, **windowing)
    for path in files:
        whole = classifier.classify_samples(load_audio(path, 16000), str(path))
        for block_seconds in BLOCK_SECONDS:
            assert classifier.classify_file(path, block_seconds) == whole, (path, block_seconds)


@pytest.mark.parametrize("windowing, long_file_decodes", [({}, 2), ({"trim_db": 20.0}, 3)], ids=["untrimmed", "silence trimmed"])
def test_a_file_is_decoded_once_up_to_a_minute_and_twice_beyond_three_times_if_trimmed(
    shipped_bundle, files, tmp_path, windowing, long_file_decodes, monkeypatch
):
    decodes, read_blocks = [], edge.classifier.read_blocks

    def counted(*args, **kwargs):
        decodes.append(args[0])
        return read_blocks(*args, **kwargs)

    monkeypatch.setattr(edge.classifier, "read_blocks", counted)
    long_file = write(tmp_path / "long.flac", np.tile(load_audio(files[0], 16000), 20))  # over a minute
    classifier = with_windowing(shipped_bundle, **windowing)
    classifier.classify_file(files[0])
    assert len(decodes) == 1
    classifier.classify_file(long_file)
    assert len(decodes) == 1 + long_file_decodes


@pytest.mark.parametrize(
    "per_clip",
    [{"subtract_clip_mean": False, "divide_clip_std": False}, {"divide_clip_std": False}],
    ids=["without the clip's statistics", "with the clip mean alone"],
)
def test_each_per_clip_normalisation_streams_the_same_bits_too(shipped_bundle, files, per_clip, monkeypatch):
    normalisation = dataclasses.replace(shipped_bundle.manifest.normalisation, **per_clip)
    manifest = dataclasses.replace(shipped_bundle.manifest, normalisation=normalisation)
    classifier = Classifier(dataclasses.replace(shipped_bundle, manifest=manifest))
    for path in files:
        whole = classifier.classify_samples(load_audio(path, 16000))
        assert classifier.classify_file(path, 0.7) == whole
        monkeypatch.setattr(edge.classifier, "KEPT_FRAMES", 0)
        assert classifier.classify_file(path, 0.7) == whole
        monkeypatch.undo()


def write(path, samples, rate=16000):
    soundfile.write(path, samples, rate, subtype="PCM_16")
    return path


NO_SPEECH = {
    "digital silence": lambda: np.zeros(3 * 16000),
    "DC": lambda: np.full(3 * 16000, 0.3),
    "steady hum": lambda: 0.2 * np.sin(2 * np.pi * 50 * np.arange(3 * 16000) / 16000),
    "faint hiss": lambda: np.random.default_rng(1).normal(0, 10 ** (-80 / 20), 3 * 16000),
}


@pytest.mark.parametrize("case", NO_SPEECH)
def test_a_file_without_speech_gets_no_emotion(shipped_bundle, tmp_path, case):
    path = write(tmp_path / "quiet.wav", NO_SPEECH[case]())
    with pytest.raises(AudioError) as error:
        Classifier(shipped_bundle).classify_file(path)
    assert str(error.value) == f"{path}: no speech found"


def test_quiet_speech_with_a_dc_offset_is_still_speech(shipped_bundle, tmp_path, speech_files):
    quiet = read_speech(speech_files[0]) * 10 ** (-20 / 20) + 0.05  # 20 dB softer, biased like SAVEE's
    path = write(tmp_path / "quiet-speech.wav", quiet)
    assert Classifier(shipped_bundle).classify_file(path).windows >= 1
