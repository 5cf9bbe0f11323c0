"""The daemon listening to continuous speech through the virtual microphone: CPU per second of
audio, peak RSS, and the delay from the end of each utterance's speech to its event.

Reuses the test suite's PulseAudio null-sink microphone (tests/support/sound_server.py).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile

from benchmarks.timing import REPO

GAP_SECONDS = 1.5  # silence between utterances, longer than the hang-over


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def continuous_speech(clips: list[Path], seconds: float, threshold_db: float) -> tuple[np.ndarray, list[float]]:
    """Clips separated by GAP_SECONDS of silence until ``seconds``; and where each clip's speech
    ends (its last 16 ms block above ``threshold_db``), in seconds from the start."""
    from edge.audio import load_audio
    from edge.voice_activity import block_levels

    pieces, speech_ends, position = [np.zeros(16000)], [], 1.0
    while position < seconds:
        for clip in clips:
            samples = load_audio(clip, 16000)
            blocks = samples[: len(samples) // 256 * 256].reshape(-1, 256)
            loud = np.flatnonzero(block_levels(blocks) > threshold_db)
            speech_ends.append(position + (loud[-1] + 1) * 256 / 16000)
            pieces += [samples, np.zeros(round(GAP_SECONDS * 16000))]
            position += len(samples) / 16000 + GAP_SECONDS
            if position >= seconds:
                break
    return np.concatenate(pieces), speech_ends


def run(clips: list[Path], seconds: float = 60.0) -> dict:
    sys.path.insert(0, str(REPO / "tests"))
    from support.sound_server import VirtualMicrophone

    from edge.settings import SegmenterSettings

    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        audio, speech_ends = continuous_speech(clips, seconds, SegmenterSettings().threshold_db)
        soundfile.write(scratch / "speech.wav", audio, 16000, subtype="PCM_16")
        microphone = VirtualMicrophone(scratch / "pulse")
        microphone.start()
        daemon = subprocess.Popen(
            [sys.executable, "-m", "edge.cli", "daemon", "--device-id", "bench"],
            cwd=REPO,
            env=microphone.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            events = []
            for line in daemon.stdout:
                if '"microphone_open"' in line:
                    break
            time.sleep(3.0)  # past start-up
            idle_cpu, idle_started = _cpu_seconds(daemon.pid), time.monotonic()
            time.sleep(10.0)
            idle_share = (_cpu_seconds(daemon.pid) - idle_cpu) / (time.monotonic() - idle_started)

            cpu_before, play_started = _cpu_seconds(daemon.pid), time.time()
            microphone.play(scratch / "speech.wav")
            time.sleep(1.5)  # the last utterance's hang-over and classification
            cpu_share = (_cpu_seconds(daemon.pid) - cpu_before) / (len(audio) / 16000 + 1.5)
            peak_rss = _peak_rss_mb(daemon.pid)
        finally:
            daemon.terminate()
            output, _ = daemon.communicate(timeout=10)
            microphone.kill()
        events = [json.loads(line.split(" ", 1)[1]) for line in output.splitlines() if "/emotion " in line]
        delays = [event["time"] - (play_started + end) for event, end in zip(events, speech_ends)]
    return {
        "audio_seconds": round(len(audio) / 16000, 1),
        "utterances_played": len(speech_ends),
        "events": len(events),
        "cpu_percent_of_one_core": 100 * cpu_share,
        "cpu_percent_idle_silence": 100 * idle_share,
        "peak_rss_mb": peak_rss,
        "delay_after_speech_end_median_s": statistics.median(delays) if delays else None,
        "delay_after_speech_end_max_s": max(delays) if delays else None,
    }
