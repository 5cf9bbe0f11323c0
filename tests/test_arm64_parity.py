"""On the Raspberry Pi's architecture the device computes bit for bit what x86 computes.

firmware_scripts/arm64-parity.sh installs the package into an arm64 Debian Bookworm rootfs under
qemu with install.sh and compares resampled audio, float features, int8 model inputs and int8
model outputs on 120 real clips and 4 generated signals (and features alone on 600 clips of every
corpus and every noise recording), for the shipped bundles (both emotion
models and the speech detector) on ai-edge-litert and tflite-runtime, what the daemon's segmenter
makes of a stream of clips over household noise, and `ser info` / `ser classify` run inside. Several minutes: the rootfs is
cached outside the checkout ($SER_ARM64_ROOT) and built on the first run. Then the installed
daemon, inside, listens to this machine's virtual microphone.
"""

from __future__ import annotations

import os
import re
import subprocess

import pytest
from support.helpers import REPO, corpus_root, require_root
from support.service_process import ServiceProcess
from support.sound_server import VirtualMicrophone, require_programs

pytestmark = pytest.mark.integration

CLIPS = 120
WIDE = 600  # clips spread over every corpus whose features alone are compared
ROOTFS = os.environ.get("SER_ARM64_ROOT", "/var/cache/edge-ser/arm64-bookworm")
# The installed daemon in the rootfs, in a private mount namespace, with the host's PulseAudio
# socket at /pulse and ALSA's default device routed to PulseAudio (the example config that
# libasound2-plugins ships, switched on): the emulated Pi's microphone is this machine's.
IN_ARM64 = """
set -e
root=$1 pulse=$2
shift 2
mkdir -p "$root/pulse"
mount --bind "$pulse" "$root/pulse"
alsa=$(mktemp -d)
cp -a "$root/etc/alsa/conf.d/." "$alsa/"
cp "$alsa/99-pulseaudio-default.conf.example" "$alsa/99-pulseaudio-default.conf"
mount --bind "$alsa" "$root/etc/alsa/conf.d"
mount -t proc proc "$root/proc"
exec chroot "$root" /usr/bin/env -u PYTHONPATH -u VIRTUAL_ENV HOME=/root PULSE_SERVER=unix:/pulse/native \
    SER_MODELS_DIR=/opt/ser/models /opt/ser/venv/bin/ser daemon "$@"
"""


