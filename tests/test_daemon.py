"""`ser daemon` end to end: real speech played into a virtual microphone (PulseAudio null sink),
captured by a real PyAudio stream, segmented, classified by the real TFLite interpreter, and
emitted as event lines on stdout."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import soundfile
from support.helpers import REPO, corpus_root, run_ser
from support.service_process import ServiceProcess
from support.sound_server import VirtualMicrophone, require_programs

from edge.audio import load_audio
from edge.classifier import Classifier
from edge.segmenter import Segmenter
from edge.settings import SegmenterSettings

# Real speech: the five example clips (actors 17-20) and three of validation actors 13-16.
EXAMPLES = sorted((REPO / "examples").glob("*.flac"))
VALIDATION_CLIPS = [
    "Actor_13/03-01-03-01-02-02-13.flac",
    "Actor_14/03-01-05-02-01-02-14.flac",
    "Actor_16/03-01-02-01-02-01-16.flac",
]
pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("ravdess_dir")]


@pytest.fixture(scope="module")
def microphone(tmp_path_factory):
    require_programs("pulseaudio", "pacat", "paplay", "pactl")
    pytest.importorskip("pyaudio", reason="needs the mic extra (script/test installs it)")
    mic = VirtualMicrophone(tmp_path_factory.mktemp("pulse"))
    mic.start()
    yield mic
    mic.kill()


@pytest.fixture(scope="module")
def clips(ravdess_dir) -> list:
    return EXAMPLES + [ravdess_dir / name for name in VALIDATION_CLIPS]


@pytest.fixture(scope="module")
def file_emotions(clips) -> dict:
    """`ser classify --json` on the clips: file name → emotion."""
    result = run_ser("classify", "--json", *map(str, clips))
    assert result.returncode == 0, result.stderr
    return {record["file"]: record["emotion"] for record in map(json.loads, result.stdout.splitlines())}


def offline_utterance_emotions(samples: np.ndarray, bundle):
    """What the daemon's own segmenter and classifier give offline on ``samples`` (at the
    frontend's rate) played into silence, for every alignment to the segmenter's blocks, lazily.
    The live utterance's edges fall on one of these alignments, and the model's windows and the
    clip mean move with the edges."""
    classifier, frontend = Classifier(bundle), bundle.manifest.frontend
    silence = np.zeros(2 * frontend.sample_rate)
    for offset in range(frontend.frame_step):
        segmenter = Segmenter(SegmenterSettings(), frontend, bundle.manifest.windowing.min_frames)
        (utterance,) = segmenter.push(np.concatenate([silence, np.zeros(offset), samples, silence]))
        yield classifier.classify_features(utterance.features).emotion


def heard_samples(path, heard: np.ndarray) -> np.ndarray:
    """The file's samples, or what the microphone delivered instead when that differs: at 16 kHz
    the virtual microphone returns the played samples bit for bit, unless the sound server
    under-ran on a loaded machine. Float, as ``load_audio`` gives them."""
    played, _ = soundfile.read(str(path), dtype="int16")
    sounding = np.flatnonzero(heard)
    heard = heard[sounding[0] : sounding[-1] + 1] if len(sounding) else heard
    if not np.array_equal(np.trim_zeros(played), heard):
        print(f"{path.name}: the microphone delivered {len(heard)} samples, not the file's {len(played)}")
        played = heard
    return played / 32768.0


def start_daemon(tmp_path, microphone, *args: str, env: dict | None = None) -> ServiceProcess:
    service = ServiceProcess(
        "--device-id", "test", *args, env={**microphone.env, **(env or {})}, log_path=tmp_path / "daemon.log"
    )
    service.next_event(status="microphone_open")
    return service


def test_each_played_utterance_gives_one_event_with_the_files_emotion_within_a_second(
    tmp_path, microphone, clips, file_emotions, shipped_bundle
):
    service = start_daemon(tmp_path, microphone, "--rate", "16000")
    exact = 0
    for path in clips:
        played_until, heard = microphone.play_and_record(path)
        topic, payload, _ = service.next_event(type="emotion", timeout=5)
        assert topic == "ser/test/emotion"
        assert payload["time"] - played_until < 1.0, f"{path.name}: event {payload['time'] - played_until:.2f} s after the audio"
        speech_end = payload["end"] - SegmenterSettings().hangover_seconds
        print(
            f"{path.name}: {payload['emotion']}, event {payload['time'] - played_until:+.2f} s after the playback ended, "
            f"{payload['time'] - speech_end:.2f} s after the last speech block"
        )
        # `ser classify`'s emotion, or what the microphone delivered cut offline at one of the
        # block alignments.
        emotion = payload["emotion"]
        exact += emotion == file_emotions[str(path)]
        offline = offline_utterance_emotions(heard_samples(path, heard), shipped_bundle)
        assert emotion == file_emotions[str(path)] or emotion in offline, (
            path.name,
            emotion,
            file_emotions[str(path)],
        )
        assert payload["end"] - payload["start"] == pytest.approx(payload["duration"], abs=2e-3)
        assert payload["model"] == "lstm-multilingual" and len(payload["model_sha256"]) == 64
        time.sleep(0.3)
    print(f"daemon and `ser classify` gave the same emotion for {exact} of {len(clips)} clips")
    assert service.no_event(2.0) == [], "more events than utterances"
    assert service.stop() < 2.0
    sequences = [json.loads(line.split(" ", 1)[1])["sequence"] for line in service.lines]
    assert sequences == list(range(1, len(sequences) + 1))
    assert json.loads(service.lines[-1].split(" ", 1)[1])["status"] == "stopped"
    assert service.process.returncode == 0


def test_sighup_reloads_the_model_and_keeps_the_old_one_if_the_new_one_fails_its_checks(tmp_path, microphone, bundle_copy):
    config = tmp_path / "ser.toml"
    config.write_text('model = "lstm-multilingual"\n')
    service = start_daemon(tmp_path, microphone, "--config", str(config), "--channels", "2")  # 44.1 kHz stereo

    config.write_text('model = "gru-multilingual"\n')
    service.signal(signal.SIGHUP)
    assert "gru-multilingual" in service.next_event(status="reloaded")[1]["detail"]

    manifest = json.loads((bundle_copy / "manifest.json").read_text())
    manifest["normalisation"]["mean"][0] += 1.0  # the fingerprint no longer matches
    (bundle_copy / "manifest.json").write_text(json.dumps(manifest))
    config.write_text(f'model = "{bundle_copy}"\n')
    service.signal(signal.SIGHUP)
    detail = service.next_event(status="reload_failed")[1]["detail"]
    assert "fingerprint" in detail and "keeping gru-multilingual" in detail

    microphone.play(EXAMPLES[0])
    assert service.next_event(type="emotion", timeout=5)[1]["model"] == "gru-multilingual"
    assert service.stop() < 2.0 and service.process.returncode == 0


def test_the_microphone_lost_and_back_is_reported_and_listening_resumes(tmp_path_factory, tmp_path):
    require_programs("pulseaudio", "pacat", "paplay", "pactl")
    mic = VirtualMicrophone(tmp_path_factory.mktemp("pulse-restart"))
    mic.start()
    try:
        service = start_daemon(tmp_path, mic)
        mic.kill()
        assert service.next_event(status="microphone_lost", timeout=5)[1]["detail"]
        time.sleep(2.0)
        assert service.process.poll() is None, "the daemon died with the sound server"
        mic.start()
        service.next_event(status="microphone_back", timeout=15)
        mic.play(EXAMPLES[1])
        assert service.next_event(type="emotion", timeout=5)[1]["emotion"]
        assert service.stop() < 2.0 and service.process.returncode == 0
    finally:
        mic.kill()


class NotifyListener:
    """Systemd's side of the notify protocol: a datagram socket read all the time (as systemd does),
    every message kept in order."""

    def __init__(self, path):
        self.path = str(path)
        self.messages: list[str] = []
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.bind(self.path)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while True:
            self.messages.extend(self._socket.recv(4096).decode().splitlines())

    def during(self, seconds: float) -> list[str]:
        """The messages that arrive in the next ``seconds``."""
        already = len(self.messages)
        time.sleep(seconds)
        return self.messages[already:]


def test_without_a_microphone_it_is_ready_retries_with_backoff_and_listens_once_one_appears(tmp_path, tmp_path_factory):
    require_programs("pulseaudio", "pacat", "paplay", "pactl")
    mic = VirtualMicrophone(tmp_path_factory.mktemp("pulse-later"))  # not started yet: no sound server
    notify = NotifyListener(tmp_path / "notify")
    service = ServiceProcess(
        "--device-id",
        "test",
        env={**mic.env, "NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "1000000"},
        log_path=tmp_path / "daemon.log",
    )
    try:
        detail = service.next_event(status="microphone_lost", timeout=30)[1]["detail"]
        assert "no audio input device" in detail
        assert "ALSA lib" not in service.log() and "Cannot connect to server" not in service.log()  # PortAudio's probing
        waiting = notify.during(4.0)
        assert "READY=1" in notify.messages and any(m.startswith("STATUS=microphone lost: ") for m in notify.messages)
        assert waiting.count("WATCHDOG=1") >= 12  # fed every quarter second while it waits
        retries = [float(line.split()[-2]) for line in service.log().splitlines() if "retrying the microphone in" in line]
        assert retries[:3] == [0.5, 1.0, 2.0], service.log()  # backoff doubles (capture.retry_min_seconds 0.5)
        assert service.no_event(1.0, type="status") == []  # said once, not at every retry
        mic.start()
        service.next_event(status="microphone_back", timeout=30)
        time.sleep(0.2)
        assert any(m.startswith("STATUS=listening on") for m in notify.messages)
        mic.play(EXAMPLES[1])
        assert service.next_event(type="emotion", timeout=5)[1]["emotion"]
        assert service.stop() < 2.0 and service.process.returncode == 0
    finally:
        mic.kill()


def test_the_loop_sends_ready_status_and_watchdog_keepalives_and_stops_them_when_stuck(tmp_path, microphone):
    notify = NotifyListener(tmp_path / "notify")
    service = start_daemon(tmp_path, microphone, env={"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "1000000"})
    messages = notify.during

    first = notify.messages + messages(2.0)
    assert "READY=1" in first and any(m.startswith("STATUS=listening on") for m in first)
    assert first.count("WATCHDOG=1") >= 4  # every quarter of the 1 s interval
    service.signal(signal.SIGSTOP)  # the loop hangs: no more keep-alives
    assert "WATCHDOG=1" not in messages(1.5)
    service.signal(signal.SIGCONT)
    assert "WATCHDOG=1" in messages(1.5)
    before_stop = len(notify.messages)
    assert service.stop() < 2.0
    time.sleep(0.2)
    assert "STOPPING=1" in notify.messages[before_stop:]


def test_bad_settings_or_model_stop_the_start_with_one_line(tmp_path):
    config = tmp_path / "ser.toml"
    config.write_text("[capture]\nrate = 16000\n")
    result = run_ser("daemon", "--config", str(config))
    # 78 (EX_CONFIG): the unit's RestartPreventExitStatus=78 does not restart what a restart cannot mend
    assert (
        result.returncode == 78
        and result.stderr.strip().splitlines()[-1] == f"Error: {config} [capture]: unknown setting(s) rate"
    )
    result = run_ser("daemon", "--model", str(tmp_path / "no-bundle"))
    assert result.returncode == 78 and "no-bundle" in result.stderr and "Traceback" not in result.stderr


def test_devices_lists_the_virtual_microphone(microphone):
    result = run_ser("devices", env=microphone.env)
    assert result.returncode == 0, result.stderr
    assert any(line.split()[1:2] == ["pulse"] for line in result.stdout.splitlines()[1:])
    assert "(default)" in result.stdout


def test_listen_prints_a_readable_line_per_utterance(tmp_path, microphone):
    import subprocess
    import sys

    process = subprocess.Popen(
        [sys.executable, "-m", "edge.cli", "listen"],
        cwd=REPO,
        env=microphone.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    time.sleep(2.5)
    microphone.play(EXAMPLES[2])
    time.sleep(1.0)
    process.send_signal(signal.SIGINT)
    out, _ = process.communicate(timeout=5)
    (line,) = out.splitlines()
    assert " s  " in line and any(
        label in line for label in ("angry", "happy", "sad", "neutral", "fearful", "disgust", "surprised")
    )
    assert process.returncode == 0


# Two clips of test actors whose emotion does not depend on where the segmenter's 16 ms blocks fall
# (256 of 256 alignments agree: happy at 0.36-0.81, angry at 0.99-1.00), so the microphone and the
# pipe, which cut at different alignments, must agree.
STEADY_CLIPS = [
    corpus_root() / "ravdess" / "Actor_19" / "03-01-03-02-02-01-19.flac",
    corpus_root() / "ravdess" / "Actor_20" / "03-01-05-02-02-01-20.flac",
]


def pcm_of(clips, rate: int = 16000, gap_seconds: float = 2.0) -> np.ndarray:
    """The clips one after another with silence before each and after the last, as 16-bit samples."""
    gap = np.zeros(round(gap_seconds * rate))
    audio = np.concatenate([part for clip in clips for part in (gap, load_audio(clip, rate))] + [gap])
    return np.round(np.clip(audio, -1, 1) * 32767).astype("<i2")


def piped_events(pcm: bytes, *args: str) -> list[dict]:
    """`ser listen --input - --events` fed ``pcm`` on standard input; the emotion events it printed."""
    result = subprocess.run(
        [sys.executable, "-m", "edge.cli", "listen", "--input", "-", "--events", "--device-id", "test", *args],
        input=pcm,
        capture_output=True,
        cwd=REPO,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    payloads = [json.loads(line.split(" ", 1)[1]) for line in result.stdout.decode().splitlines()]
    assert payloads[-1]["status"] == "stopped"  # the end of the input ended it cleanly
    emotions = [p for p in payloads if p["type"] == "emotion"]
    assert all(a["end"] < b["start"] for a, b in zip(emotions, emotions[1:]))  # times count along the input
    return emotions


def test_pcm_piped_into_listen_gives_the_events_the_microphone_gives_for_the_same_audio(tmp_path, microphone, shipped_bundle):
    pcm = pcm_of(STEADY_CLIPS)
    piped = piped_events(pcm.tobytes())
    # Bit for bit what the daemon's segmenter and classifier make of the same samples offline.
    classifier, manifest = Classifier(shipped_bundle), shipped_bundle.manifest
    segmenter = Segmenter(SegmenterSettings(), manifest.frontend, manifest.windowing.min_frames)
    offline = [classifier.classify_features(u.features) for u in [*segmenter.push(pcm / 32768.0), *segmenter.flush()]]
    assert [(e["emotion"], e["confidence"]) for e in piped] == [(p.emotion, round(p.confidence, 4)) for p in offline]
    # The same audio played into the virtual microphone: the same events.
    soundfile.write(tmp_path / "played.wav", pcm, 16000, subtype="PCM_16")
    service = start_daemon(tmp_path, microphone, "--rate", "16000")
    microphone.play(tmp_path / "played.wav")
    heard = [service.next_event(type="emotion", timeout=5)[1] for _ in STEADY_CLIPS]
    assert service.no_event(1.5) == [] and service.stop() < 2.0
    assert [e["emotion"] for e in heard] == [e["emotion"] for e in piped] == ["happy", "angry"]
    assert [round(e["duration"], 1) for e in heard] == pytest.approx([round(e["duration"], 1) for e in piped], abs=0.1)


@pytest.mark.parametrize("pcm_format, rate, channels", [("s32le", 48000, 2), ("f32le", 44100, 1)])
def test_other_formats_rates_and_channels_on_standard_input(pcm_format, rate, channels):
    samples = pcm_of(STEADY_CLIPS, rate) / 32767.0
    frames = np.repeat(samples[:, None], channels, axis=1)
    data = (np.round(frames * 2**31 * 0.999).astype("<i4") if pcm_format == "s32le" else frames.astype("<f4")).tobytes()
    events = piped_events(data, "--format", pcm_format, "--rate", str(rate), "--channels", str(channels))
    assert [e["emotion"] for e in events] == ["happy", "angry"]


def test_the_end_of_the_input_ends_the_last_utterance_too():
    pcm = pcm_of(STEADY_CLIPS)[: -2 * 16000]  # no silence after the last clip: it ends with the input
    assert [e["emotion"] for e in piped_events(pcm[:-1].tobytes() + b"\x01")] == ["happy", "angry"]  # and half a sample


FILTERS = {  # command line → the emotions that go out for happy, angry, angry, happy (happy below 0.9)
    (): ["happy", "angry", "angry", "happy"],
    ("--min-confidence", "0.9"): ["uncertain", "angry", "angry", "uncertain"],
    ("--labels", "angry,uncertain"): ["angry", "angry"],
    ("--only-changes",): ["happy", "angry", "happy"],
    # 2 s gaps, 4.4 s clips: the 2nd and the 4th end 6.4 s after the last one out, the 3rd 12.8 s.
    ("--cooldown", "10"): ["happy", "angry"],
}


@pytest.mark.parametrize("options", FILTERS, ids=lambda o: " ".join(o) or "no filter")
def test_event_filters_on_real_clips_through_the_microphone_pipeline(options):
    pcm = pcm_of(STEADY_CLIPS + STEADY_CLIPS[::-1])
    events = piped_events(pcm.tobytes(), *options)
    assert [e["emotion"] for e in events] == FILTERS[options]
    assert all(e["confidence"] == max(e["scores"].values()) for e in events)  # relabelled, scores kept


def test_an_unknown_label_in_the_filter_stops_the_start_with_one_line():
    result = run_ser("listen", "--input", "-", "--labels", "angry,furious")
    assert (
        result.returncode == 78
        and result.stderr.strip().splitlines()[-1]
        == "Error: events labels: furious not among the model's "
        "(neutral, happy, sad, angry, fearful, disgust, surprised) or uncertain"
    )


def test_sigusr1_pauses_listening_and_sigusr2_resumes_with_a_fresh_utterance(tmp_path, microphone):
    notify = NotifyListener(tmp_path / "notify")
    service = start_daemon(
        tmp_path, microphone, "--rate", "16000", env={"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "1000000"}
    )
    service.signal(signal.SIGUSR1)
    service.next_event(status="paused", timeout=5)
    paused_at = len(notify.messages)
    microphone.play(STEADY_CLIPS[0])
    assert service.no_event(2.0) == [], "an event while paused"
    assert notify.messages[paused_at:].count("WATCHDOG=1") >= 8  # the watchdog is fed while paused
    service.signal(signal.SIGUSR2)
    service.next_event(status="resumed", timeout=5)
    microphone.play(STEADY_CLIPS[1])
    assert service.next_event(type="emotion", timeout=5)[1]["emotion"] == "angry"
    assert service.stop() < 2.0 and service.process.returncode == 0


def test_ser_levels_shows_a_played_clip_rise_above_the_floor(microphone):
    levels = subprocess.Popen(
        [sys.executable, "-m", "edge.cli", "levels", "--seconds", "7"],
        cwd=REPO,
        env=microphone.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(2.5)
    microphone.play(STEADY_CLIPS[1])
    out, err = levels.communicate(timeout=30)
    assert levels.returncode == 0, err
    # time, level, dBFS, floor, dBFS, threshold, dBFS, speech probability, yes/no, share
    rows = [line.split() for line in out.splitlines()[1:]]
    assert len(rows) >= 5
    level, floor, threshold = (float(rows[0][i]) for i in (1, 3, 5))
    assert rows[0][8] == "no" and level <= threshold  # the silent room before the clip
    speech = [row for row in rows if row[8] == "yes"]
    assert speech and all(float(row[1]) > float(row[5]) > float(row[3]) for row in speech)  # level above threshold above floor
    assert all(float(row[7]) >= SegmenterSettings().speech_threshold for row in speech)  # and the detector heard speech
    assert [line.split(":")[0] for line in err.splitlines()] == ["INFO edge.microphone", "default"]  # no ALSA or JACK chatter


def test_the_log_has_the_projects_lines_only_at_the_chosen_level(tmp_path):
    pcm = pcm_of(STEADY_CLIPS).tobytes()
    quiet = subprocess.run(
        [sys.executable, "-m", "edge.cli", "listen", "--input", "-", "--log-level", "warning"],
        input=pcm,
        capture_output=True,
        cwd=REPO,
        timeout=120,
    )
    assert quiet.returncode == 0 and quiet.stderr == b""
    chatty = subprocess.run(
        [sys.executable, "-m", "edge.cli", "listen", "--input", "-", "--debug", "--labels", "angry"],
        input=pcm,
        capture_output=True,
        cwd=REPO,
        timeout=120,
    )
    assert b"DEBUG edge.daemon: event held back by the [events] filter: happy" in chatty.stderr
    assert all(line.split(b" ", 1)[0] in (b"DEBUG", b"INFO", b"WARNING") for line in chatty.stderr.splitlines())


def test_float_input_with_nan_and_overshoot_is_tamed_not_passed_on():
    samples = pcm_of(STEADY_CLIPS) / 32767.0
    samples[100:5000] = np.nan  # a broken recorder's block, in the silence before the first clip
    samples[-3000:] = 4.0  # and a burst far past full scale at the very end
    events = piped_events(samples.astype("<f4").tobytes(), "--format", "f32le")
    assert [e["emotion"] for e in events][:2] == ["happy", "angry"]
    assert all(np.isfinite(list(e["scores"].values())).all() for e in events)
