"""What the subcommands share: reaching a site, progress display, the JSON summary."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, TextIO
from urllib.parse import urlsplit

from ..core.ratelimit import check_rate
from ..errors import AuthenticationError, ConfigurationError, PermissionDeniedError

if TYPE_CHECKING:
    from ..client import InventoryClient

__all__ = [
    "REFUSED",
    "ProgressLine",
    "TargetConfig",
    "add_output_options",
    "add_target_options",
    "check_reachable",
    "emit_summary",
    "fail",
    "make_client",
    "parse_rate",
    "plain",
    "refused_credentials",
    "target_from_args",
    "unreachable",
]

logger = logging.getLogger("wixinv_async.cli")

_ENV = {
    "base_url": "WIX_BASE_URL",
    "api_key": "WIX_API_KEY",
    "site_id": "WIX_SITE_ID",
    "app_id": "WIX_APP_ID",
    "app_secret": "WIX_APP_SECRET",
    "instance_id": "WIX_INSTANCE_ID",
}


def add_target_options(parser: argparse.ArgumentParser) -> None:
    """Flags that reach a site; each falls back to its WIX_* environment variable."""
    group = parser.add_argument_group(
        "site",
        "Credentials come from these flags or the WIX_* environment variables "
        "(prefer the variables: flags show in the process list). Secrets are never printed.",
    )
    group.add_argument(
        "--base-url", help="API host [WIX_BASE_URL, default https://www.wixapis.com]"
    )
    group.add_argument("--api-key", help="API key [WIX_API_KEY]")
    group.add_argument("--site-id", help="site id, with --api-key [WIX_SITE_ID]")
    group.add_argument("--app-id", help="app id for OAuth [WIX_APP_ID]")
    group.add_argument("--app-secret", help="app secret for OAuth [WIX_APP_SECRET]")
    group.add_argument("--instance-id", help="app instance id for OAuth [WIX_INSTANCE_ID]")
    group.add_argument(
        "--rate-limit",
        default="200/60",
        help="requests per period the client allows itself, e.g. 200/60; 'off' for none",
    )


def add_output_options(parser: argparse.ArgumentParser) -> None:
    from . import add_verbose_option

    parser.add_argument("--quiet", action="store_true", help="no progress display")
    add_verbose_option(parser, default=argparse.SUPPRESS)  # also after the subcommand
    parser.add_argument(
        "--json",
        action="store_true",
        help="print a machine-readable JSON summary on stdout; an error too is one JSON object, "
        '{"error": ..., "exit_code": ...}',
    )


@dataclass(frozen=True)
class TargetConfig:
    """Where and as whom to connect. ``repr`` never shows the secrets."""

    base_url: str
    api_key: str | None = field(default=None, repr=False)
    site_id: str | None = None
    app_id: str | None = None
    app_secret: str | None = field(default=None, repr=False)
    instance_id: str | None = None
    rate_limit: tuple[int, float] | None = (200, 60.0)

    @property
    def uses_oauth(self) -> bool:
        return self.api_key is None


def target_from_args(
    args: argparse.Namespace, env: Mapping[str, str] = os.environ, *, many_sites: bool = False
) -> TargetConfig:
    """Merge flags over environment variables; refuse incomplete credentials (``many_sites``:
    credentials that reach any site, the site id or instance id only a default)."""

    def pick(name: str) -> str | None:
        value = getattr(args, name, None) or env.get(_ENV[name])
        return value or None

    config = TargetConfig(
        base_url=pick("base_url") or "https://www.wixapis.com",
        api_key=pick("api_key"),
        site_id=pick("site_id"),
        app_id=pick("app_id"),
        app_secret=pick("app_secret"),
        instance_id=pick("instance_id"),
        rate_limit=parse_rate(args.rate_limit),
    )
    if many_sites:
        _check_many_sites_credentials(config)
    else:
        _check_credentials(config)
    return config


def _check_many_sites_credentials(config: TargetConfig) -> None:
    if config.api_key is None and (config.app_id is None or config.app_secret is None):
        raise ConfigurationError(
            "a file that names sites needs --api-key (its sites are site ids) or --app-id and "
            "--app-secret (its sites are app instance ids), or the WIX_* environment variables"
        )


def _check_credentials(config: TargetConfig) -> None:
    if config.api_key is not None:
        if config.site_id is None:
            raise ConfigurationError("--api-key needs --site-id (or WIX_SITE_ID)")
        return
    missing = [
        flag
        for flag, value in (
            ("--app-id", config.app_id),
            ("--app-secret", config.app_secret),
            ("--instance-id", config.instance_id),
        )
        if value is None
    ]
    if len(missing) == 3:
        raise ConfigurationError(
            "no credentials: give --api-key and --site-id, or --app-id, --app-secret and "
            "--instance-id (or the WIX_* environment variables)"
        )
    if missing:
        raise ConfigurationError(f"OAuth credentials incomplete: missing {', '.join(missing)}")


def parse_rate(text: str | None) -> tuple[int, float] | None:
    """``"200/60"`` -> (200, 60.0); ``"off"`` or None -> no limit."""
    if text is None or text.lower() in {"off", "none", "0"}:
        return None
    count, _, period = text.partition("/")
    try:
        parsed = (int(count), float(period or 1))
    except ValueError:
        raise ConfigurationError(
            f"--rate-limit={text!r}: expected N/SECONDS, e.g. 200/60"
        ) from None
    if parsed[0] < 1 or not parsed[1] > 0:
        raise ConfigurationError(f"--rate-limit={text!r}: both numbers must be positive")
    check_rate(*parsed, source=f"--rate-limit={text!r}")
    return parsed


def emit_summary(summary: Mapping[str, Any], *, as_json: bool, out: TextIO | None = None) -> None:
    """The closing summary: one JSON object, or aligned ``key: value`` lines, on ``out`` (default:
    ``sys.stdout`` as it is now, not as it was at import, so ``redirect_stdout`` works)."""
    out = out or sys.stdout
    if as_json:
        out.write(json.dumps(summary, sort_keys=True, default=str) + "\n")
        return
    width = max((len(k) for k in summary), default=0)
    for key, value in summary.items():
        out.write(f"{key.replace('_', ' '):<{width}}  {plain(value)}\n")


def plain(value: object) -> str:
    """A summary value as a person reads it: ``committed 3, rejected 1`` for a mapping (not a
    Python dict's repr), ``none`` for an empty one, ``-`` for no value."""
    if value is None:
        return "-"
    if isinstance(value, Mapping):
        return ", ".join(f"{k} {plain(v)}" for k, v in value.items()) or "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def fail(
    command: str, error: object, code: int, *, as_json: bool, out: TextIO | None = None
) -> int:
    """Report an error that ends a command: a line on stderr and, with ``--json``, one JSON
    object on ``out`` (default stdout), since a script reading the result must not get nothing.
    Returns the exit code."""
    print(f"wixinv-async {command}: {error}", file=sys.stderr)
    if as_json:
        emit_summary({"error": str(error), "exit_code": code}, as_json=True, out=out)
    return code


REFUSED: Final = (AuthenticationError, PermissionDeniedError)
"""A 401 or 403 from the site: exit 2, a configuration error, like missing credentials."""


def refused_credentials(error: Exception) -> ConfigurationError:
    """The configuration error a 401 or 403 amounts to."""
    return ConfigurationError(f"the site refused the credentials: {error}")


def unreachable(config: TargetConfig, error: object) -> ConfigurationError:
    """The configuration error a site that cannot be reached amounts to, naming its address
    (the client's messages name only the path)."""
    host, port = _address(config.base_url)
    return ConfigurationError(
        f"cannot reach {host}:{port} ({config.base_url}; check --base-url / WIX_BASE_URL): {error}"
    )


def _address(base_url: str) -> tuple[str, int | str]:
    parts = urlsplit(base_url)
    try:
        port: int | str = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:  # out of range: the URL as given says enough
        port = "?"
    return parts.hostname or base_url, port


_PROBE_SECONDS: Final = 10.0


async def check_reachable(config: TargetConfig) -> None:
    """Open (and close) one TCP connection to the site, so that a wrong host or a dead port
    stops a command at once with its address, not after every request's retries. It sends
    nothing, so it costs none of the site's request budget."""
    host, port = _address(config.base_url)
    if not isinstance(port, int):
        raise unreachable(config, "not a valid port")
    try:
        async with asyncio.timeout(_PROBE_SECONDS):
            _, writer = await asyncio.open_connection(host, port)
    except (OSError, TimeoutError) as exc:
        raise unreachable(config, str(exc) or f"no answer in {_PROBE_SECONDS:.0f} s") from None
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    logger.debug("site %s:%s reachable", host, port)


