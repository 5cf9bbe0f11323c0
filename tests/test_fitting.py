"""Training weights and batches: no corpus or class dominates, a corpus lacking a class is handled,
and the on-the-fly masking and mixup do what they say."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from trainer.corpus import Utterance
from trainer.dataset import ClipSet
from trainer.fitting import WindowBatches, balanced_clip_weights
from trainer.recipe import Regularisation

LABELS = ("neutral", "happy", "sad", "angry", "fearful", "disgust", "surprised")


def clip_set(cells: dict[tuple[str, str, str], int], gender_of=lambda speaker: "female") -> ClipSet:
    """Clips of (corpus, speaker, label) cells, as many as each cell says; features are not needed."""
    utterances = [
        Utterance(Path(f"{corpus}/{speaker}/{label}{i}.flac"), label, f"{corpus}/{speaker}", gender_of(speaker), corpus)
        for (corpus, speaker, label), n in cells.items()
        for i in range(n)
    ]
    return ClipSet(utterances, [np.zeros((1, 1))] * len(utterances), [[] for _ in utterances])


def totals(clips: ClipSet, weights: np.ndarray, key) -> dict:
    summed = defaultdict(float)
    for utterance, weight in zip(clips.utterances, weights):
        summed[key(utterance)] += weight
    return dict(summed)


def test_corpus_class_weights_give_every_class_the_same_total_and_speakers_their_share():
    # A big corpus of 2 speakers with every class, and a small one of 2 speakers without disgust
    # and with 10 times fewer clips.
    cells = {("big", s, label): 50 for s in ("a", "b") for label in LABELS}
    cells |= {("small", s, label): 5 for s in ("c", "d") for label in LABELS if label != "disgust"}
    clips = clip_set(cells)
    weights = balanced_clip_weights(clips, LABELS, "corpus-class")
    assert weights.mean() == pytest.approx(1.0)
    by_class = totals(clips, weights, lambda u: u.label)
    assert max(by_class.values()) == pytest.approx(min(by_class.values()))  # disgust is not under-weighted
    by_corpus = totals(clips, weights, lambda u: u.corpus)
    assert by_corpus["small"] / by_corpus["big"] == pytest.approx(1.0, rel=0.2)  # as many speakers, not 10x fewer clips
    by_cell = totals(clips, weights, lambda u: (u.corpus, u.label))
    assert by_cell["small", "sad"] == pytest.approx(by_cell["small", "angry"])  # within a corpus, classes alike


def test_corpus_gender_class_weights_give_a_corpus_women_and_men_alike_however_many_of_each():
    # ASED-like: three men and one woman, every class; the corpus's share stays what its four
    # speakers earn, but the woman's clips weigh as much as the three men's together.
    cells = {("ased", s, label): 10 for s in ("m1", "m2", "m3", "f1") for label in LABELS}
    clips = clip_set(cells, gender_of=lambda speaker: "female" if speaker.startswith("f") else "male")
    weights = balanced_clip_weights(clips, LABELS, "corpus-gender-class")
    by_gender = totals(clips, weights, lambda u: u.gender)
    assert by_gender["female"] == pytest.approx(by_gender["male"])
    by_class = totals(clips, weights, lambda u: u.label)
    assert max(by_class.values()) == pytest.approx(min(by_class.values()))
    unbalanced = totals(clips, balanced_clip_weights(clips, LABELS, "corpus-class"), lambda u: u.gender)
    assert unbalanced["male"] == pytest.approx(3 * unbalanced["female"])


def test_class_and_no_balance():
    clips = clip_set({("one", "a", "sad"): 30, ("one", "a", "happy"): 10})
    by_class = totals(clips, balanced_clip_weights(clips, LABELS, "class"), lambda u: u.label)
    assert by_class["sad"] == pytest.approx(by_class["happy"])
    assert (balanced_clip_weights(clips, LABELS, "none") == 1).all()
    with pytest.raises(ValueError, match="unknown balance"):
        balanced_clip_weights(clips, LABELS, "speakers")


def test_batches_mask_spans_and_bands_and_mix_labels():
    x = np.ones((64, 100, 20), dtype=np.float32)
    targets = np.arange(64) % 7
    masked_only = WindowBatches(x, targets, np.ones(64), 7, 16, Regularisation(2, 10, 2, 4, mixup=0.0), seed=1)
    xb, yb, wb = masked_only[0]
    assert xb.shape == (16, 100, 20) and (x == 1).all()  # the stored windows are never altered
    zero_frames = (xb == 0).all(axis=2).sum(axis=1)
    zero_features = (xb == 0).all(axis=1).sum(axis=1)
    assert zero_frames.max() <= 20 and zero_features.max() <= 8 and zero_frames.sum() > 0 and zero_features.sum() > 0
    assert set(yb.sum(axis=1)) == {1.0} and set(yb.max(axis=1)) == {1.0}
    mixed = WindowBatches(x, targets, np.ones(64), 7, 16, Regularisation(0, 0, 0, 0, mixup=0.4), seed=1)
    _, yb, wb = mixed[0]
    assert np.allclose(yb.sum(axis=1), 1) and (yb.max(axis=1) >= 0.5).all() and (yb.max(axis=1) < 1).any()
    assert len(mixed) == 4
