"""`ser daemon` in a real process, with its stdout event lines read as they are flushed."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


class ServiceProcess:
    """Starts ``ser daemon ARGS``; ``next_event`` returns parsed (topic, payload, arrival time)."""

    started: list[ServiceProcess] = []  # killed after each test (tests/conftest.py), passed or not

    def __init__(self, *args: str, env: dict, log_path: Path, command: list[str] | None = None):
        """``command`` runs the daemon some other way (default: this Python's ``edge.cli daemon``)."""
        ServiceProcess.started.append(self)
        self.log_path = log_path
        self.process = subprocess.Popen(
            [*(command or [sys.executable, "-m", "edge.cli", "daemon"]), *args],
            cwd=REPO,
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=open(log_path, "ab"),
            text=True,
        )
        self.events: queue.Queue = queue.Queue()
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)
            topic, _, payload = line.rstrip("\n").partition(" ")
            self.events.put((topic, json.loads(payload), time.time()))
        self.events.put(None)

    def next_event(self, timeout: float = 15.0, type: str | None = None, status: str | None = None):
        """The next event (of ``type`` / with ``status`` if given; others are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                item = self.events.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {type or status or 'event'} within {timeout} s; log:\n{self.log()}") from None
            if item is None:
                raise AssertionError(f"daemon exited ({self.process.poll()}); log:\n{self.log()}")
            _, payload, _ = item
            if (type is None or payload["type"] == type) and (status is None or payload.get("status") == status):
                return item

    def no_event(self, seconds: float, type: str = "emotion") -> list:
        """Events of ``type`` that arrive within ``seconds`` (the caller expects none)."""
        deadline, seen = time.monotonic() + seconds, []
        while time.monotonic() < deadline:
            try:
                item = self.events.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if item is not None and item[1]["type"] == type:
                seen.append(item)
        return seen

    def signal(self, number: int) -> None:
        self.process.send_signal(number)

    def stop(self, timeout: float = 10.0) -> float:
        """SIGTERM and wait; returns the seconds it took to exit."""
        started = time.monotonic()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout)
        return time.monotonic() - started

    def log(self) -> str:
        text = self.log_path.read_text(errors="replace")
        return "\n".join(line for line in text.splitlines() if "ALSA" not in line and "Jack" not in line)[-4000:]

    @classmethod
    def kill_leftovers(cls) -> None:
        for service in cls.started:
            if service.process.poll() is None:
                service.process.kill()
                service.process.wait()
        cls.started.clear()
