"""Corpora as lists of labelled utterances, each with its speaker and gender.

Every reader maps its corpus's own labels onto the canonical set with a declared map, and keeps
speaker and gender with each utterance so that splits and analyses can use them.
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

from edge.audio import AUDIO_SUFFIXES

CANONICAL_LABELS = ("neutral", "happy", "sad", "angry", "fearful", "disgust", "surprised")
GENDERS = ("female", "male")

# RAVDESS emotion codes (third field of the file name) and how they map onto the canonical set:
# "calm" is too close to "neutral" to be told apart reliably and most corpora lack it.
RAVDESS_EMOTIONS = {
    "01": "neutral",
    "02": "calm",
    "03": "happy",
    "04": "sad",
    "05": "angry",
    "06": "fearful",
    "07": "disgust",
    "08": "surprised",
}
RAVDESS_LABEL_MAP = {"calm": "neutral", **{label: label for label in CANONICAL_LABELS}}

# EmoDB (German): the emotion letter of names like 03a01Fa; boredom (L) has no canonical class.
EMODB_LABEL_MAP = {"W": "angry", "L": None, "E": "disgust", "A": "fearful", "F": "happy", "T": "sad", "N": "neutral"}
EMODB_FEMALE = {"08", "09", "13", "14", "16"}
_EMODB_NAME = re.compile(r"^(\d{2})([ab]\d{2})([WLEAFTN])([a-z])$")

# SAVEE (British English, four men): the emotion letters of names like DC_sa03.
SAVEE_LABEL_MAP = {"a": "angry", "d": "disgust", "f": "fearful", "h": "happy", "n": "neutral", "sa": "sad", "su": "surprised"}
_SAVEE_NAME = re.compile(r"^([A-Z]{2})_(a|d|f|h|n|sa|su)(\d{2})$")

# CASIA (Mandarin): the emotion folder of SPEAKER/EMOTION/NNN; it has no disgust.
CASIA_LABEL_MAP = {
    "angry": "angry",
    "fear": "fearful",
    "happy": "happy",
    "neutral": "neutral",
    "sad": "sad",
    "surprise": "surprised",
}
CASIA_GENDERS = {"liuchanhg": "female", "zhaoquanyin": "female", "wangzhe": "male", "ZhaoZuoxiang": "male"}

# emotiontts_open_db (Korean): the clip number of SPEAKER/SPEAKERNNNNN gives the emotion, in blocks of 100.
EMOTIONTTS_LABEL_MAP = {"neutral": "neutral", "happy": "happy", "angry": "angry", "sad": "sad"}
EMOTIONTTS_BLOCKS = ("neutral", "happy", "angry", "sad")  # clips 1-100, 101-200, 201-300, 301-400
EMOTIONTTS_FEMALE = {"ema", "emb", "nea", "neb", "nec", "ned", "nee"}
EMOTIONTTS_MALE = {"emf", "emg", "emh", "nek", "nel", "nem", "nen", "neo"}
_EMOTIONTTS_NAME = re.compile(r"^([a-z]{3})(\d{5})$")

# ASED (Amharic): the emotion letter of names like a5-03-01-02-50 (angry, sentence 03, repetition 01,
# gender code 02 = male, speaker 50); one file of speaker 29 has an uppercase letter.
ASED_LABEL_MAP = {"n": "neutral", "f": "fearful", "h": "happy", "s": "sad", "a": "angry"}
ASED_GENDER_CODES = {"01": "female", "02": "male"}
ASED_COMMON_SENTENCES = ("01", "02")  # spoken in all five emotions; 03-07 are emotion-specific texts
_ASED_NAME = re.compile(r"^([nfhsa])\d-(\d{2})-(\d{2})-(0[12])-(\d{2})$", re.IGNORECASE)

# ShEMO (Persian): the emotion letter of names like F03S02.wav; it has no disgust.
SHEMO_LABEL_MAP = {"A": "angry", "F": "fearful", "H": "happy", "N": "neutral", "S": "sad", "W": "surprised"}
_SHEMO_NAME = re.compile(r"^([FM])(\d{2})([AFHNSW])(\d{2})$")


@dataclass(frozen=True)
class Utterance:
    """One labelled recording."""

    path: Path
    """The audio file."""
    label: str
    """Canonical emotion label."""
    speaker: str
    """Speaker id, unique within the corpus (e.g. '07' in RAVDESS, 'F03' in ShEMO)."""
    gender: str
    """'female', 'male', or '' where the corpus does not say."""
    corpus: str = ""
    """The corpus it comes from (ravdess, emodb, ...), for per-corpus weights and figures."""
    sentence: str = ""
    """Which text was spoken, where the corpus's names say it (ASED '01'-'07', of which '01' and '02'
    are spoken in every emotion); '' elsewhere."""


@dataclass(frozen=True)
class Corpus:
    """A corpus read from disk."""

    name: str
    """ravdess, shemo, or the CSV file's name."""
    utterances: tuple[Utterance, ...]
    """Every usable utterance, sorted by path."""
    label_map: dict
    """The corpus's own labels → canonical labels (None: dropped, no canonical class)."""
    dropped: dict = field(default_factory=dict)
    """How many clips of each own label were dropped for having no canonical class."""

    @property
    def labels(self) -> tuple[str, ...]:
        """The canonical labels this corpus has, in canonical order."""
        present = {u.label for u in self.utterances}
        return tuple(label for label in CANONICAL_LABELS if label in present)


