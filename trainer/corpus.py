"""Corpora as lists of labelled utterances, each with its speaker and gender.

Every reader maps its corpus's own labels onto the canonical set with a declared map, and keeps
speaker and gender with each utterance so that splits and analyses can use them.
"""

from __future__ import annotations

import csv
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

CANONICAL_LABELS = ("neutral", "happy", "sad", "angry", "fearful", "disgust", "surprised")
GENDERS = ("female", "male")

# RAVDESS emotion codes (third field of the file name) and how they map onto the canonical set:
# "calm" is too close to "neutral" to be told apart reliably and most corpora lack it.
RAVDESS_EMOTIONS = {
    "01": "neutral", "02": "calm", "03": "happy", "04": "sad",
    "05": "angry", "06": "fearful", "07": "disgust", "08": "surprised",
}  # fmt: skip
RAVDESS_LABEL_MAP = {"calm": "neutral", **{label: label for label in CANONICAL_LABELS}}

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


@dataclass(frozen=True)
class Corpus:
    """A corpus read from disk."""

    name: str
    """ravdess, shemo, or the CSV file's name."""
    utterances: tuple[Utterance, ...]
    """Every usable utterance, sorted by path."""
    label_map: dict
    """The corpus's own labels → canonical labels."""

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
    return Utterance(path, RAVDESS_LABEL_MAP[RAVDESS_EMOTIONS[fields[2]]], actor, "male" if int(actor) % 2 else "female")


def parse_shemo_name(path: Path) -> Utterance:
    """Gender, speaker, label from a ShEMO name like F03S02 (female speaker 03, sadness, utterance 02)."""
    match = _SHEMO_NAME.match(path.stem)
    if not match:
        raise ValueError(f"{path}: not a ShEMO file name (like F03S02.wav)")
    gender, number, emotion, _ = match.groups()
    return Utterance(path, SHEMO_LABEL_MAP[emotion], gender + number, "female" if gender == "F" else "male")


def _audio_files(root: Path, pattern: str) -> list[Path]:
    files = sorted(p for p in root.glob(pattern) if p.suffix.lower() in (".flac", ".wav"))
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
            utterances.append(Utterance(csv_path.parent / row["path"], mapping[row["label"]], row["speaker"], gender))
    if not utterances:
        raise ValueError(f"{csv_path}: no rows")
    return Corpus(csv_path.name, tuple(sorted(utterances, key=lambda u: str(u.path))), label_map)


def read_corpus(kind: str, path: Path) -> Corpus:
    """Read a corpus of ``kind`` ravdess, shemo or csv from a folder (or, for csv, the CSV file)."""
    readers = {"ravdess": read_ravdess, "shemo": read_shemo, "csv": read_csv_corpus}
    if kind not in readers:
        raise ValueError(f"unknown corpus kind {kind!r}; choose from {', '.join(readers)}")
    return readers[kind](path)
