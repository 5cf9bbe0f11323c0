"""Every shipped bundle runs on both device runtimes with the same results: ai-edge-litert (this
environment) and tflite-runtime 2.14, the last release, which needs numpy<2 and so its own venv."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from support.helpers import REPO, run_ser

from edge.bundle import shipped_emotion_models

pytestmark = pytest.mark.integration

TFLITE_RUNTIME_VENV = REPO / ".cache" / "venv-tflite-runtime"
SHIPPED = shipped_emotion_models()


@pytest.fixture(scope="module")
def tflite_runtime_python() -> str:
    """A venv with tflite-runtime 2.14, numpy<2 and this package's device dependencies (cached)."""
    subprocess.run([str(REPO / "script" / "tflite-runtime-venv"), str(TFLITE_RUNTIME_VENV)], check=True, timeout=600)
    return str(TFLITE_RUNTIME_VENV / "bin" / "python")


@pytest.mark.parametrize("bundle", SHIPPED)
def test_shipped_bundle_gives_the_same_results_on_tflite_runtime(bundle, tflite_runtime_python, speech_files):
    files = [str(REPO / "examples"), *map(str, speech_files[:4])]
    reference = run_ser("classify", "--json", "--model", bundle, *files)
    assert reference.returncode == 0, reference.stderr
    # The package itself comes from this checkout (PYTHONPATH), its dependencies from the venv.
    other = subprocess.run(
        [tflite_runtime_python, "-m", "edge.cli", "classify", "--json", "--runtime", "tflite-runtime", "--model", bundle, *files],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert other.returncode == 0, other.stderr
    assert "on tflite-runtime 2.14.0" in other.stderr
    expected = [json.loads(line) for line in reference.stdout.splitlines()]
    actual = [json.loads(line) for line in other.stdout.splitlines()]
    assert len(actual) == len(expected) == 9
    # Builtin int8 kernels on both sides: the very same outputs, not merely close ones.
    assert actual == expected


def test_the_test_venv_really_lacks_numpy_2_and_ai_edge_litert(tflite_runtime_python):
    probe = "import numpy, importlib.util; print(numpy.__version__, importlib.util.find_spec('ai_edge_litert') is None)"
    version, no_litert = subprocess.run([tflite_runtime_python, "-c", probe], capture_output=True, text=True).stdout.split()
    assert version.startswith("1.") and no_litert == "True"


@pytest.mark.parametrize("bundle", SHIPPED)
def test_tensorflow_fallback_gives_the_same_results(bundle, speech_files):
    """Where neither light runtime is installed, tf.lite runs the bundle, with the same emotions.

    TensorFlow 2.21's kernels round an int8 ADD inside a GRU step one step differently from
    ai-edge-litert (as tflite-runtime 2.14 does on aarch64), which moved a score of
    gru-multilingual by 0.0001; so scores may differ by such rounding, emotions may not.
    """
    files = [str(REPO / "examples"), *map(str, speech_files[:2])]
    reference = run_ser("classify", "--json", "--model", bundle, *files)
    fallback = run_ser("classify", "--json", "--runtime", "tensorflow", "--model", bundle, *files)
    assert fallback.returncode == 0 and "on tensorflow 2.21" in fallback.stderr
    expected = [json.loads(line) for line in reference.stdout.splitlines()]
    actual = [json.loads(line) for line in fallback.stdout.splitlines()]
    assert len(actual) == len(expected) == 7
    for mine, theirs in zip(actual, expected):
        assert (mine["file"], mine["emotion"], mine["windows"]) == (theirs["file"], theirs["emotion"], theirs["windows"])
        assert all(abs(mine["scores"][label] - score) <= 0.002 for label, score in theirs["scores"].items())
