"""The package as a user installs it: a wheel built from the checkout, installed into a fresh
virtualenv outside it, runs the shipped default model with no environment variable set."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.helpers import REPO

pytestmark = pytest.mark.integration

EXAMPLE = REPO / "examples" / "03-01-05-02-01-01-18.flac"  # RAVDESS actor 18, angry


def run(*command, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in command], capture_output=True, text=True, cwd=cwd, env=env, timeout=900)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The bin/ folder of a new virtualenv holding the wheel built from this checkout, with the
    `edge` extra (the interpreter) and nothing else; the build and install logs beside it."""
    where = tmp_path_factory.mktemp("wheel")
    build = run(sys.executable, "-m", "pip", "wheel", "--verbose", "--no-deps", "--wheel-dir", where, REPO, cwd=where)
    (where / "build.log").write_text(build.stdout + build.stderr)
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = where.glob("edge_ser-*.whl")
    assert run(sys.executable, "-m", "venv", where / "venv", cwd=where).returncode == 0
    install = run(where / "venv/bin/python", "-m", "pip", "install", f"{wheel}[edge]", cwd=where)
    (where / "install.log").write_text(install.stdout + install.stderr)
    assert install.returncode == 0, install.stderr[-2000:]
    return where / "venv/bin"


def clean_env() -> dict:
    """The environment without anything that points at the checkout or at other bundles."""
    return {k: v for k, v in os.environ.items() if k not in ("SER_MODELS_DIR", "PYTHONPATH", "VIRTUAL_ENV")}


def test_the_wheel_builds_and_installs_without_deprecation_warnings(installed):
    logs = (installed.parent.parent / "build.log").read_text() + (installed.parent.parent / "install.log").read_text()
    assert "Deprecat" not in logs and "deprecat" not in logs


def test_the_installed_ser_finds_and_verifies_the_shipped_default_model(installed, tmp_path):
    result = run(installed / "ser", "info", cwd=tmp_path, env=clean_env())
    assert result.returncode == 0, result.stderr
    assert '"name": "lstm-multilingual"' in result.stdout
    assert "site-packages/edge/models/lstm-multilingual" in result.stderr
    assert "verified" in result.stderr


def test_the_installed_ser_classifies_an_example_clip(installed, tmp_path):
    result = run(installed / "ser", "classify", EXAMPLE, cwd=tmp_path, env=clean_env())
    assert result.returncode == 0, result.stderr
    (line,) = [x for x in result.stdout.splitlines() if EXAMPLE.name in x]
    assert line.split()[1] == "angry"


def test_the_installed_ser_still_takes_a_bundle_folder_and_the_models_variable(installed, tmp_path):
    shipped = REPO / "models"
    by_folder = run(installed / "ser", "info", "--model", shipped / "gru-multilingual", cwd=tmp_path, env=clean_env())
    by_variable = run(
        installed / "ser",
        "info",
        "--model",
        "gru-multilingual",
        cwd=tmp_path,
        env={**clean_env(), "SER_MODELS_DIR": str(shipped)},
    )
    assert by_folder.returncode == 0 and f"bundle: {shipped / 'gru-multilingual'}" in by_folder.stderr
    assert by_variable.returncode == 0 and f"bundle: {shipped / 'gru-multilingual'}" in by_variable.stderr


def test_ser_train_without_the_train_extra_says_which_extra_to_install(installed, tmp_path):
    result = run(installed / "ser-train", "--help", cwd=tmp_path, env=clean_env())
    assert result.returncode != 0
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and "pip install 'edge-ser[train]'" in result.stderr
    assert "Traceback" not in result.stderr


def test_ser_daemon_without_the_mic_extra_stops_at_once_with_one_line(installed, tmp_path):
    result = run(installed / "ser", "daemon", "--device-id", "test", cwd=tmp_path, env=clean_env())
    assert result.returncode == 78  # EX_CONFIG: the unit does not restart it (RestartPreventExitStatus=78)
    assert (
        result.stderr.strip().splitlines()[-1]
        == "Error: microphone input needs PyAudio, which is not installed: pip install 'edge-ser[mic]'"
    )
    assert "Traceback" not in result.stderr and "retrying" not in result.stderr
