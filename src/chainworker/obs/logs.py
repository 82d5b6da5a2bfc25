"""Structured logs: structlog over the standard library, configured once per process.

`configure_logging` routes both structlog loggers and plain `logging` loggers
(arq, asyncpg, uvicorn when it propagates) through one handler: JSON lines when
the stream is not a terminal, a readable console format when it is.

Context (tenant_id, request_id, ticket_id, signature, attempt, job_id) is held
in one context variable, so it follows the asyncio task that bound it: bind it with
`log_context(...)` around a job or a request. (structlog's own `bound_contextvars`
copies and walks the whole context on every entry: bound around every job, that was
about 3.5% of a busy worker. Fields bound through structlog's API still show.)

Secrets never reach the output: the last processor before rendering replaces
every registered secret (exact values, and occurrences inside longer strings)
and anything that decodes to a valid Solana keypair (base58 string or a JSON
array of 64 bytes) with "[redacted]". Register the settings' secrets at start
with `register_settings_secrets(settings)` and any key loaded later with
`register_secret`.

Exceptions are rendered as plain tracebacks, never with local variables (which hold
keys and seeds). Anything that shows a URL shows `redact_url(url)`: scheme, host and port.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from types import MappingProxyType
from typing import Any, Literal, TextIO
from urllib.parse import parse_qsl, urlsplit

import structlog
from pydantic import BaseModel, SecretStr
from solders.keypair import Keypair
from structlog.typing import EventDict, Processor, WrappedLogger

LogFormat = Literal["auto", "json", "console"]
REDACTED = "[redacted]"
CONTEXT_KEYS: tuple[str, ...] = (
    "tenant_id",
    "request_id",
    "ticket_id",
    "signature",
    "attempt",
    "job_id",
)
# Shorter secrets are redacted only on exact match: as substrings they would mangle
# ordinary words.
_MIN_SUBSTRING_SECRET = 8
_HANDLER_NAME = "chainworker"
_CHATTY_LOGGERS = ("httpx", "httpcore", "h2", "hpack")

# A 64-byte value is 86-88 base58 characters (fewer with leading zero bytes).
_BASE58_TOKEN = re.compile(
    r"(?<![1-9A-HJ-NP-Za-km-z])[1-9A-HJ-NP-Za-km-z]{80,90}(?![1-9A-HJ-NP-Za-km-z])"
)
_BYTE_ARRAY = re.compile(r"\[\s*\d{1,3}(?:\s*,\s*\d{1,3}){63}\s*\]")


class _SecretRegistry:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: frozenset[str] = frozenset()
        self._pattern: re.Pattern[str] | None = None

    def add(self, value: str) -> None:
        if not value:
            return
        with self._lock:
            values = self._values | {value}
            long_ones = sorted((v for v in values if len(v) >= _MIN_SUBSTRING_SECRET), key=len)
            self._values = values
            self._pattern = (
                re.compile("|".join(re.escape(v) for v in reversed(long_ones)))
                if long_ones
                else None
            )

    def clear(self) -> None:
        with self._lock:
            self._values = frozenset()
            self._pattern = None

    def redact_text(self, text: str) -> str:
        if text in self._values:
            return REDACTED
        pattern = self._pattern
        if pattern is not None:
            text = pattern.sub(REDACTED, text)
        if len(text) >= 80:
            text = _BASE58_TOKEN.sub(_redact_if_keypair_base58, text)
        if "[" in text:
            text = _BYTE_ARRAY.sub(_redact_if_keypair_array, text)
        return text


def _is_keypair(raw: bytes) -> bool:
    try:
        Keypair.from_bytes(raw)
    except ValueError:
        return False
    return True


def _redact_if_keypair_base58(match: re.Match[str]) -> str:
    token = match.group(0)
    try:
        Keypair.from_base58_string(token)
    except ValueError:
        return token  # e.g. a transaction signature: 64 bytes, but not a keypair
    return REDACTED


def _redact_if_keypair_array(match: re.Match[str]) -> str:
    numbers = [int(n) for n in re.findall(r"\d+", match.group(0))]
    if all(n < 256 for n in numbers) and _is_keypair(bytes(numbers)):
        return REDACTED
    return match.group(0)


_SECRETS = _SecretRegistry()


def register_secret(value: str | SecretStr | None) -> None:
    """Never print this value (or text containing it) in a log line."""
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if value:
        _SECRETS.add(value)


def _url_secrets(url: str) -> list[str]:
    """The password and query-string values of a URL (RPC providers put API keys there)."""
    try:
        parts = urlsplit(url)
        found = [parts.password] if parts.password else []
    except ValueError:
        return []
    found.extend(value for _, value in parse_qsl(parts.query) if value)
    return found


def redact_url(url: str) -> str:
    """A URL as shown in errors, logs and output: scheme://host[:port] only.

    Credentials, path, query and fragment are left out (RPC providers put API keys in
    paths and queries); text that does not parse as a URL is shown as "[redacted]".
    """
    text = url.strip()
    try:
        parts = urlsplit(text)
        host = parts.hostname
    except ValueError:
        return REDACTED
    if "://" not in text or not re.fullmatch(r"[a-z][a-z0-9+.-]*", parts.scheme):
        return REDACTED
    if host is None:
        return f"{parts.scheme}://"  # e.g. a PostgreSQL DSN naming a socket directory
    try:
        port = parts.port
    except ValueError:
        port = None  # not a number: possibly part of a mistyped secret, so left out
    shown_host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{shown_host}" + ("" if port is None else f":{port}")


def register_settings_secrets(settings: BaseModel) -> None:
    """Register every SecretStr field of the settings, and passwords/keys inside URL fields."""
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        values = value if isinstance(value, list) else [value]
        for item in values:
            if isinstance(item, SecretStr):
                register_secret(item)
            elif isinstance(item, str) and "://" in item:
                for secret in _url_secrets(item):
                    register_secret(secret)


def clear_registered_secrets() -> None:
    _SECRETS.clear()


def _redact(value: Any) -> Any:
    if isinstance(value, str):
        return _SECRETS.redact_text(value)
    if isinstance(value, SecretStr):
        return REDACTED
    if isinstance(value, dict):
        return {key: _redact(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        if len(value) == 64 and all(isinstance(n, int) and 0 <= n < 256 for n in value):
            if _is_keypair(bytes(value)):
                return REDACTED
        return [_redact(item) for item in value]
    if isinstance(value, bytes) and len(value) == 64 and _is_keypair(value):
        return REDACTED
    return value


def redact_secrets(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """structlog processor: replace secrets and key material anywhere in the event."""
    return {key: _redact(value) for key, value in event_dict.items()}


# The fields of `log_context` and `bind_log_context`, as one mapping per task.
_NO_CONTEXT: Mapping[str, object] = MappingProxyType({})
_LOG_CONTEXT: ContextVar[Mapping[str, object]] = ContextVar(
    "chainworker_log_context", default=_NO_CONTEXT
)


@contextmanager
def log_context(
    *,
    tenant_id: object = None,
    request_id: object = None,
    ticket_id: object = None,
    signature: object = None,
    attempt: int | None = None,
    job_id: object = None,
) -> Iterator[None]:
    """Bind the known context fields (those not None) for the enclosed code and its logs."""
    fields = _context_fields(
        tenant_id=tenant_id,
        request_id=request_id,
        ticket_id=ticket_id,
        signature=signature,
        attempt=attempt,
        job_id=job_id,
    )
    token = _LOG_CONTEXT.set({**_LOG_CONTEXT.get(), **fields})
    try:
        yield
    finally:
        _LOG_CONTEXT.reset(token)


def bind_log_context(**fields: object) -> None:
    """Bind context fields until cleared (for code that cannot use a `with` block)."""
    _LOG_CONTEXT.set({**_LOG_CONTEXT.get(), **_context_fields(**fields)})


def _merge_log_context(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """structlog processor: the bound context fields, under what the event itself says."""
    for key, value in _LOG_CONTEXT.get().items():
        event_dict.setdefault(key, value)
    return event_dict


def _context_fields(**fields: object) -> dict[str, object]:
    """Known keys only; ids (UUIDs and the like) as strings; None left out."""
    unknown = set(fields) - set(CONTEXT_KEYS)
    if unknown:
        raise ValueError(f"unknown log context keys: {', '.join(sorted(unknown))}")
    return {
        key: value if isinstance(value, int | str) else str(value)
        for key, value in fields.items()
        if value is not None
    }


def clear_log_context() -> None:
    _LOG_CONTEXT.set(_NO_CONTEXT)
    structlog.contextvars.clear_contextvars()


def _drop_color_message(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    # uvicorn adds a duplicate of the message with ANSI colours.
    event_dict.pop("color_message", None)
    return event_dict


def _renderer(fmt: LogFormat, stream: TextIO) -> Processor:
    if fmt == "console" or (fmt == "auto" and stream.isatty()):
        # The default formatter is rich's, with local variables: they hold keys and seeds.
        return structlog.dev.ConsoleRenderer(
            colors=stream.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
    return structlog.processors.JSONRenderer()


def configure_logging(
    level: str = "INFO", fmt: LogFormat = "auto", stream: TextIO | None = None
) -> None:
    """Send every log record of the process through one structlog formatter on `stream`.

    Calling it again replaces the previous configuration (tests point it at a buffer).
    """
    stream = stream if stream is not None else sys.stderr
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        _merge_log_context,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _drop_color_message,
    ]
    structlog.configure(
        processors=[
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            # Tracebacks become text before redaction, so it sees them too.
            structlog.processors.format_exc_info,
            redact_secrets,
            _renderer(fmt, stream),
        ],
    )
    handler = logging.StreamHandler(stream)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # HTTP clients log every request at INFO: one line per RPC call drowns the rest.
    for name in _CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))


def configure_from_settings(settings: BaseModel) -> None:
    """Logging as the settings say, with their secrets registered: first thing in a process."""
    chosen = settings.model_dump(include={"log_level", "log_format"})
    configure_logging(chosen.get("log_level", "INFO"), chosen.get("log_format", "auto"))
    register_settings_secrets(settings)


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger
