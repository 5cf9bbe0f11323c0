"""Tuning, the gender analysis and the gender-dependent experiment, on a small subset."""

from __future__ import annotations

import json

import numpy as np
import pytest
from support.helpers import SMOKE_SPLIT, run_train

from trainer.corpus import SHIPPED_CORPORA
from trainer.gender import bootstrap_interval, gender_analysis, permutation_p_value
from trainer.room_evaluation import cross_validation_conditions

QUICK = [*SMOKE_SPLIT, "--epochs", "2", "--augment-copies", "0"]
# A few speakers of every corpus reader: two RAVDESS actors, a woman and a man of EmoDB, one SAVEE
# speaker, one CASIA speaker, a woman and a man of emotiontts and of ASED; RAVDESS actor 05 as the
# test speaker.
EVERY_READER = [
    "--corpus",
    "ravdess,emodb,savee,casia,emotiontts,ased",
    "--train-speakers",
    "ravdess/1-2,emodb/03,emodb/08,savee/DC,casia/wangzhe,emotiontts/ema,emotiontts/emf,ased/02,ased/09",
    "--test-speakers",
    "ravdess/5",
    "--epochs",
    "1",
    "--augment-copies",
    "0",
]


@pytest.fixture(scope="module")
def experiments(smoke_run, corpus_dir):
    """Tuning and the gender experiment on RAVDESS, cross-validation and leave-one-corpus-out on a
    few speakers of every corpus, all written beside the smoke bundle; then its report."""
    for kind in SHIPPED_CORPORA:
        corpus_dir(kind)
    bundle, _ = smoke_run
    runs = {
        "tune": run_train("tune", str(bundle / "tuning.json"), *QUICK, "--folds", "2", "--max-configs", "2"),
        "gender": run_train("gender", str(bundle / "gender_experiment.json"), *QUICK),
        "cv": run_train("cv", str(bundle / "cv.json"), *EVERY_READER, "--folds", "2"),
        "loco": run_train("loco", str(bundle / "loco.json"), *EVERY_READER),
    }
    runs["rooms"] = run_train("rooms", "--model", str(bundle), "--jobs", "2")  # its test speakers, 05 and 06
    runs["report"] = run_train("report", str(bundle), "--corpus", "ravdess")
    for name, result in runs.items():
        assert result.returncode == 0, (name, result.stderr[-2000:])
    return bundle, runs


@pytest.mark.integration  # trains or evaluates models in subprocesses
def test_tuning_reports_every_configuration_tried_by_speaker_folds(experiments):
    bundle, runs = experiments
    report = json.loads((bundle / "tuning.json").read_text())
    assert len(report["tried"]) == 2 and report["untried"] == 0 and report["seconds"] > 0
    assert [row["uar"] for row in report["tried"]] == sorted((row["uar"] for row in report["tried"]), reverse=True)
    for row in report["tried"]:
        assert {"design", "units", "learning_rate", "dropout"} <= set(row["config"]) and len(row["fold_uar"]) == 2
    held_out = [s for fold in report["held_out"] for s in fold]
    assert sorted(held_out) == ["01", "02", "03", "04"]  # the test speakers 05, 06 are never seen
    assert "2 configurations in" in runs["tune"].stdout


@pytest.mark.integration  # trains or evaluates models in subprocesses
def test_cross_validation_scores_every_corpus_by_speaker_folds(experiments):
    bundle, runs = experiments
    cv = json.loads((bundle / "cv.json").read_text())
    held_out = sorted(s for fold in cv["results"] for s in fold["speakers"])
    assert held_out == sorted(
        [
            *("ravdess/01", "ravdess/02", "emodb/03", "emodb/08", "savee/DC", "casia/wangzhe"),
            *("emotiontts/ema", "emotiontts/emf", "ased/02", "ased/09"),
        ]
    )  # every development speaker once; never ravdess/05
    assert set(cv["per_corpus"]) == {"ravdess", "emodb", "savee", "casia", "emotiontts", "ased"}
    assert set(cv["per_gender"]) == {"female", "male"} and len(cv["epoch_uar"]) == 1 and cv["best_epochs"] == 1
    # within a corpus too: a gap pooled over corpora also counts which corpora have men (SAVEE: only men)
    assert {"ravdess/female", "ravdess/male", "emodb/female", "emodb/male", "savee/male"} <= set(cv["per_corpus_gender"])
    assert "savee/female" not in cv["per_corpus_gender"]
    for row in (cv, *cv["per_corpus"].values()):
        assert 0 <= row["uar"]["mean"] <= 1 and row["uar"]["std"] >= 0
    assert "2-fold CV UAR" in runs["cv"].stdout
    # each fold's held-out speakers are also scored in rooms, clip by clip
    assert list(cv["rooms"]) == [c.name for c in cross_validation_conditions()]
    for fold in cv["results"]:
        assert all(len(predicted) == len(fold["true"]) for predicted in fold["rooms"].values())
    assert all(0 <= row["uar"]["mean"] <= 1 for row in cv["rooms"].values())


