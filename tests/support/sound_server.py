"""A real PulseAudio server with a virtual microphone, for tests of the real capture path.

A null sink ``vsink`` whose monitor is remapped as the default source ``vmic``: whatever is played
into the sink with ``paplay`` is what PyAudio records. A silent stream keeps the sink running, or
the first read of an idle null sink stalls for about two seconds.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np

CONFIG = """\
load-module module-native-protocol-unix auth-anonymous=1 socket={socket}
load-module module-null-sink sink_name=vsink rate=16000 channels=1 format=s16le
load-module module-remap-source master=vsink.monitor source_name=vmic
set-default-sink vsink
set-default-source vmic
"""


def require_programs(*names: str) -> None:
    """Skip (fail under CI, where script/system-packages installs them) if a program is missing."""
    missing = [name for name in names if shutil.which(name) is None]
    if missing:
        # Imported here so that the benchmarks can use this module without pytest installed.
        from support.helpers import unavailable

        unavailable(f"needs {', '.join(missing)} (installed by script/system-packages)")


class VirtualMicrophone:
    """Start, kill and restart the server; play files into the microphone."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.socket = directory / "native"
        for sub in ("xdg", "home"):
            (directory / sub).mkdir(parents=True, exist_ok=True)
        (directory / "mic.pa").write_text(CONFIG.format(socket=self.socket))
        self.env = {**os.environ, "PULSE_SERVER": f"unix:{self.socket}"}
        self._server = self._silence = None

    def start(self) -> None:
        self.socket.unlink(missing_ok=True)
        env = {**self.env, "XDG_RUNTIME_DIR": str(self.directory / "xdg"), "HOME": str(self.directory / "home")}
        env.pop("PULSE_SERVER")
        self._server = subprocess.Popen(
            [
                "pulseaudio",
                "-n",
                "-F",
                str(self.directory / "mic.pa"),
                "--daemonize=no",
                "--exit-idle-time=-1",
                "--use-pid-file=no",
                "--log-target=stderr",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(self.directory / "pulseaudio.log", "ab"),
        )
        self._wait(lambda: self._pactl("info").returncode == 0, "PulseAudio to answer")
        self._silence = subprocess.Popen(
            [
                "pacat",
                "--playback",
                "--device=vsink",
                "--latency-msec=20",
                "--raw",
                "--format=s16le",
                "--rate=16000",
                "--channels=1",
                "/dev/zero",
            ],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._wait(lambda: self._pactl("list", "short", "sink-inputs").stdout.strip() != "", "the silent stream")

    def kill(self) -> None:
        """The sound server dies (SIGKILL), as on a crash."""
        for process in (self._silence, self._server):
            if process and process.poll() is None:
                process.kill()
                process.wait()

    def play(self, path: Path) -> float:
        """Play a file into the microphone; returns the wall time its last sample was played."""
        import soundfile

        seconds = soundfile.info(str(path)).duration
        subprocess.run(["paplay", "--device=vsink", str(path)], env=self.env, check=True, timeout=seconds + 30)
        return time.time()

    def play_and_record(self, path: Path) -> tuple[float, np.ndarray]:
        """Play a file while recording the microphone, as a second listener beside the one under
        test: the wall time its last sample was played, and what the microphone delivered meanwhile
        (int16, 16 kHz mono). On a loaded machine the sound server can deliver other samples than
        the file's; this is what a listener heard."""
        recording = self.directory / "heard.raw"
        with open(recording, "wb") as sink:
            recorder = subprocess.Popen(
                ["parec", "--device=vmic", "--raw", "--format=s16le", "--rate=16000", "--channels=1", "--latency-msec=20"],
                env=self.env,
                stdout=sink,
                stderr=subprocess.DEVNULL,
            )
        try:
            # The silent stream keeps the microphone sounding, so the recorder writes from the start.
            self._wait(lambda: recording.stat().st_size > 0, "the recorder to hear")
            played_until = self.play(path)
            time.sleep(0.2)  # the sink's last samples reach the recorder
        finally:
            recorder.terminate()
            recorder.wait(timeout=10)
        heard = recording.read_bytes()
        return played_until, np.frombuffer(heard[: len(heard) // 2 * 2], dtype="<i2")

    def _pactl(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["pactl", *args], env=self.env, capture_output=True, text=True, timeout=10, check=False)

    @staticmethod
    def _wait(condition, what: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            time.sleep(0.05)
        raise TimeoutError(f"timed out waiting for {what}")
