"""Keys and tokens never reach the logs: a logging filter that blanks them in the request
lines of uvicorn's access log (which prints the query string, where ``?access_token=`` and
Open311's ``?api_key=`` travel) and in any other record of the server's loggers."""

from __future__ import annotations

import logging
import re

SECRET_PARAMS = re.compile(r"(?i)((?:^|[?&;])(?:access_token|api_key|key|token)=)[^&;#\s\"]*")
"""A query parameter that carries a credential, up to its end."""
KEY_TEXT = re.compile(r"chx_[A-Za-z0-9_-]{6,}")
"""A CityHex API key anywhere in a text."""
JWT_TEXT = re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
"""A JWT (a token) anywhere in a text."""
REDACTED = "[redacted]"
LOGGERS = ("uvicorn.access", "uvicorn.error", "uvicorn", "cityhex")


def redact(text: str) -> str:
    """``text`` with credentials in query parameters, keys and tokens blanked."""
    text = SECRET_PARAMS.sub(lambda m: m[1] + REDACTED, text)
    text = KEY_TEXT.sub("chx_" + REDACTED, text)
    return JWT_TEXT.sub(REDACTED, text)


class RedactSecrets(logging.Filter):
    """Blanks credentials in a record's message and its text arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact the record in place; always keep it."""
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        return True


def install_log_redaction() -> None:
    """Add the filter to uvicorn's and CityHex's loggers (once each)."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactSecrets) for f in logger.filters):
            logger.addFilter(RedactSecrets())
