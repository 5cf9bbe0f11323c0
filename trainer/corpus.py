"""Corpora as lists of labelled utterances, each with its speaker and gender."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

CANONICAL_LABELS = ("neutral", "happy", "sad", "angry", "fearful", "disgust", "surprised")

# RAVDESS emotion codes (third field of the file name) and how they map onto the canonical set:
# "calm" is too close to "neutral" to be told apart reliably and most corpora lack it.
RAVDESS_EMOTIONS = {
    "01": "neutral", "02": "calm", "03": "happy", "04": "sad",
    "05": "angry", "06": "fearful", "07": "disgust", "08": "surprised",
}  # fmt: skip
RAVDESS_LABEL_MAP = {"calm": "neutral", **{label: label for label in CANONICAL_LABELS}}


@dataclass(frozen=True)
class Utterance:
    """One labelled recording."""

    path: Path
    """The audio file."""
    label: str
    """Canonical emotion label."""
    speaker: str
    """Speaker id, unique within the corpus (e.g. '07')."""
    gender: str
    """'male' or 'female'."""


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
    return Utterance(
        path=path,
        label=RAVDESS_LABEL_MAP[RAVDESS_EMOTIONS[fields[2]]],
        speaker=actor,
        gender="male" if int(actor) % 2 else "female",
    )


def read_ravdess(root: Path) -> list[Utterance]:
    """Every speech utterance under ``root`` (Actor_NN/*.flac or *.wav), sorted by path."""
    files = sorted(p for p in root.glob("Actor_*/*") if p.suffix.lower() in (".flac", ".wav"))
    if not files:
        raise FileNotFoundError(f"{root}: no RAVDESS files (Actor_NN/MM-VC-EE-II-SS-RR-AA.flac)")
    return [parse_ravdess_name(p) for p in files]
