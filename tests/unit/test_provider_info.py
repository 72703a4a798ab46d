"""Airflow discovers the provider through its entry point: connection type, form, links."""

from __future__ import annotations

import importlib.util
import json
from importlib.metadata import entry_points
from pathlib import Path

import airflow
import jsonschema

from airflow_provider_wavespeed import get_provider_info


def test_entry_point_points_at_get_provider_info():
    (entry,) = [
        ep for ep in entry_points(group="apache_airflow_provider") if ep.value.startswith("airflow_provider_wavespeed")
    ]
    assert entry.load() is get_provider_info


def test_provider_info_satisfies_airflows_schema():
    schema = json.loads((Path(airflow.__file__).parent / "provider_info.schema.json").read_text())
    jsonschema.validate(get_provider_info(), schema)


def test_airflow_registers_the_wavespeed_connection_type_with_its_form():
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    hook = manager.hooks["wavespeed"]
    assert hook is not None
    assert hook.hook_class_name == "airflow_provider_wavespeed.hooks.wavespeed.WaveSpeedHook"
    assert hook.connection_id_attribute_name == "wavespeed_conn_id"
    # An Airflow that does not read the form from the provider info (3.0) registers it only when
    # wtforms (FAB's) is importable, and Airflow 3.0 does not install it.
    if hasattr(manager, "_load_ui_metadata") or importlib.util.find_spec("wtforms"):
        behaviour = manager.field_behaviours["wavespeed"]
        assert behaviour["relabeling"] == {"password": "API Key", "host": "Base URL"}
    assert {
        "airflow_provider_wavespeed.links.StoredOutputLink",
        "airflow_provider_wavespeed.links.WaveSpeedOutputLink",
    } <= set(manager.extra_links_class_names)


def test_every_module_the_provider_info_names_imports():
    import importlib

    info = get_provider_info()
    for section in ("operators", "sensors", "hooks", "triggers"):
        for entry in info[section]:
            for module in entry["python-modules"]:
                importlib.import_module(module)


def test_every_operator_class_is_listed_in_the_module_that_defines_it():
    from airflow_provider_wavespeed.operators.lipsync import LipsyncOperator, WaveSpeedRunModelOperator

    (operators,) = get_provider_info()["operators"]
    assert {LipsyncOperator.__module__, WaveSpeedRunModelOperator.__module__} <= set(operators["python-modules"])


def test_the_ui_plugin_is_an_entry_point_that_loads_on_airflow_3_1_and_later_only():
    from importlib.metadata import entry_points

    from airflow_provider_wavespeed.plugins.wavespeed_view import WaveSpeedViewPlugin
    from airflow_provider_wavespeed.version_compat import AIRFLOW_V_3_1_PLUS

    (entry_point,) = {ep for ep in entry_points(group="airflow.plugins") if ep.name == "wavespeed"}
    loaded = entry_point.load()
    if AIRFLOW_V_3_1_PLUS:
        assert loaded is WaveSpeedViewPlugin
        assert {view["destination"] for view in loaded.external_views} == {"task_instance", "dag_run"}
        assert [app["url_prefix"] for app in loaded.fastapi_apps] == ["/wavespeed"]
    else:
        assert loaded is None, "no UI plugins before Airflow 3.1: nothing is registered"
    assert "plugins" not in get_provider_info(), "declared once, as the entry point"


def test_provider_info_passes_the_validator_airflow_applies_when_it_discovers_providers():
    from airflow.providers_manager import _create_provider_info_schema_validator

    validator = _create_provider_info_schema_validator()
    info = get_provider_info()

    assert [error.message for error in validator.iter_errors(info)] == []
    # The installed schema constrains for real: without its description the same info is refused.
    assert list(validator.iter_errors({key: value for key, value in info.items() if key != "description"}))