def corpus_root() -> Path:
    """``SER_CORPUS_DIR``, else ``../shared/corpora`` beside the repository."""
    configured = os.environ.get("SER_CORPUS_DIR")
    return Path(configured) if configured else Path(__file__).resolve().parents[2] / "shared" / "corpora"


def parse_ravdess_name(path: Path) -> Utterance:
    """Label, actor and gender from a RAVDESS name MM-VC-EE-II-SS-RR-AA (odd actors are male)."""
    fields = path.stem.split("-")
    if len(fields) != 7 or fields[2] not in RAVDESS_EMOTIONS or not fields[6].isdigit():
        raise ValueError(f"{path}: not a RAVDESS file name (MM-VC-EE-II-SS-RR-AA)")
    actor = fields[6]
    gender = "male" if int(actor) % 2 else "female"
    return Utterance(path, RAVDESS_LABEL_MAP[RAVDESS_EMOTIONS[fields[2]]], actor, gender, "ravdess")


def parse_shemo_name(path: Path) -> Utterance:
    """Gender, speaker, label from a ShEMO name like F03S02 (female speaker 03, sadness, utterance 02)."""
    match = _SHEMO_NAME.match(path.stem)
    if not match:
        raise ValueError(f"{path}: not a ShEMO file name (like F03S02.wav)")
    gender, number, emotion, _ = match.groups()
    return Utterance(path, SHEMO_LABEL_MAP[emotion], gender + number, "female" if gender == "F" else "male", "shemo")


def parse_emodb_name(path: Path) -> tuple[str, Utterance | None]:
    """EmoDB's own emotion letter and the utterance of a name like 03a01Fa (speaker 03, text a01,
    happiness, version a); the utterance is None for boredom, which has no canonical class."""
    match = _EMODB_NAME.match(path.stem)
    if not match:
        raise ValueError(f"{path}: not an EmoDB file name (like 03a01Fa)")
    speaker, _, emotion, _ = match.groups()
    label = EMODB_LABEL_MAP[emotion]
    gender = "female" if speaker in EMODB_FEMALE else "male"
    return emotion, (Utterance(path, label, speaker, gender, "emodb") if label else None)


def parse_savee_name(path: Path) -> Utterance:
    """Speaker and label of a name like DC_sa03 (speaker DC, sadness, clip 03); all four are men."""
    match = _SAVEE_NAME.match(path.stem)
    if not match:
        raise ValueError(f"{path}: not a SAVEE file name (like DC_sa03)")
    speaker, emotion, _ = match.groups()
    return Utterance(path, SAVEE_LABEL_MAP[emotion], speaker, "male", "savee")


def parse_casia_path(path: Path) -> Utterance:
    """Speaker and label from CASIA's SPEAKER/EMOTION/NNN layout."""
    speaker, emotion = path.parent.parent.name, path.parent.name
    if emotion not in CASIA_LABEL_MAP or speaker not in CASIA_GENDERS:
        raise ValueError(f"{path}: not a CASIA path (SPEAKER/EMOTION/NNN with a known speaker and emotion)")
    return Utterance(path, CASIA_LABEL_MAP[emotion], speaker, CASIA_GENDERS[speaker], "casia")


