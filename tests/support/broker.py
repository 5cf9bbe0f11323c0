"""A real mosquitto broker on loopback, with a password file, persistence and a TLS listener, for
MQTT tests."""

from __future__ import annotations

import queue
import socket
import subprocess
import time
from pathlib import Path

from support.service_process import ServiceProcess

USERNAME, PASSWORD = "ser-device", "correct horse battery"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def make_certificates(directory: Path) -> Path:
    """A throw-away CA and a server certificate for localhost signed by it; returns the CA file."""

    def openssl(*args):
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    )
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", "server.key", "-out", "server.csr")
    (directory / "san.ext").write_text("subjectAltName=DNS:localhost\n")
    openssl(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        "server.crt",
    )
    (directory / "server.key").chmod(0o600)
    return directory / "ca.crt"


class Broker:
    """mosquitto that demands a username and password, keeps sessions across restarts, and also
    listens with TLS on ``tls_port`` (certificate for localhost, signed by ``ca_file``)."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.port = free_port()
        self.tls_port = free_port()
        self.ca_file = make_certificates(directory)
        passwords = directory / "passwords"
        subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwords), USERNAME, PASSWORD], check=True, capture_output=True)
        passwords.chmod(0o600)
        (directory / "mosquitto.conf").write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous false\npassword_file {passwords}\n"
            f"persistence true\npersistence_location {directory}/\nuser root\n"
            f"listener {self.tls_port} 127.0.0.1\ncafile {self.ca_file}\ncertfile {directory}/server.crt\n"
            f"keyfile {directory}/server.key\n"
        )
        self.process = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["mosquitto", "-c", str(self.directory / "mosquitto.conf")],
            stdout=subprocess.DEVNULL,
            stderr=open(self.directory / "mosquitto.log", "ab"),
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.03)
        raise TimeoutError("mosquitto did not start: " + (self.directory / "mosquitto.log").read_text())

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def restart_forgetting(self) -> None:
        """Restart with nothing kept (no retained messages, no sessions), as a broker without
        persistence does: the eclipse-mosquitto image's default."""
        self.stop()
        (self.directory / "mosquitto.db").unlink(missing_ok=True)
        self.start()


class Subscriber:
    """A paho client that collects (topic, payload bytes, retained) from ``topic`` at QoS 1.

    With ``persistent`` its session (subscription and undelivered messages) outlives its own
    disconnections and, with the broker's persistence, broker restarts."""

    def __init__(self, port: int, topic: str, client_id: str, persistent: bool = False):
        import paho.mqtt.client as mqtt

        self.messages: queue.Queue = queue.Queue()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=not persistent)
        self.client.username_pw_set(USERNAME, PASSWORD)
        self.client.reconnect_delay_set(1, 1)
        self.client.on_connect = lambda client, *_: client.subscribe(topic, qos=1)
        self.client.on_message = lambda client, userdata, message: self.messages.put(
            (message.topic, message.payload, bool(message.retain))
        )
        self.client.connect("127.0.0.1", port, keepalive=5)
        self.client.loop_start()

    def next(self, timeout: float = 10.0, topic_suffix: str = ""):
        """The next message whose topic ends with ``topic_suffix``."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                message = self.messages.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no MQTT message on *{topic_suffix} within {timeout} s") from None
            if message[0].endswith(topic_suffix):
                return message

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def daemon_with_mqtt(
    tmp_path, microphone, broker, tls: bool = False, extra: str = "", top: str = "", device_id: str = "mqtt"
) -> ServiceProcess:
    """The daemon on the virtual microphone with ``[mqtt]`` (plus ``extra`` lines), and ``top``
    lines before it; returned once its microphone is open."""
    credentials = tmp_path / "mqtt-credentials"
    credentials.write_text(f"{USERNAME}:{PASSWORD}\n")
    config = tmp_path / "ser.toml"
    where = (
        f'host = "localhost"\nport = {broker.tls_port}\ntls = true\nca_file = "{broker.ca_file}"\n'
        if tls
        else f'host = "127.0.0.1"\nport = {broker.port}\n'
    )
    config.write_text(
        f'device_id = "{device_id}"\n{top}[mqtt]\n{where}credentials_file = "{credentials}"\nreconnect_max_seconds = 2\n{extra}'
    )
    service = ServiceProcess("--config", str(config), env=microphone.env, log_path=tmp_path / "daemon.log")
    service.next_event(status="microphone_open")
    return service
