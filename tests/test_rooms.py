"""Room copies: a clip as a room delivers it, built deterministically from a seed, at the level and
SNR drawn for it, as long as the clip; training and evaluation use disjoint rooms, noise segments
and talkers."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from support.helpers import read_speech

from trainer.rooms import (
    RoomCondition,
    RoomConfig,
    RoomSimulation,
    draw_condition,
    noise_segments,
    power,
    render,
    rms_dbfs,
    room_copy,
    training_sources,
)

SMALL_BANK = RoomSimulation(rooms=3)


@pytest.fixture(scope="module")
def clip(speech_files) -> np.ndarray:
    return read_speech(speech_files[4])


@pytest.fixture(scope="module")
def sources(speech_files, noise_dir):
    return training_sources(RoomConfig(simulation=SMALL_BANK), tuple(speech_files[6:]))


def test_a_room_copy_is_the_same_for_the_same_seed_and_differs_for_another(clip, sources):
    config = RoomConfig(simulation=SMALL_BANK)
    first = room_copy(clip, 16000, config, sources, np.random.default_rng(5))
    again = room_copy(clip, 16000, config, sources, np.random.default_rng(5))
    other = room_copy(clip, 16000, config, sources, np.random.default_rng(6))
    assert np.array_equal(first, again) and not np.array_equal(first, other)
    assert len(first) == len(clip) and np.max(np.abs(first)) <= 1.0


@pytest.mark.parametrize("noise", ["running_tap.flac", "babble", "white_noise.flac"])
@pytest.mark.parametrize("room", [None, 1])
def test_a_copy_has_the_level_and_snr_it_was_drawn_with_and_the_clips_length(clip, sources, noise, room):
    condition = RoomCondition(room=room, noise=noise, snr_db=7.5, talkers=4, level_dbfs=-33.0)
    copy = render(clip, 16000, condition, sources, np.random.default_rng(1))
    assert len(copy) == len(clip) and rms_dbfs(copy) == pytest.approx(-33.0, abs=0.01)
    # without the level's gain, the copy less its speech alone is the background, at the SNR asked for
    unscaled = dataclasses.replace(condition, level_dbfs=None)
    mixed = render(clip, 16000, unscaled, sources, np.random.default_rng(1))
    speech = render(clip, 16000, dataclasses.replace(unscaled, noise=None), sources, np.random.default_rng(1))
    assert 10 * np.log10(power(speech) / power(mixed - speech)) == pytest.approx(7.5, abs=0.01)
    assert np.allclose(copy, mixed * 10 ** ((-33.0 - rms_dbfs(mixed)) / 20))


def test_reverberation_spreads_the_clip_in_time_and_keeps_it_in_place(clip, sources):
    dry = render(clip, 16000, RoomCondition(), sources, np.random.default_rng(0))
    wet = render(clip, 16000, RoomCondition(room=0), sources, np.random.default_rng(0))
    lag = np.argmax(np.correlate(wet[8000:24000], dry[8000:24000], "full")) - (16000 - 1)
    assert abs(lag) <= 16  # the direct sound starts the response: speech is not delayed
    assert not np.allclose(wet, dry * np.dot(wet, dry) / np.dot(dry, dry), atol=1e-3)


def test_draws_cover_every_part_of_a_room_in_roughly_their_shares(sources):
    config = RoomConfig(simulation=SMALL_BANK)
    rng = np.random.default_rng(0)
    drawn = [draw_condition(config, sources, rng) for _ in range(2000)]
    assert np.mean([c.room is not None for c in drawn]) == pytest.approx(config.reverb_share, abs=0.04)
    assert np.mean([c.noise is not None for c in drawn]) == pytest.approx(config.noise_share, abs=0.04)
    assert {c.noise for c in drawn} == {None, "babble", *(s.file for s in sources.noises)}
    levels = [c.level_dbfs for c in drawn]
    assert config.level_dbfs[0] <= min(levels) and max(levels) <= config.level_dbfs[1]
    assert 0.02 < np.mean([c.clip_percentile > 0 for c in drawn]) < 0.08


def test_training_and_evaluation_noise_segments_are_apart():
    train, evaluation = noise_segments("train"), noise_segments("evaluation")
    assert [s.file for s in train] == [s.file for s in evaluation]
    assert all(t.end < e.start for t, e in zip(train, evaluation))


def test_babble_talkers_come_from_the_speakers_own_fold_never_their_own_clips():
    from pathlib import Path

    from trainer.corpus import Utterance
    from trainer.rooms import babble_talkers

    utterances = [Utterance(Path(f"{s}/{i}.flac"), "sad", s, "female") for s in "abcdef" for i in range(3)]
    talkers = babble_talkers(utterances, [("a", "b", "c"), ("d", "e", "f")], per_speaker=4)
    assert set(talkers) == set("abcdef")
    for speaker, clips in talkers.items():
        group = "abc" if speaker in "abc" else "def"
        assert len(clips) == 4 and all(p.parent.name in group and p.parent.name != speaker for p in clips)


def test_the_evaluation_never_uses_a_training_room():
    from trainer.room_evaluation import EVALUATION_ROOMS

    assert EVALUATION_ROOMS.seed != RoomConfig().simulation.seed


@pytest.mark.integration  # evaluates a model in subprocesses
def test_ser_train_rooms_scores_a_bundle_in_every_room_with_studio_as_the_gate_measures_it(ravdess_dir, noise_dir, tmp_path):
    import json

    from support.helpers import run_train

    from trainer.room_evaluation import conditions

    out = tmp_path / "rooms.json"
    result = run_train("rooms", "--corpus", "ravdess", "--speakers", "19,20", "--out", str(out), "--jobs", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    rooms = json.loads(out.read_text())
    assert rooms["clips"] == 120 and rooms["speakers"] == ["19", "20"]
    assert list(rooms["conditions"]) == [c.name for c in conditions()]
    gate = json.loads(run_train("gate", "--corpus", "ravdess", "--speakers", "19,20", "--json").stdout)
    studio = rooms["conditions"]["studio"]
    assert (studio["int8"]["uar"], studio["float32"]["uar"]) == (gate["int8"]["uar"], gate["float32"]["uar"])
    assert len({row["int8"]["uar"] for row in rooms["conditions"].values()}) > 5  # the rooms change what is heard
    alone = run_train("rooms", "--corpus", "ravdess", "--speakers", "19", "--out", str(out))
    assert alone.returncode == 1 and alone.stderr.strip().splitlines()[-1] == (
        "Error: scoring in rooms needs at least two speakers: the others talk in the babble"
    )
