"""Logging to stderr only (stdout carries the MCP protocol), with every secret masked at the logging boundary."""

from __future__ import annotations

import logging
import sys


class RedactingFilter(logging.Filter):
    """Replaces every secret value in a log record with a mask: the logging boundary keeps tokens out of logs."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self._secrets = [s for s in secrets if len(s) >= 6]

    def _mask(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "[REDACTED]")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage() if self._secrets else ""
        if self._secrets and (self._mask(message) != message or record.exc_info):
            if record.exc_info and not record.exc_text:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_text = self._mask(record.exc_text) if record.exc_text else record.exc_text
            record.msg, record.args = self._mask(message), None
        return True


def setup_logging(level: str = "INFO", secrets: list[str] | None = None) -> None:
    """Log to stderr only (stdout carries the MCP protocol), with secrets redacted."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter(secrets or []))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level if level in logging.getLevelNamesMapping() else "INFO")
    # httpx2 logs every request URL at INFO; keep it quieter.
    logging.getLogger("httpx2").setLevel(logging.WARNING)
    logging.getLogger("httpcore2").setLevel(logging.WARNING)
