"""The systemd service: the installer (idempotent, and its uninstall), the real unit checked by
systemd-analyze, and a copy of it run by a real systemd user manager (READY, watchdog, stop)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from support.helpers import REPO, require_root, unavailable
from support.sound_server import require_programs
from support.user_manager import run_in_namespace

FIRMWARE = REPO / "firmware_scripts"
PREFIX, CONF_DIR, UNIT = Path("/opt/ser"), Path("/etc/ser"), Path("/etc/systemd/system/ser.service")
pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("ravdess_dir")]


def run(*command, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(c) for c in command], capture_output=True, text=True, timeout=900, check=False, env={**os.environ, **(env or {})}
    )


def device_state() -> dict:
    """What an installation consists of, for comparing two runs."""
    return {
        "unit": UNIT.read_text() if UNIT.exists() else None,
        "mqtt_dropin": (UNIT.parent / "ser.service.d" / "mqtt.conf").exists(),
        "config": (CONF_DIR / "ser.toml").read_text() if (CONF_DIR / "ser.toml").exists() else None,
        "models": sorted(str(p.relative_to(PREFIX)) for p in (PREFIX / "models").rglob("*")) if PREFIX.exists() else [],
        "users": [line.split(":")[0] for line in Path("/etc/passwd").read_text().splitlines() if line.startswith("ser:")],
    }


@pytest.mark.parametrize("architecture", ["armhf", "armel", "i386"])
def test_install_refuses_32_bit_systems_in_one_line_before_changing_anything(tmp_path, architecture):
    # dpkg answers for the userland (32-bit Raspberry Pi OS often runs a 64-bit kernel).
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "dpkg").write_text(f'#!/bin/sh\n[ "$1" = --print-architecture ] && echo {architecture}\n')
    (fake_bin / "dpkg").chmod(0o755)
    prefix = tmp_path / "opt"
    result = run(
        FIRMWARE / "install.sh",
        env={
            "PATH": f"{fake_bin}:{os.environ['PATH']}",
            "SER_PREFIX": str(prefix),
            "SER_CONF_DIR": str(tmp_path / "etc"),
            "SER_UNIT_DIR": str(tmp_path / "unit"),
        },
    )
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == (
        f"install.sh: {architecture} is not supported: no TFLite interpreter exists for it; "
        "install 64-bit Raspberry Pi OS (arm64)\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bin"]


def test_install_twice_gives_one_working_installation_then_uninstall_removes_it():
    require_root("installing the service")
    require_programs("systemd-analyze")
    if PREFIX.exists() or UNIT.exists():
        unavailable(f"{PREFIX} or {UNIT} exists on this machine: not touching a real installation")
    try:
        first = run(FIRMWARE / "install.sh", "--mqtt")
        assert first.returncode == 0, first.stderr[-3000:]
        state = device_state()
        assert state["unit"] == (FIRMWARE / "ser.service").read_text()  # the real unit, unchanged
        assert state["mqtt_dropin"] and state["users"] == ["ser"]
        assert state["config"] == (FIRMWARE / "ser.toml").read_text()
        assert "audio" in run("id", "-nG", "ser").stdout.split()
        info = run(PREFIX / "venv/bin/ser", "info", "--model", "gru-multilingual", env={"SER_MODELS_DIR": str(PREFIX / "models")})
        assert info.returncode == 0 and "verified" in info.stderr, info.stderr

        verify = run("systemd-analyze", "verify", UNIT)
        assert verify.returncode == 0 and verify.stderr.strip() == "", verify.stderr
        security = run("systemd-analyze", "security", "--offline=true", UNIT)
        exposure = re.search(r"Overall exposure level for ser\.service: ([\d.]+) (\w+)", security.stdout)
        assert exposure, security.stdout[-2000:]
        print(f"systemd-analyze security: exposure {exposure[1]} ({exposure[2]})")
        assert float(exposure[1]) < 3.0

        with open(CONF_DIR / "ser.toml", "a") as config:
            config.write('device_id = "living-room"\n')  # the owner's edit
        second = run(FIRMWARE / "install.sh")  # again, now without MQTT
        assert second.returncode == 0, second.stderr[-3000:]
        again = device_state()
        assert again["config"].endswith('device_id = "living-room"\n'), "the owner's settings were overwritten"
        assert not again["mqtt_dropin"]
        assert {k: v for k, v in again.items() if k not in ("config", "mqtt_dropin")} == {
            k: v for k, v in state.items() if k not in ("config", "mqtt_dropin")
        }
        assert run(PREFIX / "venv/bin/ser", "info", env={"SER_MODELS_DIR": str(PREFIX / "models")}).returncode == 0

        removed = run(FIRMWARE / "uninstall.sh")
        assert removed.returncode == 0, removed.stderr
        assert not PREFIX.exists() and not UNIT.exists() and device_state()["users"] == []
        assert (CONF_DIR / "ser.toml").exists(), "settings are kept without --purge"
        assert run(FIRMWARE / "uninstall.sh", "--purge").returncode == 0 and not CONF_DIR.exists()
    finally:
        if PREFIX.exists() or UNIT.exists():
            run(FIRMWARE / "uninstall.sh", "--purge")


@pytest.fixture
def outside_tmp():
    """A scratch folder in the checkout, outside /tmp (which the unit's PrivateTmp= hides) unless
    the checkout itself is there: the virtual microphone's socket and the user manager's notify
    socket must stay visible to the service."""
    directory = REPO / ".cache" / f"service-unit-{os.getpid()}"
    directory.mkdir(parents=True)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def scenario(outside_tmp, name: str) -> tuple[dict, str]:
    """Run service_unit_scenario.py's scenario ``name`` under a real systemd user manager: what it
    saw (JSON) and that, shortened, for assertion messages."""
    require_root("a systemd user manager in a private mount namespace")
    require_programs("unshare", "systemctl", "/lib/systemd/systemd", "pulseaudio", "pacat", "pactl", "paplay")
    result = run_in_namespace(
        REPO / "tests" / "support" / "service_unit_scenario.py", str(outside_tmp / "manager"), str(outside_tmp / "pulse"), name
    )
    assert result.returncode == 0, result.stderr[-3000:]
    facts = json.loads(result.stdout)
    return facts, json.dumps({k: v for k, v in facts.items() if k != "events"}, indent=1)[-4000:]


def test_the_unit_becomes_active_on_ready_is_restarted_by_the_watchdog_and_stops_fast(outside_tmp):
    facts, context = scenario(outside_tmp, "watchdog")
    assert facts["start_returncode"] == 0, context
    assert facts["after_start"]["ActiveState"] == "active" and facts["after_start"]["SubState"] == "running", context
    assert facts["after_start"]["StatusText"].startswith("running lstm-multilingual"), context  # READY: model loaded
    assert facts["listening"], context  # then the microphone opens
    # SIGSTOP hangs the loop: no WATCHDOG=1 for 2 s, so systemd kills it and starts a new one.
    assert facts["after_hang"]["NRestarts"] == "1" and facts["after_hang"]["ActiveState"] == "active", context
    assert facts["stop_returncode"] == 0 and facts["stop_seconds"] < 2.0, context
    assert facts["after_stop"] == {"ActiveState": "inactive", "Result": "success"}, context
    statuses = [event.get("status") for event in facts["events"]]
    assert statuses.count("microphone_open") == 2 and statuses[-1] == "stopped"
    print(
        f"user manager: active {facts['start_seconds']} s after start, restarted {facts['restart_seconds']} s "
        f"after the hang, stopped in {facts['stop_seconds']} s"
    )


def test_the_unit_starts_without_a_microphone_stays_up_and_listens_once_the_sound_server_comes(outside_tmp):
    facts, context = scenario(outside_tmp, "no-microphone")
    # Active through READY although no sound server runs: the model is loaded and the loop runs.
    assert facts["start_returncode"] == 0 and facts["after_start"]["ActiveState"] == "active", context
    # Twice the 3 s start timeout later: the same process, never restarted, saying what it waits for.
    waiting = facts["without_microphone"]
    assert waiting["ActiveState"] == "active" and waiting["NRestarts"] == "0", context
    assert waiting["MainPID"] == facts["after_start"]["MainPID"], context
    assert waiting["StatusText"].startswith("microphone lost: no audio input device"), context
    # The sound server comes: the same process opens it and the clip played gets its event.
    assert facts["microphone_back"] and facts["with_microphone"]["StatusText"].startswith("listening on"), context
    assert facts["with_microphone"]["MainPID"] == facts["after_start"]["MainPID"], context
    statuses = [e.get("status") for e in facts["events"] if e["type"] == "status"]
    assert statuses[:4] == ["started", "model_loaded", "microphone_lost", "microphone_back"], context
    assert [e["emotion"] for e in facts["events"] if e["type"] == "emotion"] == ["angry"], context
    assert facts["stop_returncode"] == 0, context


def test_a_pause_is_kept_in_the_state_directory_through_a_restart_of_the_unit(outside_tmp):
    facts, context = scenario(outside_tmp, "pause")
    assert facts["paused"] and facts["restart_returncode"] == 0, context
    # The unit's StateDirectory= holds the pause (a user manager's: ~/.config/ser before systemd
    # 254, ~/.local/state/ser since; the system's: /var/lib/ser) ...
    assert facts["kept_while_paused"] in ([".config/ser/paused"], [".local/state/ser/paused"]), context
    statuses = [e.get("status") for e in facts["events"] if e["type"] == "status"]
    second_run = statuses[statuses.index("stopped") + 1 :]
    # ... so the restarted service says it is paused at once, and hears nothing until resumed.
    assert second_run[:3] == ["started", "model_loaded", "paused"], context
    restarted_paused = [e for e in facts["events"] if e.get("status") == "paused"][1]
    assert restarted_paused["detail"].startswith("kept from before the restart"), context
    emotions = [e for e in facts["events"] if e["type"] == "emotion"]
    resumed = next(e for e in facts["events"] if e.get("status") == "resumed")
    assert len(emotions) == 1 and emotions[0]["sequence"] > resumed["sequence"], context
    assert facts["kept_after_resume"] == [] and facts["stop_returncode"] == 0, context
