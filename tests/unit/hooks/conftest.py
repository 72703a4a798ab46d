"""Connections that offer the hook a key in every wrong place, for the tests that it reads only the right one."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from tests.helpers.api_answers import BASE

# Places a key could plausibly be read from by mistake; the hook must read none of them.
DECOY_ENVIRONMENT = {
    "WAVESPEED_KEY": "decoy-env-wavespeed-key",
    "WAVESPEED_TOKEN": "decoy-env-wavespeed-token",
    "WAVESPEED_API_TOKEN": "decoy-env-wavespeed-api-token",
    "AIRFLOW_VAR_WAVESPEED_API_KEY": "decoy-airflow-variable",
    "API_KEY": "decoy-env-api-key",
}
DECOY_EXTRAS = {"api_key": "decoy-extra-api-key", "token": "decoy-extra-token", "password": "decoy-extra-password"}


@pytest.fixture
def decoy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Key-like environment variables that are not the SDK's ``WAVESPEED_API_KEY``."""
    for name, value in DECOY_ENVIRONMENT.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def connection_with_decoys(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Define ``wavespeed_default`` with a login and key-like extras besides its password."""

    def define(*, password: str, host: str = BASE) -> None:
        connection = {
            "conn_type": "wavespeed",
            "host": host,
            "login": "decoy-login",
            "password": password,
            "extra": {"retry_delay": 0, **DECOY_EXTRAS},
        }
        monkeypatch.setenv("AIRFLOW_CONN_WAVESPEED_DEFAULT", json.dumps(connection))

    return define
