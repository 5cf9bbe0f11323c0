"""Helpers the tests share: where things are, how to run the CLIs as a user would, and how a test
says that something it needs is missing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from trainer.corpus import corpus_root

REPO = Path(__file__).resolve().parents[2]


FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
"""Tiny real fixtures (tests/fixtures/README.md): clips and noise excerpts for the fast tier on a
clone without ../shared."""


def unavailable(reason: str) -> None:
    """Skip the test with ``reason`` on a developer's machine; under CI, where everything a test
    needs is installed, fail with it instead: nothing may be skipped there."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must provide it)")
    pytest.skip(reason=reason)


def require_root(why: str) -> None:
    if os.geteuid() != 0:
        unavailable(f"{why} needs root (CI runs as root)")


def read_speech(path: Path) -> np.ndarray:
    import soundfile

    samples, rate = soundfile.read(path, dtype="float64")
    assert rate == 16000
    return samples


def run_ser(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the `ser` CLI in a fresh process, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "edge.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=REPO,
        timeout=300,
    )


def run_train(*args: str) -> subprocess.CompletedProcess:
    """Run the `ser-train` CLI in a fresh process, on the corpus the tests use."""
    env = {**os.environ, "SER_CORPUS_DIR": str(corpus_root())}
    return subprocess.run(
        [sys.executable, "-m", "trainer.cli", *args], capture_output=True, text=True, env=env, cwd=REPO, timeout=900
    )


SMOKE_SPLIT = ["--corpus", "ravdess", "--train-speakers", "1-3", "--validation-speakers", "4", "--test-speakers", "5,6"]
