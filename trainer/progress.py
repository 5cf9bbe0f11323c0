"""What the trainer says while it works: one line per message on standard output, prefixed
``[ser-train]`` (flushed at once, so a long run can be followed in a log), and counters for long
loops over clips."""

from __future__ import annotations

from collections.abc import Callable


def say(message: str) -> None:
    """Print one progress line."""
    print(f"[ser-train] {message}", flush=True)


def counter(what: str, every: int = 100) -> Callable[[int, int], None]:
    """A ``report(done, total)`` callback that says ``what: done/total`` every ``every`` items and at the end."""

    def report(done: int, total: int) -> None:
        if done == total or done % every == 0:
            say(f"{what}: {done}/{total}")

    return report
