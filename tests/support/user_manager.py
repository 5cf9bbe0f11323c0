"""A real systemd user manager for service tests, on a machine where systemd is not PID 1.

Run inside ``unshare --mount`` (see ``run_in_namespace``): a tmpfs on /run/systemd with
/run/systemd/system in it makes systemd believe it booted the machine; the manager's unit path
holds stub targets plus systemd's own exit.target and systemd-exit.service, and the unit tested.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

STUB_TARGETS = ("default.target", "basic.target", "shutdown.target")
SYSTEMD_USER_UNITS = Path("/usr/lib/systemd/user")


class UserManager:
    def __init__(self, directory: Path):
        self.directory = directory
        self.units = directory / "units"
        self.units.mkdir(parents=True, exist_ok=True)
        for target in STUB_TARGETS:
            (self.units / target).write_text("[Unit]\nDescription=stub\n")
        for unit in ("exit.target", "systemd-exit.service"):
            shutil.copy(SYSTEMD_USER_UNITS / unit, self.units / unit)
        runtime = directory / "xdg"
        runtime.mkdir(mode=0o700, exist_ok=True)
        self.env = {
            **os.environ,
            "XDG_RUNTIME_DIR": str(runtime),
            "HOME": str(directory),
            "SYSTEMD_UNIT_PATH": f"{self.units}:",
            "DBUS_SESSION_BUS_ADDRESS": "",
        }
        self.process = None

    def start(self) -> None:
        subprocess.run(["mount", "-t", "tmpfs", "tmpfs", "/run/systemd"], check=True)
        os.makedirs("/run/systemd/system")
        self.process = subprocess.Popen(
            ["/lib/systemd/systemd", "--user"],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=open(self.directory / "manager.log", "ab"),
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            state = self.systemctl("is-system-running").stdout.strip()
            if state in ("running", "degraded"):
                return
            time.sleep(0.1)
        raise TimeoutError("the systemd user manager did not come up: " + (self.directory / "manager.log").read_text())

    def systemctl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        """``systemctl --user ARGS``; a command that outlasts ``timeout`` returns code 124."""
        command = ["systemctl", "--user", *args]
        try:
            return subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            return subprocess.CompletedProcess(command, 124, "", f"timed out after {timeout} s")

    def show(self, unit: str, *properties: str) -> dict:
        output = self.systemctl("show", unit, "-p", ",".join(properties)).stdout
        return dict(line.split("=", 1) for line in output.splitlines() if "=" in line)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.systemctl("exit")  # the user manager ignores SIGTERM
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()


def run_in_namespace(test_file: Path, *args: str) -> subprocess.CompletedProcess:
    """Run ``test_file`` with this interpreter in a private mount namespace."""
    return subprocess.run(
        ["unshare", "--mount", "--propagation", "private", sys.executable, str(test_file), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
