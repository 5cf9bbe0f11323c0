"""Inside a private mount namespace: run a copy of firmware_scripts/ser.service under a real systemd
user manager and a virtual microphone; print what happened as JSON (read by test_service_unit.py).

Scenarios:
- watchdog: start with the microphone there, hang the loop (SIGSTOP), see the restart, stop;
- no-microphone: start with no sound server and a short start timeout, see it active and not
  restarted for twice that timeout, then start the sound server, play a clip, get its event;
- pause: start, pause (SIGUSR1), restart the unit, play a clip (no event), resume (SIGUSR2), play
  it again (its event), stop.

Usage: service_unit_scenario.py WORKDIR PULSE_DIR SCENARIO
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))  # run as a script: tests/, for the support package
from support.sound_server import VirtualMicrophone
from support.user_manager import UserManager

REPO = Path(__file__).resolve().parents[2]
# Lines the copy run by a user manager leaves out, and why; the real unit keeps them all and is
# checked by systemd-analyze (test_service_unit.py). Everything else of its sandbox is applied here.
SYSTEM_ONLY = (
    "User=",
    "Group=",
    "SupplementaryGroups=",  # a user manager runs services as its own user
    "ProtectKernelLogs=",
    "ProtectKernelTunables=",  # refused by this container's kernel for a user manager
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


START_TIMEOUT_SECONDS = 3
EXAMPLE = REPO / "examples" / "03-01-05-02-01-01-18.flac"


def unit_copy(pulse_server: str, workdir: Path) -> str:
    """The real unit without system-only lines, running this checkout's daemon on the virtual
    microphone, with a 2 s watchdog and a 3 s start timeout so the test is quick."""
    lines = []
    for line in (REPO / "firmware_scripts" / "ser.service").read_text().splitlines():
        if line.startswith(SYSTEM_ONLY + hidden_by_sandbox()):
            continue
        if line.startswith("ExecStart="):
            line = f"ExecStart={sys.executable} -m edge.cli daemon --device-id unit"
        elif line.startswith("Environment="):
            line = (
                f"Environment=PULSE_SERVER={pulse_server} PYTHONDONTWRITEBYTECODE=1\nWorkingDirectory={REPO}\n"
                f"StandardOutput=append:{workdir}/events.log\nStandardError=append:{workdir}/service.log"
            )
        elif line.startswith("WatchdogSec="):
            line = f"WatchdogSec={WATCHDOG_SECONDS}"
        elif line.startswith("RestartSec="):
            line = "RestartSec=0.5"
        elif line.startswith("TimeoutStartSec="):
            line = f"TimeoutStartSec={START_TIMEOUT_SECONDS}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def main(workdir: Path, microphone: VirtualMicrophone, scenario: str) -> dict:
    workdir.mkdir(parents=True, exist_ok=True)
    manager = UserManager(workdir)
    (manager.units / "ser.service").write_text(unit_copy(microphone.env["PULSE_SERVER"], workdir))
    facts: dict = {}
    if scenario != "no-microphone":
        microphone.start()
    manager.start()
    try:
        started = time.monotonic()
        result = manager.systemctl("start", "ser.service", timeout=30)  # Type=notify: returns once READY=1 arrives
        facts["start_seconds"] = round(time.monotonic() - started, 2)
        facts["start_returncode"] = result.returncode
        facts["after_start"] = manager.show("ser.service", "ActiveState", "SubState", "MainPID", "StatusText", "NRestarts")

        first_pid = int(facts["after_start"].get("MainPID", "0"))
        if first_pid > 0:  # else it never started, and the test shows why
            {"watchdog": hang_and_stop, "no-microphone": microphone_later, "pause": pause_and_restart}[scenario](
                manager, microphone, first_pid, facts
            )
    finally:
        manager.stop()
        microphone.kill()
    facts["manager_log"] = (workdir / "manager.log").read_text()[-3000:]
    log = workdir / "service.log"
    facts["service_log"] = log.read_text(errors="replace")[-3000:] if log.exists() else ""
    return facts


def events(manager: UserManager) -> list[dict]:
    """The event lines the service wrote to stdout so far, parsed."""
    path = manager.directory / "events.log"
    return [json.loads(line.split(" ", 1)[1]) for line in path.read_text().splitlines()] if path.exists() else []


def wait_for(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


def microphone_later(manager: UserManager, microphone: VirtualMicrophone, first_pid: int, facts: dict) -> None:
    """With no sound server, stay for twice the start timeout; then start one, play a clip, stop."""
    time.sleep(2 * START_TIMEOUT_SECONDS + 1)
    facts["without_microphone"] = manager.show("ser.service", "ActiveState", "SubState", "MainPID", "StatusText", "NRestarts")
    microphone.start()
    facts["microphone_back"] = wait_for(lambda: any(e.get("status") == "microphone_back" for e in events(manager)), 30)
    facts["with_microphone"] = manager.show("ser.service", "StatusText", "MainPID", "NRestarts")
    microphone.play(EXAMPLE)
    wait_for(lambda: any(e["type"] == "emotion" for e in events(manager)), 10)
    facts["stop_returncode"] = manager.systemctl("stop", "ser.service").returncode
    facts["events"] = events(manager)


def pause_and_restart(manager: UserManager, microphone: VirtualMicrophone, first_pid: int, facts: dict) -> None:
    """Pause, restart the unit, play a clip; then resume, play it again; stop."""
    statuses = lambda: [e.get("status") for e in events(manager)]  # noqa: E731
    wait_for(lambda: "microphone_open" in statuses(), 10)
    manager.systemctl("kill", "--signal=SIGUSR1", "ser.service")
    facts["paused"] = wait_for(lambda: "paused" in statuses(), 10)
    facts["restart_returncode"] = manager.systemctl("restart", "ser.service", timeout=30).returncode
    facts["after_restart"] = manager.show("ser.service", "MainPID", "StatusText")
    kept = lambda: sorted(str(p.relative_to(manager.directory)) for p in manager.directory.rglob("ser/paused"))  # noqa: E731
    facts["kept_while_paused"] = kept()
    wait_for(lambda: statuses().count("microphone_open") == 2, 10)
    microphone.play(EXAMPLE)
    time.sleep(3)
    manager.systemctl("kill", "--signal=SIGUSR2", "ser.service")
    wait_for(lambda: "resumed" in statuses(), 10)
    facts["kept_after_resume"] = kept()
    microphone.play(EXAMPLE)
    wait_for(lambda: any(e["type"] == "emotion" for e in events(manager)), 10)
    facts["stop_returncode"] = manager.systemctl("stop", "ser.service").returncode
    facts["events"] = events(manager)


def hang_and_stop(manager: UserManager, microphone: VirtualMicrophone, first_pid: int, facts: dict) -> None:
    """SIGSTOP the service (its loop stops sending WATCHDOG=1), wait for the restart, then stop it."""
    facts["listening"] = wait_for(lambda: manager.show("ser.service", "StatusText")["StatusText"].startswith("listening on"), 10)
    os.kill(first_pid, signal.SIGSTOP)  # the loop hangs: no more WATCHDOG=1
    hung = time.monotonic()
    while time.monotonic() - hung < 40:
        state = manager.show("ser.service", "ActiveState", "SubState", "MainPID", "NRestarts", "StatusText")
        if (
            state.get("NRestarts") == "1"
            and state.get("ActiveState") == "active"
            and state["MainPID"] not in ("0", str(first_pid))
        ):
            break
        time.sleep(0.2)
    facts["after_hang"] = state
    facts["restart_seconds"] = round(time.monotonic() - hung, 2)

    started = time.monotonic()
    facts["stop_returncode"] = manager.systemctl("stop", "ser.service").returncode
    facts["stop_seconds"] = round(time.monotonic() - started, 2)
    facts["after_stop"] = manager.show("ser.service", "ActiveState", "Result")
    facts["events"] = events(manager)


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]), VirtualMicrophone(Path(sys.argv[2])), sys.argv[3])))
