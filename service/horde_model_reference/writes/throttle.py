"""Per-caller rate limits of the write path, with the `limits` library (moving windows, in memory).

Two settings, each in `limits` notation (`30/minute`, `5/second;100/hour`; empty for none):
`propose_rate` bounds proposals and `command_rate` every command, per caller (its actor:
`key:<hash prefix>` or `horde:<user id>`). A caller over a limit gets `RateLimitedError`
(`rate_limited`, HTTP 429 with `Retry-After`); the refused command does not count.
"""

from __future__ import annotations

import time

from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from horde_model_reference.errors import SettingsError
from horde_model_reference.writes.errors import RateLimitedError
from horde_model_reference.writes.settings import WriteSettings

__all__ = ["Throttle"]

_VARIABLE = "HORDE_MODEL_REFERENCE_WRITES__"


def _rates(setting: str, value: str) -> tuple[RateLimitItem, ...]:
    if not value.strip():
        return ()
    try:
        return tuple(parse_many(value))
    except ValueError:
        raise SettingsError(
            _VARIABLE + setting.upper(), value, "rates such as '30/minute' or '5/second;100/hour'"
        ) from None


class Throttle:
    """Counts each caller's commands and refuses those over the configured rates."""

    def __init__(self, settings: WriteSettings) -> None:
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._rates = {
            "propose": _rates("propose_rate", settings.propose_rate),
            "*": _rates("command_rate", settings.command_rate),
        }

    def check(self, actor: str, command: str) -> None:
        """Count one `command` of `actor`; raises `RateLimitedError` (counting nothing) when over a limit."""
        scoped = [("*", item) for item in self._rates["*"]]
        if command == "propose":
            scoped += [("propose", item) for item in self._rates["propose"]]
        for scope, item in scoped:
            if not self._limiter.test(item, scope, actor):
                reset = self._limiter.get_window_stats(item, scope, actor).reset_time
                raise RateLimitedError(actor, str(item), max(reset - time.time(), 1.0))
        for scope, item in scoped:
            self._limiter.hit(item, scope, actor)
