"""The emulator's command-line options, parsed into an `EmulatorConfig` and rendered back.

One table drives both directions, so `EmulatorProcess` can start a child with exactly the
configuration a test built in Python. The API key is the exception: it comes from ``--api-key`` or
the ``WAVESPEED_API_KEY`` environment variable and is never rendered into a command line.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wavespeed_emulator.config import EmulatorConfig
from wavespeed_emulator.faults import FaultConfig
from wavespeed_emulator.routes import API_ROUTES

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

API_KEY_VARIABLE = "WAVESPEED_API_KEY"


@dataclass(frozen=True)
class _Option:
    """A command-line flag for one config field: how to parse its text and how to render it back."""

    field: str
    help: str
    parse: Callable[[str], Any] = str
    render: Callable[[Any], str] = str

    def flag(self, prefix: str) -> str:
        return f"--{prefix}{self.field.replace('_', '-')}"

    def described(self, default: Any) -> str:
        """The help text with the default as it would be typed; argparse needs ``%`` doubled."""
        shown = "none" if default is None else self.render(default) or "empty"
        return f"{self.help} (default: {shown})".replace("%", "%%")


def _seconds_range(text: str) -> tuple[float, float]:
    """``S`` (always S seconds) or ``MIN:MAX`` (drawn per prediction)."""
    low, _, high = text.partition(":")
    try:
        return float(low), float(high or low)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected SECONDS or MIN:MAX, got {text!r}") from None


def _comma_list(text: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in text.split(",") if item.strip())


_SERVER_OPTIONS = (
    _Option("host", "interface to bind; loopback unless you mean to expose the emulator"),
    _Option("port", "port to listen on; 0 picks a free one (the listening line names it)", int),
    _Option(
        "data_dir",
        "where uploads, outputs, predictions and the ledger are kept, surviving a restart; "
        "a temporary directory if absent (the account then lives as long as the process)",
        Path,
    ),
    _Option("public_base_url", "base of generated URLs; the request's Host header if absent"),
    _Option("queue_seconds", "seconds a prediction stays 'created' before 'processing'", float),
    _Option(
        "prediction_seconds",
        "processing seconds of each prediction: S, or MIN:MAX drawn with the seed",
        _seconds_range,
        lambda value: f"{value[0]}:{value[1]}",
    ),
    _Option("sync_wait_seconds", "how long a sync-mode submit waits before answering 5004", float),
    _Option("balance", "account balance in USD reported by /api/v3/balance", float),
    _Option(
        "price_per_submit", "USD a prediction costs when it is not priced by length (image, unmeasured media)", float
    ),
    _Option("price_per_second", "USD a lipsync costs per second of its output", float),
    _Option("discount_rate", "the account's discount, 0 to 1, taken off every charge", float),
    _Option(
        "insufficient_balance_status",
        "HTTP status refusing a submit the balance cannot cover; 0 accepts it (the balance goes negative)",
        int,
    ),
    _Option("insufficient_balance_message", "the message of that refusal"),
    _Option("webhook_attempts", "delivery attempts per webhook", int),
    _Option("webhook_retry_seconds", "pause before the second webhook attempt, growing linearly", float),
    _Option("seed", "seed of every random draw (durations and faults)", int),
    _Option("backlog", "listen backlog; raise it for thousands of clients connecting at once", int),
)

_FAULT_OPTIONS = (
    _Option("rate_429", "probability of a 429 without Retry-After", float),
    _Option("rate_429_retry_after", "probability of a 429 with Retry-After", float),
    _Option("retry_after_seconds", "the Retry-After value of those 429s", int),
    _Option("rate_500", "probability of a 500 error envelope", float),
    _Option("rate_502", "probability of a 502 HTML gateway page", float),
    _Option("rate_503", "probability of a 503 error envelope (always before the request takes effect)", float),
    _Option("rate_504", "probability of a 504 HTML gateway page", float),
    _Option("rate_drop", "probability of closing the connection without an answer", float),
    _Option("rate_slow", "probability of answering late", float),
    _Option("slow_seconds", "how late a slow answer comes", float),
    _Option("rate_malformed", "probability of a malformed 200 answer", float),
    _Option("malformed_kinds", "comma list of html, truncated_json, error_code, missing_id", _comma_list, ",".join),
    _Option(
        "routes",
        f"comma list of the routes faults apply to, empty for all: {', '.join(sorted(API_ROUTES))}",
        _comma_list,
        ",".join,
    ),
    _Option(
        "after_accept_rate",
        "probability that a fault other than 429 and 503 strikes after the request took effect",
        float,
    ),
    _Option(
        "before_accept_routes",
        "comma list of routes where every fault strikes before the request takes effect",
        _comma_list,
        ",".join,
    ),
)


_FAULT_PREFIX = "fault-"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m wavespeed_emulator",
        description="Serve a local emulation of the WaveSpeed API until SIGINT or SIGTERM.",
    )
    parser.add_argument("--api-key", help=f"the Bearer key clients must send (default: ${API_KEY_VARIABLE})")
    parser.add_argument(
        "--log-file",
        type=Path,
        help="write the log there, with one access line per request (default: stderr, no access lines)",
    )
    server_defaults = {field.name: field.default for field in fields(EmulatorConfig)}
    for option in _SERVER_OPTIONS:
        parser.add_argument(
            option.flag(""),
            dest=option.field,
            type=option.parse,
            help=option.described(server_defaults[option.field]),
        )
    faults = parser.add_argument_group("fault injection", "rates are per-request probabilities, together at most 1")
    fault_defaults = FaultConfig()
    for option in _FAULT_OPTIONS:
        faults.add_argument(
            option.flag(_FAULT_PREFIX),
            dest=f"fault_{option.field}",
            type=option.parse,
            help=option.described(getattr(fault_defaults, option.field)),
        )
    return parser


def config_from_args(argv: Sequence[str] | None = None, environ: Mapping[str, str] = os.environ) -> EmulatorConfig:
    """The configuration the command line asks for; exits with a usage error when it is invalid."""
    return options_from_args(argv, environ)[0]


def options_from_args(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] = os.environ
) -> tuple[EmulatorConfig, Path | None]:
    """The configuration and the log file (``--log-file``, None for stderr) the command line asks for.

    The log file is the process's concern, not the emulated API's, so it is not part of the config.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    api_key = args.api_key or environ.get(API_KEY_VARIABLE)
    if not api_key:
        parser.error(f"an API key is required: pass --api-key or set {API_KEY_VARIABLE}")
    server = {option.field: getattr(args, option.field) for option in _SERVER_OPTIONS}
    faults = {option.field: getattr(args, f"fault_{option.field}") for option in _FAULT_OPTIONS}
    try:
        config = EmulatorConfig(
            api_key=api_key,
            faults=FaultConfig(**_given(faults)),
            **_given(server),
        )
    except ValueError as error:
        parser.error(str(error))
    return config, args.log_file


def config_to_argv(config: EmulatorConfig) -> list[str]:
    """Command-line arguments that reproduce ``config``, except its API key."""
    argv: list[str] = []
    for option in _SERVER_OPTIONS:
        argv += _rendered(option.flag(""), option, getattr(config, option.field))
    for option in _FAULT_OPTIONS:
        argv += _rendered(option.flag(_FAULT_PREFIX), option, getattr(config.faults, option.field))
    return argv


def _given(values: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in values.items() if value is not None}


def _rendered(flag: str, option: _Option, value: Any) -> list[str]:
    return [] if value is None else [flag, option.render(value)]
