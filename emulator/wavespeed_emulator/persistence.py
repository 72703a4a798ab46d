"""The account's state on disk, so that with a data dir it survives a restart, as WaveSpeed's does.

Under ``<data dir>/state``: one JSON file per prediction (``predictions/<id>.json``), one per charge
of the ledger (``charges/<id>.json``, kept when its prediction is deleted, as money spent stays
spent) and ``account.json`` (the webhook secret). Each file is written whole to a temporary name
and renamed over the old one, so a process killed mid-write leaves the previous version or none,
never half a record; a record is written before the submit is answered. Files are not fsynced: the
state survives the process, not the machine, which is what outage tests need and keeps a submit
from waiting on the disk. Uploads and outputs are files already (see `media`); stats and open
upload tickets are the process's own and start empty.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

logger = logging.getLogger(__name__)

_TEMPORARY_SUFFIX = ".tmp"


class AccountState:
    """Reads and writes the records of one emulated account under ``root``."""

    def __init__(self, root: Path) -> None:
        self._predictions = root / "predictions"
        self._charges = root / "charges"
        self._account = root / "account.json"
        for directory in (self._predictions, self._charges):
            directory.mkdir(parents=True, exist_ok=True)
            for leftover in directory.glob(f"*{_TEMPORARY_SUFFIX}"):
                leftover.unlink(missing_ok=True)

    def save_prediction(self, record: dict[str, Any]) -> None:
        _write_whole(self._predictions / f"{record['id']}.json", record)

    def forget_prediction(self, prediction_id: str) -> None:
        (self._predictions / f"{prediction_id}.json").unlink(missing_ok=True)

    def prediction_records(self) -> list[dict[str, Any]]:
        """Every saved prediction, oldest first."""
        records = _read_all(self._predictions)
        return sorted(records, key=lambda record: float(record["created_at"]))

    def save_charge(self, prediction_id: str, amount: float, charged_at: float) -> None:
        _write_whole(
            self._charges / f"{prediction_id}.json",
            {"id": prediction_id, "amount": amount, "charged_at": charged_at},
        )

    def charges(self) -> dict[str, float]:
        """The ledger, in the order it was charged."""
        records = sorted(_read_all(self._charges), key=lambda record: float(record["charged_at"]))
        return {str(record["id"]): float(record["amount"]) for record in records}

    def clear(self) -> None:
        """Forget every prediction and charge (the account's reset); the account file stays."""
        for directory in (self._predictions, self._charges):
            for path in directory.iterdir():
                path.unlink(missing_ok=True)

    def webhook_secret(self, new_secret: str) -> str:
        """The account's webhook secret, kept from an earlier run; ``new_secret`` the first time."""
        if self._account.is_file():
            return str(json.loads(self._account.read_text())["webhook_secret"])
        _write_whole(self._account, {"webhook_secret": new_secret})
        return new_secret


def _write_whole(path: Path, record: dict[str, Any]) -> None:
    temporary = path.with_name(f"{path.name}.{secrets.token_hex(4)}{_TEMPORARY_SUFFIX}")
    try:
        temporary.write_text(json.dumps(record))
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _read_all(directory: Path) -> list[dict[str, Any]]:
    records = []
    for path in directory.glob("*.json"):
        try:
            records.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            logger.warning("Ignoring %s: not a record the emulator wrote", path)
    return records