def parse_emotiontts_name(path: Path) -> Utterance:
    """Speaker and label of a name like nea00203 (speaker nea, clip 203: angry)."""
    match = _EMOTIONTTS_NAME.match(path.stem)
    number = int(match.group(2)) if match else 0
    speaker = match.group(1) if match else ""
    if not 1 <= number <= 100 * len(EMOTIONTTS_BLOCKS) or speaker not in EMOTIONTTS_FEMALE | EMOTIONTTS_MALE:
        raise ValueError(f"{path}: not an emotiontts file name (a known speaker and clip 1-400, like nea00203)")
    gender = "female" if speaker in EMOTIONTTS_FEMALE else "male"
    return Utterance(path, EMOTIONTTS_BLOCKS[(number - 1) // 100], speaker, gender, "emotiontts")


def parse_ased_name(path: Path) -> tuple[Utterance, str]:
    """Label, sentence and speaker of a name like a5-03-01-02-50 (angry, sentence 03, repetition 01,
    male, speaker 50), and the gender its code gives; ``read_ased`` settles each speaker's gender
    by the code most of their files carry (five speakers have one file with the other code)."""
    match = _ASED_NAME.match(path.stem)
    if not match:
        raise ValueError(f"{path}: not an ASED file name (like a5-03-01-02-50)")
    emotion, sentence, _, gender_code, speaker = match.groups()
    gender = ASED_GENDER_CODES[gender_code]
    return Utterance(path, ASED_LABEL_MAP[emotion.lower()], speaker, gender, "ased", sentence), gender


def _audio_files(root: Path, pattern: str) -> list[Path]:
    files = sorted(p for p in root.glob(pattern) if p.suffix.lower() in AUDIO_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"{root}: no audio files matching {pattern}")
    return files


def read_ravdess(root: Path) -> Corpus:
    """Every speech utterance under ``root`` (Actor_NN/*.flac or *.wav)."""
    files = _audio_files(root, "Actor_*/*")
    return Corpus("ravdess", tuple(parse_ravdess_name(p) for p in files), RAVDESS_LABEL_MAP)


def read_shemo(root: Path) -> Corpus:
    """Every utterance under ``root`` (any depth) named like F03S02.wav."""
    files = _audio_files(root, "**/*")
    return Corpus("shemo", tuple(parse_shemo_name(p) for p in files), SHEMO_LABEL_MAP)


def read_emodb(root: Path) -> Corpus:
    """Every utterance under ``root`` (wav/*.flac or *.wav) with a canonical class; boredom is
    dropped and counted."""
    utterances, dropped = [], {}
    for path in _audio_files(root, "**/*"):
        emotion, utterance = parse_emodb_name(path)
        if utterance:
            utterances.append(utterance)
        else:
            dropped[emotion] = dropped.get(emotion, 0) + 1
    return Corpus("emodb", tuple(utterances), EMODB_LABEL_MAP, dropped)


def read_savee(root: Path) -> Corpus:
    """Every utterance under ``root`` named like DC_sa03."""
    return Corpus("savee", tuple(parse_savee_name(p) for p in _audio_files(root, "**/*")), SAVEE_LABEL_MAP)


def read_casia(root: Path) -> Corpus:
    """Every utterance under ``root`` laid out SPEAKER/EMOTION/NNN."""
    return Corpus("casia", tuple(parse_casia_path(p) for p in _audio_files(root, "*/*/*")), CASIA_LABEL_MAP)


def read_emotiontts(root: Path) -> Corpus:
    """Every utterance under ``root`` laid out SPEAKER/SPEAKERNNNNN."""
    return Corpus("emotiontts", tuple(parse_emotiontts_name(p) for p in _audio_files(root, "*/*")), EMOTIONTTS_LABEL_MAP)


def read_ased(root: Path) -> Corpus:
    """Every utterance under ``root`` laid out NNEmotion/xn-yy-aa-gg-bb; a speaker's gender is the
    code most of their files carry."""
    parsed = [parse_ased_name(p) for p in _audio_files(root, "*/*")]
    codes: dict[str, Counter] = {}
    for utterance, gender in parsed:
        codes.setdefault(utterance.speaker, Counter())[gender] += 1
    gender_of = {speaker: counts.most_common(1)[0][0] for speaker, counts in codes.items()}
    return Corpus("ased", tuple(replace(u, gender=gender_of[u.speaker]) for u, _ in parsed), ASED_LABEL_MAP)


# The corpora the trainer reads by default (``--corpus``), those the shipped recipe trains on.
SHIPPED_CORPORA = ("ravdess", "emodb", "savee", "casia", "emotiontts", "ased")
# The speakers whose clips are the reported test figures of the shipped models; no choice looks at them.
# ASED's: three women and three men who speak all five emotions in both the common sentences and the
# emotion-specific ones (two with 66-70 clips each, one with 20), 312 clips, half of them women's.
DEFAULT_TEST_SPEAKERS = {"ravdess": ("17", "18", "19", "20"), "ased": ("01", "03", "29", "04", "28", "32")}


def default_test_speakers(corpus: Corpus) -> tuple[str, ...]:
    """The default test speakers found in ``corpus`` (RAVDESS actors 17-20, as corpus/speaker ids
    where several corpora are combined); empty if it has none."""
    present = {u.speaker for u in corpus.utterances}
    wanted = [
        s
        for kind, speakers in DEFAULT_TEST_SPEAKERS.items()
        for s in (speakers if corpus.name == kind else (f"{kind}/{s}" for s in speakers))
    ]
    return tuple(s for s in wanted if s in present)


def combine(corpora: list[Corpus]) -> Corpus:
    """Several corpora as one. Speaker ids become ``corpus/speaker`` so that they stay unique;
    a single corpus is returned as it is."""
    if len(corpora) == 1:
        return corpora[0]
    names = [c.name for c in corpora]
    if len(set(names)) != len(names):
        raise ValueError(f"a corpus is named twice in {', '.join(names)}")
    utterances = tuple(replace(u, speaker=f"{c.name}/{u.speaker}") for c in corpora for u in c.utterances)
    return Corpus(
        "+".join(names), utterances, {c.name: c.label_map for c in corpora}, {c.name: c.dropped for c in corpora if c.dropped}
    )


def read_csv_corpus(csv_path: Path, label_map: dict | None = None) -> Corpus:
    """A folder of audio with a CSV of path,label,speaker[,gender] (paths relative to the CSV).

    Labels go through ``label_map`` (a JSON file ``labels.json`` beside the CSV if not given);
    labels already canonical need no entry.
    """
    if label_map is None:
        map_file = csv_path.with_name("labels.json")
        label_map = json.loads(map_file.read_text()) if map_file.is_file() else {}
    mapping = {**{label: label for label in CANONICAL_LABELS}, **label_map}
    bad_targets = sorted(set(mapping.values()) - set(CANONICAL_LABELS))
    if bad_targets:
        raise ValueError(f"{csv_path}: label map targets {bad_targets} are not canonical labels {CANONICAL_LABELS}")
    utterances = []
    with csv_path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"path", "label", "speaker"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{csv_path}: missing column(s) {', '.join(sorted(missing))}")
        for line, row in enumerate(reader, start=2):
            if row["label"] not in mapping:
                raise ValueError(f"{csv_path}:{line}: label {row['label']!r} is neither canonical nor in the label map")
            gender = (row.get("gender") or "").strip().lower()
            gender = {"f": "female", "m": "male"}.get(gender, gender)
            if gender not in ("", *GENDERS):
                raise ValueError(f"{csv_path}:{line}: gender {row['gender']!r} is not female/male/f/m or empty")
            utterances.append(
                Utterance(csv_path.parent / row["path"], mapping[row["label"]], row["speaker"], gender, csv_path.stem)
            )
    if not utterances:
        raise ValueError(f"{csv_path}: no rows")
    return Corpus(csv_path.name, tuple(sorted(utterances, key=lambda u: str(u.path))), label_map)


READERS = {
    "ravdess": read_ravdess,
    "emodb": read_emodb,
    "savee": read_savee,
    "casia": read_casia,
    "emotiontts": read_emotiontts,
    "ased": read_ased,
    "shemo": read_shemo,
    "csv": read_csv_corpus,
}


def read_corpus(kind: str, path: Path) -> Corpus:
    """Read a corpus of ``kind`` (a key of READERS) from a folder (or, for csv, the CSV file)."""
    if kind not in READERS:
        raise ValueError(f"unknown corpus kind {kind!r}; choose from {', '.join(READERS)}")
    return READERS[kind](path)


def read_corpora(kinds: list[str], path: Path | None = None) -> Corpus:
    """One or more corpora as one (see ``combine``), each from ``corpus_root()/kind``; ``path``
    names the folder (or CSV file) of a single corpus."""
    if path is not None and len(kinds) != 1:
        raise ValueError("a corpus path names one corpus; leave it out to read several from the corpus folder")
    return combine([read_corpus(kind, path or corpus_root() / kind) for kind in kinds])
