"""What the tests share: running the CLIs and reading clips (``helpers``), the frontend
configurations they check (``configs``), and the real services the integration tests start: an
MQTT broker, a PulseAudio virtual microphone, a systemd user manager, the daemon as a process."""