@pytest.fixture(scope="module")
def parity_report(ravdess_dir, noise_dir) -> str:
    require_root("the arm64 rootfs (debootstrap, chroot, mounts)")
    result = subprocess.run(
        [str(REPO / "firmware_scripts" / "arm64-parity.sh"), "--clips", str(CLIPS), "--wide", str(WIDE)],
        capture_output=True,
        text=True,
        timeout=3600,
        env={**os.environ, "SER_CORPUS_DIR": str(corpus_root()), "SER_NOISE_DIR": str(noise_dir)},
    )
    print(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    return result.stdout


def counts(report: str, what: str) -> list[tuple[int, int]]:
    """(same, total) of every report line about ``what``, one per interpreter."""
    return [(int(same), int(total)) for same, total in re.findall(rf"{what}: (\d+) / (\d+)", report)]


def test_int8_inputs_and_outputs_are_identical_on_arm64_for_both_interpreters(parity_report):
    """Bit for bit on ai-edge-litert (the device's interpreter); tflite-runtime 2.14 rounds some int8
    ADDs differently on aarch64 (firmware_scripts/parity.py), so its outputs may differ by that
    rounding, never in the emotion a window gets."""
    assert parity_report.count(f"files compared: {CLIPS} real clips + 4 generated signals") == 2
    assert "ai-edge-litert" in parity_report and "tflite-runtime" in parity_report
    signals, bundles = CLIPS + 4, 3  # the two emotion models and the speech detector
    assert counts(parity_report, "int8 input tensors identical") == [(signals * bundles, signals * bundles)] * 2
    litert_outputs, runtime_outputs = counts(parity_report, "int8 model outputs identical")
    assert litert_outputs == (signals * bundles, signals * bundles)
    rounded = re.search(r"identical: (\d+) / (\d+); (\d+) more differ by tflite-runtime 2.14's rounding", parity_report)
    assert runtime_outputs == (signals * bundles, signals * bundles) or int(rounded[1]) + int(rounded[3]) == signals * bundles
    assert "int8 tensors and outputs differing: 0" in parity_report


def test_audio_and_float_features_are_the_same_bits_on_arm64(parity_report):
    assert counts(parity_report, "resampled audio identical") == [(CLIPS + 4, CLIPS + 4)] * 2
    assert counts(parity_report, "float feature arrays identical") == [(3 * (CLIPS + 4), 3 * (CLIPS + 4))] * 2
    assert parity_report.count("(largest difference 0 ulp)") == 3  # two pairs, and the wider set once


def test_the_frontend_gives_the_same_bits_on_arm64_over_every_corpus_and_noise(parity_report, noise_dir):
    """Issue 25's proof of certified rounding: each CPU keeps numpy's rounded values for most frames
    and computes the rest the reproducible way, and the features are the same bits."""
    noises = len(list(noise_dir.glob("*.flac")))
    assert f"frontend alone: {WIDE} more real clips + {noises} noise recordings" in parity_report
    frontends = 2  # the emotion models share one; the speech detector has its own
    assert counts(parity_report, "float feature arrays of the wider set identical") == [
        (frontends * (WIDE + noises), frontends * (WIDE + noises))
    ]  # saved beside ai-edge-litert only: the frontend does not depend on the interpreter
    fallbacks = re.findall(r"(\w+): (\d+) of (\d+) frames computed the reproducible way", parity_report)
    assert {machine for machine, _, _ in fallbacks} == {"x86_64", "aarch64"}
    assert all(0 < int(frames) and int(fallback) < int(frames) / 100 for _, fallback, frames in fallbacks)


def test_the_speech_detector_decides_every_block_of_a_stream_and_cuts_it_the_same_on_arm64(parity_report):
    """Its probability for every block of a stream of clips over household noise, and the
    utterances the daemon's segmenter cuts from it, on both interpreters."""
    assert counts(parity_report, "replayed stream: speech probabilities and utterance boundaries identical") == [(2, 2)] * 2


def test_ser_info_verifies_and_ser_classify_agrees_inside_arm64(parity_report):
    for bundle in ("lstm-multilingual", "gru-multilingual", "speech-detector"):
        assert re.search(rf"ser info --model {bundle}: same manifest; fingerprint: \w+\.\.\. verified on aarch64", parity_report)
    for bundle in ("lstm-multilingual", "gru-multilingual"):
        assert f"ser classify --variant int8 --model {bundle}: {CLIPS} results, identical" in parity_report


def test_the_daemon_installed_in_arm64_hears_the_virtual_microphone(parity_report, tmp_path):
    require_programs("pulseaudio", "pacat", "paplay", "pactl")
    microphone = VirtualMicrophone(tmp_path / "pulse")
    microphone.start()
    try:
        command = [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "bash",
            "-c",
            IN_ARM64,
            "arm64",
            ROOTFS,
            str(microphone.directory),
        ]
        service = ServiceProcess(
            "--device-id", "arm64", "--rate", "16000", env={}, log_path=tmp_path / "daemon.log", command=command
        )
        service.next_event(status="microphone_open", timeout=180)  # qemu: start-up takes a while
        clip = REPO / "examples" / "03-01-05-02-01-01-18.flac"
        played_until = microphone.play(clip)
        topic, payload, _ = service.next_event(type="emotion", timeout=120)
        print(
            f"arm64 daemon: {payload['emotion']} {payload['duration']:.2f} s, event {payload['time'] - played_until:.1f} s "
            f"after the playback ended (emulated)"
        )
        assert topic == "ser/arm64/emotion" and payload["model"] == "lstm-multilingual"
        assert payload["emotion"] in payload["scores"]
        assert 1.0 < payload["duration"] < 6.0
        assert service.stop(timeout=60) < 60 and service.process.returncode == 0
    finally:
        microphone.kill()
