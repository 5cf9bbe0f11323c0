"""The typed errors the device code raises; each message names the input and the reason."""


class SerError(Exception):
    """Base class: anything the CLI reports as one line instead of a traceback."""


class AudioError(SerError):
    """An audio input that cannot be used: missing, empty, corrupt, not audio, or too short."""


class BundleError(SerError):
    """A model bundle that is missing, malformed, tampered with, or not runnable here."""


class SettingsError(SerError):
    """A configuration file or override that cannot be used."""


class MicrophoneError(SerError):
    """The microphone cannot be opened, or stopped delivering audio."""


class MissingPyAudio(SerError):
    """PyAudio (the `mic` extra) is not installed: nothing to retry, the installation is incomplete."""
