"""What the listening service keeps across restarts: whether listening is paused.

A pause is a privacy promise, so it holds through a restart, a watchdog kill and a reboot, not
only through a reload (SIGHUP). It is a file in the service's state directory: systemd gives one
to the unit (``StateDirectory=ser``: /var/lib/ser, in $STATE_DIRECTORY); ``state_directory`` in
ser.toml names another; with neither, nothing is kept and the service starts listening.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)
PAUSED = "paused"  # the file's name: present while listening is paused


class PauseFile:
    """Whether the service was paused when it last ran, kept in ``directory`` (None: not kept)."""

    def __init__(self, directory: str | None):
        self.path = Path(directory) / PAUSED if directory else None

    def paused(self) -> bool:
        """Whether the pause was kept (by this service's last run, or before a reboot)."""
        return self.path is not None and self.path.exists()

    def keep(self, paused: bool) -> None:
        """Keep ``paused`` for the next start; a directory that cannot be written is logged, not fatal."""
        if self.path is None:
            return
        try:
            if paused:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.path.touch()
            else:
                self.path.unlink(missing_ok=True)
            directory = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(directory)  # the file's presence or absence reaches the disk before a power cut
            finally:
                os.close(directory)
        except OSError as error:
            log.warning("cannot keep the pause in %s (%s): a restart will start listening", self.path.parent, error.strerror)
