"""Apache Airflow provider for WaveSpeedAI's inference API, built first for Sync Lipsync 1.9.0 Beta.

This module is what Airflow's ProvidersManager loads (the ``apache_airflow_provider`` entry
point), so it imports nothing heavy.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

# The connection form, declared as data so Airflow UIs that read provider metadata (conn-fields,
# Airflow >= 3.2) and older ones that call WaveSpeedHook.get_ui_field_behaviour() show the same form.
CONNECTION_UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    # The port stays in the form: the Test button of Airflow 3.3.2's connection list refuses every
    # connection without one (docs/connection.md), and the hook adds it to a Base URL that has none.
    "hidden_fields": ["schema", "login"],
    "relabeling": {"password": "API Key", "host": "Base URL"},
    "placeholders": {
        "password": "Your WaveSpeed API key (wavespeed.ai/accesskey)",
        "host": "https://api.wavespeed.ai (default); http://127.0.0.1:8099 for the local emulator",
        "port": "optional: 443 for https://api.wavespeed.ai",
        "extra": '{"connect_timeout": 10, "read_timeout": 60, "retry_limit": 5, "retry_delay": 1.0}',
    },
}

CONNECTION_EXTRA_FIELDS: dict[str, dict[str, Any]] = {
    "connect_timeout": {
        "label": "Connect timeout (s)",
        "description": "Seconds to wait for a TCP/TLS connection to WaveSpeed.",
        "schema": {"type": ["number", "null"], "minimum": 0.1},
    },
    "read_timeout": {
        "label": "Read timeout (s)",
        "description": "Seconds to wait for each response (and between chunks of a transfer).",
        "schema": {"type": ["number", "null"], "minimum": 0.1},
    },
    "retry_limit": {
        "label": "Retry limit",
        "description": "Retries of a failed request (status reads always; a submit only when it was "
        "provably not accepted).",
        "schema": {"type": ["integer", "null"], "minimum": 0},
    },
    "retry_delay": {
        "label": "Retry delay (s)",
        "description": "First backoff delay; it doubles per retry, with jitter, unless Retry-After says.",
        "schema": {"type": ["number", "null"], "minimum": 0},
    },
}


def get_provider_info() -> dict[str, Any]:
    """Describe the provider to Airflow: the ``wavespeed`` connection type and its form.

    The UI plugin is an ``airflow.plugins`` entry point instead of a ``plugins`` entry here: Airflow
    loads those only with ``[core] lazy_discover_providers`` off, and with both it would register twice.
    """
    return {
        "package-name": "airflow-provider-wavespeed",
        "name": "WaveSpeed",
        "description": "Run WaveSpeedAI models, first of all Sync Lipsync, from Apache Airflow.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "WaveSpeed",
                "external-doc-url": "https://wavespeed.ai/docs",
                "tags": ["service"],
            }
        ],
        "operators": [
            {
                "integration-name": "WaveSpeed",
                "python-modules": [
                    "airflow_provider_wavespeed.operators.run_model",
                    "airflow_provider_wavespeed.operators.lipsync",
                ],
            }
        ],
        "sensors": [
            {"integration-name": "WaveSpeed", "python-modules": ["airflow_provider_wavespeed.sensors.prediction"]}
        ],
        "hooks": [{"integration-name": "WaveSpeed", "python-modules": ["airflow_provider_wavespeed.hooks.wavespeed"]}],
        "triggers": [
            {"integration-name": "WaveSpeed", "python-modules": ["airflow_provider_wavespeed.triggers.prediction"]}
        ],
        "extra-links": [
            "airflow_provider_wavespeed.links.StoredOutputLink",
            "airflow_provider_wavespeed.links.WaveSpeedOutputLink",
        ],
        "connection-types": [
            {
                "connection-type": "wavespeed",
                "hook-class-name": "airflow_provider_wavespeed.hooks.wavespeed.WaveSpeedHook",
                "hook-name": "WaveSpeed",
                "conn-fields": CONNECTION_EXTRA_FIELDS,
                "ui-field-behaviour": {
                    key.replace("_", "-"): value for key, value in CONNECTION_UI_FIELD_BEHAVIOUR.items()
                },
            }
        ],
    }
