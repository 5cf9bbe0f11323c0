"""The systemd notify protocol (sd_notify(3)): READY, STATUS, WATCHDOG, RELOADING and STOPPING
datagrams to $NOTIFY_SOCKET. Without that variable (not under systemd) every call does nothing.

A few lines of socket code rather than a dependency: libsystemd's bindings need a compiler and
headers on the Pi, and the protocol is one datagram per message.
"""

from __future__ import annotations

import os
import socket
import time


class ServiceNotifier:
    """Tells systemd how the service is doing."""

    def __init__(self, environ=os.environ):
        address = environ.get("NOTIFY_SOCKET", "")
        self._address = "\0" + address[1:] if address.startswith("@") else address  # '@': abstract namespace
        usec = environ.get("WATCHDOG_USEC", "")
        pid = environ.get("WATCHDOG_PID", "")
        watched = usec.isdigit() and (not pid or pid == str(os.getpid()))
        self.watchdog_interval = int(usec) / 1e6 if watched else None
        """Seconds within which systemd expects WATCHDOG=1, or None if no watchdog is set."""
        self._last_watchdog = 0.0
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) if self._address else None
        if self._socket is not None:
            # A reader that falls behind fills the socket's queue; a blocking send would then stall
            # the processing loop itself. A message that does not fit is dropped instead.
            self._socket.setblocking(False)

    def notify(self, *fields: str) -> None:
        """Send ``KEY=value`` fields in one datagram; a vanished socket is ignored."""
        if self._socket is None:
            return
        try:
            self._socket.sendto("\n".join(fields).encode(), self._address)
        except OSError:
            pass  # systemd went away, restarts or is not reading; nothing to tell

    def ready(self, status: str) -> None:
        self.notify("READY=1", f"STATUS={status}")

    def status(self, status: str) -> None:
        self.notify(f"STATUS={status}")

    def reloading(self) -> None:
        self.notify("RELOADING=1", f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}")

    def stopping(self) -> None:
        self.notify("STOPPING=1")

    def watchdog(self) -> None:
        """Keep-alive from the processing loop, sent at most every quarter interval."""
        if self.watchdog_interval is None:
            return
        now = time.monotonic()
        if now - self._last_watchdog >= self.watchdog_interval / 4:
            self._last_watchdog = now
            self.notify("WATCHDOG=1")
