"""``python -m wavespeed_emulator``: serve a local WaveSpeed API.

Prints ``WaveSpeed emulator listening on http://HOST:PORT`` once it accepts connections, then
serves until SIGINT or SIGTERM. It logs to stderr, or with ``--log-file PATH`` to that file with
one access line per request (never a request header: the key travels in one). ``--help`` lists
every option.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import sys
from typing import TYPE_CHECKING

from wavespeed_emulator.cli import options_from_args
from wavespeed_emulator.server import serve_until_signalled

if TYPE_CHECKING:
    from collections.abc import Sequence

_WANTED_OPEN_FILES = 65536


def main(argv: Sequence[str] | None = None) -> int:
    config, log_file = options_from_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", filename=log_file)
    _raise_open_file_limit()
    asyncio.run(serve_until_signalled(config, access_log=log_file is not None))
    return 0


def _raise_open_file_limit() -> None:
    """Lift the soft limit on open files toward the hard one: each keep-alive client holds a socket."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = _WANTED_OPEN_FILES if hard == resource.RLIM_INFINITY else min(hard, _WANTED_OPEN_FILES)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


if __name__ == "__main__":
    sys.exit(main())
