"""Shared fixtures: the corpora (from SER_CORPUS_DIR), the shipped bundle, a smoke-trained bundle.
Helpers that are not fixtures live in tests/support."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from support.broker import Broker
from support.helpers import FIXTURES, SMOKE_SPLIT, corpus_root, run_train, unavailable
from support.sound_server import VirtualMicrophone, require_programs


@pytest.fixture(scope="session")
def ravdess_dir() -> Path:
    """The RAVDESS folder; skipped with a reason where it is absent, an error under CI."""
    path = corpus_root() / "ravdess"
    if not (path / "Actor_01").is_dir():
        unavailable(f"RAVDESS corpus not found at {path} (set SER_CORPUS_DIR to the folder holding ravdess/)")
    return path


@pytest.fixture(scope="session")
def corpus_dir():
    """A function giving the folder of a corpus by name; skips (fails under CI) where it is absent."""

    def folder(kind: str) -> Path:
        path = corpus_root() / kind
        if not path.is_dir() or not any(path.iterdir()):
            unavailable(f"corpus {kind} not found at {path} (set SER_CORPUS_DIR to the folder holding {kind}/)")
        return path

    return folder


@pytest.fixture(scope="session")
def noise_dir() -> Path:
    """The shared noise recordings (SER_NOISE_DIR); skipped with a reason where absent, an error under CI."""
    from trainer.rooms import noise_root

    if not (noise_root() / "running_tap.flac").is_file():
        unavailable(f"the shared noise recordings are not at {noise_root()} (set SER_NOISE_DIR)")
    return noise_root()


@pytest.fixture(scope="session", autouse=True)
def noise_recordings_or_their_excerpts():
    """Where the shared noise recordings are absent (and not under CI, which must have them), the
    tests read the excerpts in tests/fixtures/noise instead: the same files, a few seconds each."""
    import os

    from trainer.rooms import noise_root

    if not (noise_root() / "running_tap.flac").is_file() and not os.environ.get("CI"):
        os.environ["SER_NOISE_DIR"] = str(FIXTURES / "noise")  # subprocesses (`ser`, `ser-train`) inherit it
    yield


@pytest.fixture(scope="session")
def speech_files() -> list[Path]:
    """A dozen real clips: several actors, both genders, every emotion code. From the RAVDESS
    corpus, or (where it is absent, not under CI) the same clips in tests/fixtures/ravdess."""
    import os

    root = corpus_root() / "ravdess"
    if not (root / "Actor_01").is_dir():
        if os.environ.get("CI"):
            unavailable(f"RAVDESS corpus not found at {root}")
        root = FIXTURES / "ravdess"
    return [
        root / f"Actor_{a:02d}" / f"03-01-{e:02d}-01-01-01-{a:02d}.flac"
        for a, e in [(1, 1), (2, 2), (3, 3), (4, 4), (5, 5), (6, 6), (7, 7), (8, 8), (11, 3), (14, 5), (19, 4), (20, 8)]
    ]


@pytest.fixture(scope="session")
def shipped_bundle():
    from edge.bundle import load_bundle

    return load_bundle()


@pytest.fixture
def bundle_copy(tmp_path) -> Path:
    """A writable copy of the shipped default bundle, for tampering with."""
    from edge.bundle import MODELS_DIR
    from edge.config import DEFAULT_MODEL

    target = tmp_path / "bundle"
    shutil.copytree(MODELS_DIR / DEFAULT_MODEL, target)
    return target


@pytest.fixture(scope="session")
def smoke_run(ravdess_dir, tmp_path_factory):
    """A bundle from a smoke training run (3 actors, 2 epochs, one augmented copy): (folder, process)."""
    out = tmp_path_factory.mktemp("smoke") / "lstm-smoke"
    # The gate is tested on its own: two epochs on three actors give a near-random model whose
    # int8/float difference on 120 clips says nothing.
    result = run_train(
        "train",
        str(out),
        *SMOKE_SPLIT,
        "--epochs",
        "2",
        "--augment-copies",
        "1",
        "--max-uar-drop",
        "100",
        "--max-accuracy-drop",
        "100",
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out, result


@pytest.fixture(autouse=True)
def no_daemon_outlives_its_test():
    """A failed daemon test must not leave `ser daemon` processes listening behind it."""
    yield
    from support.service_process import ServiceProcess

    ServiceProcess.kill_leftovers()


# The MQTT tests' virtual microphone and broker (tests/test_mqtt.py, tests/test_home_assistant_live.py).


@pytest.fixture
def microphone(tmp_path_factory):
    require_programs("pulseaudio", "pacat", "paplay", "pactl")
    mic = VirtualMicrophone(tmp_path_factory.mktemp("pulse"))
    mic.start()
    yield mic
    mic.kill()


@pytest.fixture
def broker(tmp_path_factory):
    require_programs("mosquitto", "mosquitto_passwd")
    pytest.importorskip("paho.mqtt.client", reason="needs the mqtt extra (script/test installs it)")
    server = Broker(tmp_path_factory.mktemp("mosquitto"))
    server.start()
    yield server
    server.stop()
