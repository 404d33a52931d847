"""structlog configuration: readable lines in a terminal, JSON lines in production."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import structlog

__all__ = ["configure_logging", "get_logger"]


class _CurrentStderr:
    """Whatever `sys.stderr` is when a line is written (it may be replaced after configuration)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure_logging(*, json: bool | None = None, level: str | None = None) -> None:
    """Configure structlog once for the process.

    `json=None` picks JSON when stderr is not a terminal or `HORDE_MODEL_REFERENCE_LOG_JSON=1`.
    """
    if json is None:
        env = os.environ.get("HORDE_MODEL_REFERENCE_LOG_JSON")
        json = env == "1" if env is not None else not sys.stderr.isatty()
    level_name = (level or os.environ.get("HORDE_MODEL_REFERENCE_LOG_LEVEL", "INFO")).upper()
    renderer: Any = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level_name)),
        logger_factory=structlog.PrintLoggerFactory(file=_CurrentStderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> Any:
    """A structlog logger bound to the module name.

    When the application has not configured structlog, logs go to stderr (never stdout, which
    belongs to the application) at the level of `HORDE_MODEL_REFERENCE_LOG_LEVEL` (default INFO).
    """
    if not structlog.is_configured():
        configure_logging()
    return structlog.get_logger(module=name)