class ProgressLine:
    """A progress display on stderr: rich's bar when rich is installed and stderr is a terminal,
    else a plain line at most every ``interval`` seconds; nothing at all when ``quiet``."""

    def __init__(self, description: str, *, total: int | None, quiet: bool, interval: float = 1.0):
        self._description = description
        self._total = total
        self._quiet = quiet
        self._interval = interval
        self._last = 0.0
        self._started = time.monotonic()
        self._rich: Any = None
        self._task: Any = None
        if not quiet and sys.stderr.isatty():
            self._rich, self._task = _start_rich(description, total)

    def update(self, done: int, **fields: object) -> None:
        if self._quiet:
            return
        if self._rich is not None:
            self._rich.update(
                self._task, completed=done, fields=self._rate(done) + _fields_text(fields)
            )
            return
        now = time.monotonic()
        if now - self._last >= self._interval:
            self._last = now
            self._print(done, fields)

    def close(self, done: int, **fields: object) -> None:
        if self._quiet:
            return
        if self._rich is not None:
            self._rich.update(
                self._task, completed=done, fields=self._rate(done) + _fields_text(fields)
            )
            self._rich.stop()
            return
        self._print(done, fields)

    def _rate(self, done: int) -> str:
        return f"{done / max(time.monotonic() - self._started, 1e-9):.0f}/s "

    def _print(self, done: int, fields: Mapping[str, object]) -> None:
        elapsed = max(time.monotonic() - self._started, 1e-9)
        total = f"/{self._total}" if self._total is not None else ""
        eta = ""
        if self._total and done:
            eta = f" eta {max(self._total - done, 0) * elapsed / done:.0f}s"
        sys.stderr.write(
            f"{self._description}: {done}{total} ({done / elapsed:.0f}/s){eta} "
            f"{_fields_text(fields)}\n"
        )


def _fields_text(fields: Mapping[str, object]) -> str:
    return " ".join(f"{k.replace('_', ' ')} {v}" for k, v in fields.items())


def _start_rich(description: str, total: int | None) -> tuple[Any, Any]:
    try:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeRemainingColumn,
        )
    except ImportError:
        return None, None
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[fields]}"),
        TimeRemainingColumn(),
        transient=False,
    )
    progress.start()
    task = progress.add_task(description, total=total, fields="")
    return progress, task


def make_client(config: TargetConfig) -> InventoryClient:
    """An InventoryClient for a configured target (not yet entered)."""
    from ..auth import ApiKeyAuth, AppOAuth
    from ..client import InventoryClient
    from ..transport import RateLimit

    auth: ApiKeyAuth | AppOAuth
    if config.api_key is not None:
        auth = ApiKeyAuth(config.api_key, site_id=config.site_id)
    else:
        assert config.app_id and config.app_secret and config.instance_id
        auth = AppOAuth(config.app_id, config.app_secret, config.instance_id)
    rate = RateLimit(*config.rate_limit) if config.rate_limit else None
    logger.info(
        "site %s, %s, pacing %s",
        config.base_url,
        "OAuth app" if config.uses_oauth else "API key",  # never the secrets themselves
        f"{rate.requests}/{rate.period:g}s" if rate else "off",
    )
    return InventoryClient(auth, base_url=config.base_url, rate_limit=rate)
