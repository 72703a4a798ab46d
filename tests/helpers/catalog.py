"""The model catalog as the emulator serves it, parsed."""

from __future__ import annotations

from airflow_provider_wavespeed.models import catalog_from_api
from tests.helpers.api_answers import BASE
from wavespeed_emulator import EmulatorConfig
from wavespeed_emulator.pricing import catalog

# The catalog as the emulator serves it: lipsync's schema is its API page's parameter table.
CATALOG = {entry.model: entry for entry in catalog_from_api(catalog(EmulatorConfig(api_key="k")), url=BASE)}
LIPSYNC = CATALOG["sync/lipsync-1.9.0-beta"]
IMAGE = CATALOG["wavespeed-ai/z-image/turbo"]
