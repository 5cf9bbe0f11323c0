"""Corpus readers keep label, speaker and gender with every utterance; splits never share a speaker
and keep emotions and genders mixed like the whole corpus."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile

from trainer.corpus import CANONICAL_LABELS, SHEMO_LABEL_MAP, parse_shemo_name, read_corpus, read_csv_corpus, read_shemo
from trainer.dataset import balanced_split, choose_split, speaker_folds


def write_tone(path: Path, seconds: float = 0.6) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(16000 * seconds)) / 16000
    soundfile.write(path, 0.2 * np.sin(2 * np.pi * 180 * t), 16000)


@pytest.fixture
def shemo_dir(tmp_path) -> Path:
    """A ShEMO-shaped corpus: 6 female and 6 male speakers, uneven emotions per speaker, as in ShEMO."""
    rng = np.random.default_rng(3)
    for gender in "FM":
        for speaker in range(1, 7):
            for utterance, emotion in enumerate(rng.choice(list("AFHNSW"), size=8)):
                write_tone(
                    tmp_path
                    / "shemo"
                    / ("female" if gender == "F" else "male")
                    / f"{gender}{speaker:02d}{emotion}{utterance:02d}.wav"
                )
    return tmp_path / "shemo"


def test_shemo_names_give_gender_speaker_and_label():
    utterance = parse_shemo_name(Path("F03S02.wav"))
    assert (utterance.gender, utterance.speaker, utterance.label) == ("female", "F03", "sad")
    assert parse_shemo_name(Path("M12W07.wav")).label == "surprised"
    assert set(SHEMO_LABEL_MAP.values()) <= set(CANONICAL_LABELS)
    for bad in ("F3S02.wav", "X03S02.wav", "F03D02.wav", "03-01-01-01-01-01-01.wav"):
        with pytest.raises(ValueError, match="not a ShEMO file name"):
            parse_shemo_name(Path(bad))


def test_shemo_reader_reads_a_generated_corpus(shemo_dir):
    corpus = read_shemo(shemo_dir)
    assert corpus.name == "shemo" and len(corpus.utterances) == 96
    assert len({u.speaker for u in corpus.utterances}) == 12  # F01 and M01 are different people
    assert "disgust" not in corpus.labels and set(corpus.labels) <= set(CANONICAL_LABELS)
    assert all(u.gender == ("female" if u.speaker[0] == "F" else "male") for u in corpus.utterances)


def test_csv_corpus_maps_labels_and_genders(tmp_path):
    for name in ("a.wav", "b.wav", "c.flac"):
        write_tone(tmp_path / "audio" / name)
    (tmp_path / "corpus.csv").write_text(
        "path,label,speaker,gender\naudio/a.wav,joy,s1,F\naudio/b.wav,angry,s2,m\naudio/c.flac,neutral,s3,\n"
    )
    (tmp_path / "labels.json").write_text(json.dumps({"joy": "happy"}))
    corpus = read_corpus("csv", tmp_path / "corpus.csv")
    assert [(u.path.name, u.label, u.speaker, u.gender) for u in corpus.utterances] == [
        ("a.wav", "happy", "s1", "female"),
        ("b.wav", "angry", "s2", "male"),
        ("c.flac", "neutral", "s3", ""),
    ]
    assert corpus.label_map == {"joy": "happy"}


@pytest.mark.parametrize(
    "content, message",
    [
        ("path,label\nx.wav,happy\n", "missing column"),
        ("path,label,speaker\nx.wav,bored,s1\n", "neither canonical nor in the label map"),
        ("path,label,speaker,gender\nx.wav,sad,s1,x\n", "gender 'x'"),
        ("path,label,speaker\n", "no rows"),
    ],
)
def test_bad_csv_corpora_are_refused_naming_the_line(tmp_path, content, message):
    (tmp_path / "c.csv").write_text(content)
    with pytest.raises(ValueError, match=message):
        read_csv_corpus(tmp_path / "c.csv")


def test_balanced_split_shares_no_speaker_and_mixes_genders_and_emotions(shemo_dir):
    utterances = read_shemo(shemo_dir).utterances
    split = balanced_split(utterances, seed=0)
    parts = [set(split.train), set(split.validation), set(split.test)]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert set().union(*parts) == {u.speaker for u in utterances}
    for part in ("validation", "test"):
        genders = Counter(s[0] for s in getattr(split, part))
        assert genders["F"] == genders["M"]  # 12 speakers, 2 + 2 held out: one of each can always be had
        assert len({u.label for u in split.of(utterances, part)}) == 6
    assert balanced_split(utterances, seed=0) == split  # reproducible


@pytest.mark.corpus
def test_speaker_folds_hold_out_every_speaker_once(ravdess_dir):
    from trainer.corpus import read_ravdess

    utterances = read_ravdess(ravdess_dir).utterances
    folds = speaker_folds(utterances, 4, seed=0)
    held = [s for _, held_out in folds for s in held_out]
    assert sorted(held) == sorted({u.speaker for u in utterances})
    for train, held_out in folds:
        assert not set(train) & set(held_out)
        assert sum(int(s) % 2 for s in held_out) in (2, 3)  # males among 5 held-out actors


def test_file_names_of_every_reader_give_label_speaker_gender_and_corpus():
    from trainer.corpus import parse_casia_path, parse_emodb_name, parse_emotiontts_name, parse_savee_name

    emotion, anger = parse_emodb_name(Path("wav/03a01Wa.flac"))
    assert (emotion, anger.label, anger.speaker, anger.gender, anger.corpus) == ("W", "angry", "03", "male", "emodb")
    assert parse_emodb_name(Path("08b02Ec.flac"))[1].gender == "female"
    assert parse_emodb_name(Path("08b02Lc.flac")) == ("L", None)  # boredom: no canonical class
    sad = parse_savee_name(Path("KL_sa15.flac"))
    assert (sad.label, sad.speaker, sad.gender) == ("sad", "KL", "male")
    assert parse_savee_name(Path("DC_su01.flac")).label == "surprised"
    fear = parse_casia_path(Path("casia/liuchanhg/fear/201.flac"))
    assert (fear.label, fear.speaker, fear.gender) == ("fearful", "liuchanhg", "female")
    korean = [parse_emotiontts_name(Path(f"nek/nek{n:05d}.flac")) for n in (1, 100, 101, 250, 400)]
    assert [u.label for u in korean] == ["neutral", "neutral", "happy", "angry", "sad"] and korean[0].gender == "male"
    for parse, bad in (
        (parse_emodb_name, "03a01Xa"),
        (parse_savee_name, "DC-a01"),
        (parse_casia_path, "x/wangzhe/bored/1"),
        (parse_emotiontts_name, "nek00401"),
        (parse_emotiontts_name, "zzz00001"),
    ):
        with pytest.raises(ValueError, match="not a"):
            parse(Path(bad + ".flac"))


def test_ased_names_give_label_sentence_speaker_and_gender_code_case_blind():
    from trainer.corpus import parse_ased_name

    angry, gender = parse_ased_name(Path("05Angry/a5-03-01-02-50.flac"))
    assert (angry.label, angry.sentence, angry.speaker, gender, angry.corpus) == ("angry", "03", "50", "male", "ased")
    sad, gender = parse_ased_name(Path("04Sad/S4-01-02-01-29.flac"))  # speaker 29's uppercase letter
    assert (sad.label, sad.sentence, gender) == ("sad", "01", "female")
    for bad in ("x5-03-01-02-50", "a5-03-01-03-50", "a5-3-01-02-50", "03-01-01-01-01-01-01"):
        with pytest.raises(ValueError, match="not an ASED file name"):
            parse_ased_name(Path(bad + ".flac"))


@pytest.mark.corpus
def test_an_ased_speaker_has_the_gender_most_of_their_files_carry(corpus_dir):
    corpus = read_corpus("ased", corpus_dir("ased"))
    genders = {}
    for u in corpus.utterances:
        genders.setdefault(u.speaker, set()).add(u.gender)
    assert all(len(g) == 1 for g in genders.values())  # 09, 15, 21, 23, 25 each carry one stray code
    assert Counter(g.pop() for g in genders.values()) == {"female": 19, "male": 34}  # as the README says
    assert {u.sentence for u in corpus.utterances} == {f"{n:02d}" for n in range(1, 8)}


@pytest.mark.corpus
def test_the_ased_test_speakers_are_women_and_men_with_every_emotion_in_both_kinds_of_sentence(corpus_dir):
    from trainer.corpus import ASED_COMMON_SENTENCES, DEFAULT_TEST_SPEAKERS, default_test_speakers

    corpus = read_corpus("ased", corpus_dir("ased"))
    assert default_test_speakers(corpus) == DEFAULT_TEST_SPEAKERS["ased"]
    test = [u for u in corpus.utterances if u.speaker in DEFAULT_TEST_SPEAKERS["ased"]]
    assert Counter(u.gender for u in test) == {"female": 156, "male": 156}
    for common in (True, False):
        for gender in ("female", "male"):
            part = [u for u in test if (u.sentence in ASED_COMMON_SENTENCES) == common and u.gender == gender]
            assert {u.label for u in part} == set(corpus.labels), (common, gender)


# What the corpus README says each corpus holds, after the label maps.
CORPUS_FACTS = {
    "emodb": (10, 454, {"L": 81}, ("neutral", "happy", "sad", "angry", "fearful", "disgust")),
    "savee": (4, 480, {}, CANONICAL_LABELS),
    "casia": (4, 1200, {}, ("neutral", "happy", "sad", "angry", "fearful", "surprised")),
    "emotiontts": (15, 300, {}, ("neutral", "happy", "sad", "angry")),
    "ased": (53, 1778, {}, ("neutral", "happy", "sad", "angry", "fearful")),
}


@pytest.mark.corpus
@pytest.mark.parametrize("kind", sorted(CORPUS_FACTS))
def test_each_reader_reads_its_whole_corpus_with_declared_labels(corpus_dir, kind):
    speakers, clips, dropped, labels = CORPUS_FACTS[kind]
    corpus = read_corpus(kind, corpus_dir(kind))
    assert len({u.speaker for u in corpus.utterances}) == speakers and len(corpus.utterances) == clips
    assert corpus.dropped == dropped and corpus.labels == labels
    assert all(u.gender in ("female", "male") and u.corpus == kind for u in corpus.utterances)


@pytest.mark.corpus
def test_corpora_read_together_keep_speakers_apart_and_find_the_test_actors(corpus_dir):
    from trainer.corpus import default_test_speakers, read_corpora

    corpus_dir("ravdess"), corpus_dir("emodb")  # present, or skipped with the reason
    combined = read_corpora(["ravdess", "emodb"])
    assert combined.name == "ravdess+emodb" and len(combined.utterances) == 1200 + 454
    assert {u.speaker.split("/")[0] for u in combined.utterances} == {"ravdess", "emodb"}
    assert combined.labels == CANONICAL_LABELS and combined.dropped == {"emodb": {"L": 81}}
    assert default_test_speakers(combined) == ("ravdess/17", "ravdess/18", "ravdess/19", "ravdess/20")
    assert default_test_speakers(read_corpora(["ravdess"])) == ("17", "18", "19", "20")
    assert default_test_speakers(read_corpora(["emodb"])) == ()


@pytest.mark.corpus
def test_a_split_takes_the_speakers_given_else_the_corpus_defaults_else_a_balanced_draw(corpus_dir, shemo_dir):
    from trainer.corpus import read_corpora

    corpus_dir("ravdess")  # present, or skipped with the reason
    ravdess = read_corpora(["ravdess"])
    default = choose_split(ravdess)
    assert default.test == ("17", "18", "19", "20") and default.validation == ()
    assert default.train == tuple(f"{actor:02d}" for actor in range(1, 17))
    given = choose_split(ravdess, validation=("15", "16"), test=("19", "20"))
    assert given.train == (*(f"{actor:02d}" for actor in range(1, 15)), "17", "18") and given.validation == ("15", "16")
    shemo = read_shemo(shemo_dir)  # no default test speakers: the balanced draw
    assert choose_split(shemo, seed=3) == balanced_split(shemo.utterances, seed=3)
    with pytest.raises(ValueError, match="more than one split"):
        choose_split(ravdess, train=("01", "17"), test=("17",))


def test_speaker_lists_expand_ranges_also_after_a_corpus_prefix():
    from trainer.cli import _speakers

    assert _speakers("1-3,7") == ("01", "02", "03", "07")
    assert _speakers("ravdess/17-18, emodb/03,savee/DC,F03") == ("ravdess/17", "ravdess/18", "emodb/03", "savee/DC", "F03")
