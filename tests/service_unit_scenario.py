"""Inside a private mount namespace: run a copy of firmware_scripts/ser.service under a real systemd
user manager, hang its loop, stop it; print what happened as JSON (read by test_service_unit.py).

Usage: service_unit_scenario.py WORKDIR PULSE_SERVER
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from user_manager import UserManager

REPO = Path(__file__).resolve().parents[1]
# Lines the copy run by a user manager leaves out, and why; the real unit keeps them all and is
# checked by systemd-analyze (test_service_unit.py). Everything else of its sandbox is applied here.
SYSTEM_ONLY = (
    "User=", "Group=", "SupplementaryGroups=",  # a user manager runs services as its own user
    "ProtectKernelLogs=", "ProtectKernelTunables=",  # refused by this container's kernel for a user manager
)


def hidden_by_sandbox() -> tuple[str, ...]:
    """Sandboxing lines that would hide this test's own files from the service: the checkout (with
    its virtualenv, the microphone's and the manager's sockets) or the Python it runs on."""
    places = [str(REPO), str(Path(sys.executable).resolve()), str(Path(sys.prefix).resolve())]

    def under(*roots: str) -> bool:
        return any(place.startswith(roots) for place in places)

    hidden = []
    if under("/root/", "/home/", "/run/user/"):
        hidden.append("ProtectHome=")
    if under("/tmp/", "/var/tmp/"):
        hidden.append("PrivateTmp=")
    return tuple(hidden)


WATCHDOG_SECONDS = 2


def unit_copy(pulse_server: str, workdir: Path) -> str:
    """The real unit without system-only lines, running this checkout's daemon on the virtual
    microphone, with a 2 s watchdog so the test is quick."""
    lines = []
    for line in (REPO / "firmware_scripts" / "ser.service").read_text().splitlines():
        if line.startswith(SYSTEM_ONLY + hidden_by_sandbox()):
            continue
        if line.startswith("ExecStart="):
            line = f"ExecStart={sys.executable} -m edge.cli daemon --device-id unit"
        elif line.startswith("Environment="):
            line = (f"Environment=PULSE_SERVER={pulse_server} PYTHONDONTWRITEBYTECODE=1\nWorkingDirectory={REPO}\n"
                    f"StandardOutput=append:{workdir}/events.log\nStandardError=append:{workdir}/service.log")
        elif line.startswith("WatchdogSec="):
            line = f"WatchdogSec={WATCHDOG_SECONDS}"
        elif line.startswith("RestartSec="):
            line = "RestartSec=0.5"
        lines.append(line)
    return "\n".join(lines) + "\n"


def main(workdir: Path, pulse_server: str) -> dict:
    workdir.mkdir(parents=True, exist_ok=True)
    manager = UserManager(workdir)
    (manager.units / "ser.service").write_text(unit_copy(pulse_server, workdir))
    facts: dict = {}
    manager.start()
    try:
        started = time.monotonic()
        result = manager.systemctl("start", "ser.service", timeout=30)  # Type=notify: returns once READY=1 arrives
        facts["start_seconds"] = round(time.monotonic() - started, 2)
        facts["start_returncode"] = result.returncode
        facts["after_start"] = manager.show("ser.service", "ActiveState", "SubState", "MainPID", "StatusText", "NRestarts")

        first_pid = int(facts["after_start"].get("MainPID", "0"))
        if first_pid > 0:  # else it never started, and the test shows why
            hang_and_stop(manager, first_pid, facts)
    finally:
        manager.stop()
    facts["manager_log"] = (workdir / "manager.log").read_text()[-3000:]
    log = workdir / "service.log"
    facts["service_log"] = log.read_text(errors="replace")[-3000:] if log.exists() else ""
    return facts


def hang_and_stop(manager: UserManager, first_pid: int, facts: dict) -> None:
    """SIGSTOP the service (its loop stops sending WATCHDOG=1), wait for the restart, then stop it."""
    os.kill(first_pid, signal.SIGSTOP)  # the loop hangs: no more WATCHDOG=1
    hung = time.monotonic()
    while time.monotonic() - hung < 40:
        state = manager.show("ser.service", "ActiveState", "SubState", "MainPID", "NRestarts", "StatusText")
        if state.get("NRestarts") == "1" and state.get("ActiveState") == "active" and state["MainPID"] not in ("0", str(first_pid)):
            break
        time.sleep(0.2)
    facts["after_hang"] = state
    facts["restart_seconds"] = round(time.monotonic() - hung, 2)

    started = time.monotonic()
    facts["stop_returncode"] = manager.systemctl("stop", "ser.service").returncode
    facts["stop_seconds"] = round(time.monotonic() - started, 2)
    facts["after_stop"] = manager.show("ser.service", "ActiveState", "Result")
    facts["events"] = (manager.directory / "events.log").read_text().splitlines()


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]), sys.argv[2])))