@pytest.mark.integration  # trains or evaluates models in subprocesses
def test_leave_one_corpus_out_tests_each_corpus_on_a_model_that_never_heard_it(experiments):
    bundle, runs = experiments
    table = json.loads((bundle / "loco.json").read_text())["corpora"]
    assert {name: (row["clips"], row["classes"]) for name, row in table.items()} == {
        "ravdess": (120, 7),
        "emodb": (92, 6),
        "savee": (120, 7),
        "casia": (300, 6),
        "emotiontts": (40, 4),
        "ased": (36, 5),
    }
    assert table["emotiontts"]["chance_uar"] == 0.25 and set(table["emodb"]["per_gender"]) == {"female", "male"}
    assert runs["loco"].stdout.count("tested on it: UAR") == 6


@pytest.mark.integration  # trains or evaluates models in subprocesses
def test_gender_experiment_trains_on_each_gender_and_tests_on_each(experiments):
    bundle, _ = experiments
    rows = json.loads((bundle / "gender_experiment.json").read_text())["rows"]
    assert [(r["trained_on"], r["tested_on"]) for r in rows] == [
        (t, e) for t in ("female", "male", "both") for e in ("female", "male", "all")
    ]
    assert [r["train_speakers"] for r in rows[::3]] == [2, 2, 4]  # actors 02 and 04 are female, 01 and 03 male
    assert [r["clips"] for r in rows[:3]] == [60, 60, 120]


@pytest.mark.integration  # trains or evaluates models in subprocesses
def test_report_is_one_self_contained_html_file_with_every_section(experiments):
    bundle, _ = experiments
    page = (bundle / "report.html").read_text()
    for heading in (
        "Corpus and splits",
        "One training clip per emotion",
        "Training",
        "Test speakers",
        "Female and male speakers",
        "Gender-dependent experiment",
        "Cross-validation",
        "Leave one corpus out",
        "Tuning",
        "In a room",
    ):
        assert f">{heading}<" in page
    assert page.count("data:image/png;base64,") >= 13 and 'src="http' not in page and "src='http" not in page
    card = (bundle / "MODEL_CARD.md").read_text()
    for section in (
        "## Tuning",
        "## Gender-dependent experiment",
        "## Cross-validated figures",
        "## Leave one corpus out",
        "## In a room",
    ):
        assert section in card
    assert "permutation-test" in card
    # the room table has a row per condition, float32 and int8, and the plot it links is beside it
    rooms = json.loads((bundle / "rooms.json").read_text())
    for name, row in rooms["conditions"].items():
        assert f"| {name} | {100 * row['float32']['uar']:.1f}% | {100 * row['int8']['uar']:.1f}% |" in card
    assert "](rooms.png)" in card and (bundle / "rooms.png").stat().st_size > 10_000
    assert "| ravdess | 120 |" in card  # the test figures per corpus


def test_bootstrap_interval_brackets_the_estimate_and_narrows_with_more_clips():
    rng = np.random.default_rng(0)
    widths = []
    for n in (60, 600):
        truth = rng.integers(0, 7, n)
        predicted = np.where(rng.random(n) < 0.5, truth, (truth + 1) % 7)
        low, high = bootstrap_interval(truth, predicted, "accuracy", 7, rng)
        assert low <= np.mean(truth == predicted) <= high
        widths.append(high - low)
    assert widths[1] < widths[0] / 2


def test_permutation_test_tells_a_real_gender_gap_from_none():
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 7, 400)
    genders = np.array(["female", "male"] * 200)
    same = np.where(rng.random(400) < 0.5, truth, (truth + 1) % 7)
    gap = np.where(
        (genders == "female") & (rng.random(400) < 0.8) | (genders == "male") & (rng.random(400) < 0.3), truth, (truth + 1) % 7
    )
    assert permutation_p_value(truth, same, genders, "uar", 7, rng) > 0.05
    assert permutation_p_value(truth, gap, genders, "uar", 7, rng) < 0.01
    analysis = gender_analysis(truth, gap, genders, tuple("abcdefg"))
    assert analysis["difference"]["accuracy"]["female_minus_male"] > 0.3
    low, high = analysis["difference"]["accuracy"]["ci95"]  # 80 % against 30 % correct: a gap of about 50 points
    assert 0.3 < low < 0.5 < high < 0.7
    low, high = gender_analysis(truth, same, genders, tuple("abcdefg"))["difference"]["accuracy"]["ci95"]
    assert low < 0 < high  # no gap: the interval spans zero
    assert set(analysis["by_gender"]["female"]) >= {"accuracy_ci95", "uar_ci95", "confusion_matrix"}
