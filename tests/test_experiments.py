"""Tuning, the gender analysis and the gender-dependent experiment, on a small subset."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import SMOKE_SPLIT, run_train

from trainer.gender import bootstrap_interval, gender_analysis, permutation_p_value

QUICK = [*SMOKE_SPLIT, "--epochs", "2", "--augment-copies", "0"]


@pytest.fixture(scope="module")
def experiments(smoke_run):
    """Tuning and the gender experiment written beside the smoke bundle, then its report."""
    bundle, _ = smoke_run
    runs = {
        "tune": run_train("tune", str(bundle / "tuning.json"), *QUICK, "--folds", "2", "--max-configs", "2"),
        "gender": run_train("gender", str(bundle / "gender_experiment.json"), *QUICK),
    }
    runs["report"] = run_train("report", str(bundle))
    for name, result in runs.items():
        assert result.returncode == 0, (name, result.stderr[-2000:])
    return bundle, runs


def test_tuning_reports_every_configuration_tried_by_speaker_folds(experiments):
    bundle, runs = experiments
    report = json.loads((bundle / "tuning.json").read_text())
    assert len(report["tried"]) == 2 and report["untried"] == 0 and report["seconds"] > 0
    assert [row["uar"] for row in report["tried"]] == sorted((row["uar"] for row in report["tried"]), reverse=True)
    for row in report["tried"]:
        assert {"layers", "units", "learning_rate", "batch_size"} <= set(row["config"]) and len(row["fold_uar"]) == 2
    held_out = [s for fold in report["folds"] for s in fold["held_out"]]
    assert sorted(held_out) == ["01", "02", "03", "04"]  # the test speakers 05, 06 are never seen
    assert all(not set(f["train"]) & set(f["held_out"]) for f in report["folds"])
    assert "2 configurations in" in runs["tune"].stdout


def test_gender_experiment_trains_on_each_gender_and_tests_on_each(experiments):
    bundle, _ = experiments
    rows = json.loads((bundle / "gender_experiment.json").read_text())["rows"]
    assert [(r["trained_on"], r["tested_on"]) for r in rows] == [
        (t, e) for t in ("female", "male", "both") for e in ("female", "male", "all")]
    assert [r["train_speakers"] for r in rows[::3]] == [1, 2, 3]  # actor 02 is female, 01 and 03 male
    assert [r["clips"] for r in rows[:3]] == [60, 60, 120]


def test_report_is_one_self_contained_html_file_with_every_section(experiments):
    bundle, _ = experiments
    page = (bundle / "report.html").read_text()
    for heading in ("Corpus and splits", "One training clip per emotion", "Training", "Test speakers",
                    "Female and male speakers", "Gender-dependent experiment", "Tuning"):  # fmt: skip
        assert f">{heading}<" in page
    assert page.count("data:image/png;base64,") >= 12 and "src=\"http" not in page and "src='http" not in page
    card = (bundle / "MODEL_CARD.md").read_text()
    assert "## Tuning" in card and "## Gender-dependent experiment" in card and "permutation-test" in card


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
    gap = np.where((genders == "female") & (rng.random(400) < 0.8) | (genders == "male") & (rng.random(400) < 0.3),
                   truth, (truth + 1) % 7)  # fmt: skip
    assert permutation_p_value(truth, same, genders, "uar", 7, rng) > 0.05
    assert permutation_p_value(truth, gap, genders, "uar", 7, rng) < 0.01
    analysis = gender_analysis(truth, gap, genders, tuple("abcdefg"))
    assert analysis["difference"]["accuracy"]["female_minus_male"] > 0.3
    assert set(analysis["by_gender"]["female"]) >= {"accuracy_ci95", "uar_ci95", "confusion_matrix"}
