"""A real Home Assistant core for the tests, as a new user sets it up.

Installed once into a virtualenv of its own (Python 3.13, the version pinned; kept in .cache between
runs), started on loopback with a configuration of its own, onboarded over its REST API
(``/api/onboarding/users``, then ``/auth/token``) and given the MQTT integration through the
config-flow API (``/api/config/config_entries/flow``, handler ``mqtt``), the way its web page does.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import subprocess
import textwrap
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from support.broker import PASSWORD, USERNAME, Broker, free_port
from support.helpers import REPO, unavailable

VERSION = "2025.4.4"  # the newest Home Assistant core that installs on Python 3.13.0
# With what it would fetch at its first start (it runs with --skip-pip): the MQTT integration's
# requirement, and the frontend, without which it starts in recovery mode.
REQUIREMENTS = (f"homeassistant=={VERSION}", "paho-mqtt==2.1.0", "home-assistant-frontend==20250411.0")
VENV = REPO / ".cache" / f"home-assistant-{VERSION}"
DOCS_AUTOMATION = REPO / "docs" / "events.md"


def python313() -> str:
    """A Python 3.13 interpreter: $SER_PYTHON313, pyenv's, or one on the PATH."""
    pyenv_root = os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))
    candidates = [os.environ.get("SER_PYTHON313", ""), *sorted(glob.glob(f"{pyenv_root}/versions/3.13*/bin/python3.13"))]
    candidates += [shutil.which("python3.13") or ""]
    for candidate in filter(None, candidates):
        probe = subprocess.run([candidate, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True, text=True)
        if probe.returncode == 0 and probe.stdout.strip() == "(3, 13)":
            return candidate
    unavailable("Home Assistant needs Python 3.13 (pyenv's, or set SER_PYTHON313)")


def installed() -> Path:
    """The virtualenv's ``hass``, installing Home Assistant first if this machine has not yet."""
    done, wanted = VENV / "installed", " ".join(REQUIREMENTS) + "\n"
    if not done.exists() or done.read_text() != wanted:
        if not (VENV / "bin" / "python").exists():
            subprocess.run([python313(), "-m", "venv", str(VENV)], check=True)
        pip = [str(VENV / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        result = subprocess.run([*pip, *REQUIREMENTS], capture_output=True, text=True, timeout=1800)
        assert result.returncode == 0, f"installing Home Assistant failed:\n{result.stderr[-3000:]}"
        done.write_text(wanted)
    return VENV / "bin" / "hass"


def documented_automation() -> str:
    """The automation in docs/events.md, as the list an automations.yaml holds."""
    lines = DOCS_AUTOMATION.read_text().splitlines()
    start = lines.index("    automation:") + 1
    block = []
    for line in lines[start:]:
        if line and not line.startswith("      "):
            break
        block.append(line)
    return textwrap.dedent("\n".join(block)).strip() + "\n"


# The light the documented automation turns on: a template light whose turning on counts in a
# counter, so the test sees how often the automation fired.
CONFIGURATION = """\
homeassistant:
  name: edge-ser test
  latitude: 52.5
  longitude: 13.4
  elevation: 0
  unit_system: metric
  time_zone: UTC
  country: DE
  currency: EUR
http:
  server_host: 127.0.0.1
  server_port: {port}
api:
config:
onboarding:
automation: !include automations.yaml
counter:
  soft_light:
    initial: 0
light:
  - platform: template
    lights:
      living_room:
        turn_on:
          - action: counter.increment
            target: {{entity_id: counter.soft_light}}
        turn_off: []
logger:
  default: warning
"""


class HomeAssistant:
    """Home Assistant core on loopback, its configuration and log in ``directory``."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.token = ""
        self.process: subprocess.Popen | None = None
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "configuration.yaml").write_text(CONFIGURATION.format(port=self.port))
        (directory / "automations.yaml").write_text(documented_automation())

    # -- the process -----------------------------------------------------------------------

    def start(self, timeout: float = 180.0) -> None:
        """Start it and wait until its HTTP API answers."""
        self.process = subprocess.Popen(
            [str(installed()), "-c", str(self.directory), "--skip-pip"],
            stdout=subprocess.DEVNULL,
            stderr=open(self.directory / "stderr.log", "ab"),
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"Home Assistant exited:\n{self.log()[-3000:]}"
            try:
                if self._request("GET", "/api/onboarding", authorised=False)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"Home Assistant did not answer within {timeout:.0f} s:\n{self.log()[-3000:]}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def restart(self) -> None:
        self.stop()
        self.start()

    def log(self) -> str:
        path = self.directory / "home-assistant.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # -- set-up, as a new user's browser does it ---------------------------------------------

    def onboard(self) -> None:
        """Create the owner account and take an access token for the API."""
        client_id = f"{self.base}/"
        status, user = self._request(
            "POST",
            "/api/onboarding/users",
            {"client_id": client_id, "name": "Test", "username": "test", "password": "test-password-1", "language": "en"},
            authorised=False,
        )
        assert status == 200, user
        form = {"grant_type": "authorization_code", "code": user["auth_code"], "client_id": client_id}
        status, tokens = self._request("POST", "/auth/token", form, authorised=False, as_form=True)
        assert status == 200, tokens
        self.token = tokens["access_token"]

    def add_mqtt(self, broker: Broker) -> None:
        """The MQTT integration with the test broker, through the config flow its page runs."""
        status, flow = self._request("POST", "/api/config/config_entries/flow", {"handler": "mqtt"})
        assert status == 200 and flow.get("step_id") == "broker", flow
        answer = {"broker": "127.0.0.1", "port": broker.port, "username": USERNAME, "password": PASSWORD}
        status, entry = self._request("POST", f"/api/config/config_entries/flow/{flow['flow_id']}", answer)
        assert status == 200 and entry.get("type") == "create_entry", entry

    # -- what it shows -------------------------------------------------------------------------

    def states(self) -> dict[str, dict]:
        """entity id → its state object (state, attributes, last_changed, ...)."""
        status, states = self._request("GET", "/api/states")
        assert status == 200, states
        return {state["entity_id"]: state for state in states}

    def wait_for(self, condition, timeout: float = 30.0, what: str = "") -> dict[str, dict]:
        """The states once ``condition(states)`` holds; fails after ``timeout`` seconds, showing them."""
        deadline = time.monotonic() + timeout
        while True:
            states = self.states()
            if condition(states):
                return states
            if time.monotonic() > deadline:
                raise AssertionError(f"{what or 'condition'} not within {timeout:.0f} s: {json.dumps(states, indent=1)[-4000:]}")
            time.sleep(0.25)

    def call(self, domain: str, service: str, data: dict) -> None:
        status, answer = self._request("POST", f"/api/services/{domain}/{service}", data)
        assert status == 200, answer

    def _request(self, method: str, path: str, body: dict | None = None, authorised: bool = True, as_form: bool = False):
        headers = {"Authorization": f"Bearer {self.token}"} if authorised else {}
        data = None
        if body is not None:
            data = urllib.parse.urlencode(body).encode() if as_form else json.dumps(body).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded" if as_form else "application/json"
        request = urllib.request.Request(self.base + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode(errors="replace")
