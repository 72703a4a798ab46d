"""Which Airflow line this runs on, for the few features that differ between lines."""

from __future__ import annotations

from airflow import __version__ as _airflow_version


def _line(version: str) -> tuple[int, int]:
    major, minor = version.split(".")[:2]
    return int(major), int("".join(character for character in minor if character.isdigit()) or 0)


AIRFLOW_V_3_1_PLUS = _line(_airflow_version) >= (3, 1)
"""Airflow 3.1 brought human-in-the-loop tasks (the standard provider's ``ApprovalOperator``)."""
