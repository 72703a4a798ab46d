"""Which Airflow line is installed, as the official providers' private ``version_compat`` modules say it.

Code that must differ between Airflow lines tests one of these flags rather than parsing
``airflow.__version__`` itself. A pre-release counts as the release it leads to (``3.3.0rc1`` is
3.3), so release candidates are tested with the behaviour they will ship with.
"""

from __future__ import annotations


def base_version_tuple(version: str) -> tuple[int, int, int]:
    """``(major, minor, micro)`` of a PEP 440 version, pre-, post- and dev-release parts dropped."""
    from packaging.version import Version

    major, minor, micro, *_ = (*Version(version).release, 0, 0)
    return major, minor, micro


def get_base_airflow_version_tuple() -> tuple[int, int, int]:
    """``(major, minor, micro)`` of the installed Airflow."""
    from airflow import __version__

    return base_version_tuple(__version__)


AIRFLOW_V_3_0_PLUS = get_base_airflow_version_tuple() >= (3, 0, 0)
AIRFLOW_V_3_1_PLUS = get_base_airflow_version_tuple() >= (3, 1, 0)
AIRFLOW_V_3_2_PLUS = get_base_airflow_version_tuple() >= (3, 2, 0)
# The task state store, and an xcom_pull that returns every map index in one call.
AIRFLOW_V_3_3_PLUS = get_base_airflow_version_tuple() >= (3, 3, 0)

__all__ = [
    "AIRFLOW_V_3_0_PLUS",
    "AIRFLOW_V_3_1_PLUS",
    "AIRFLOW_V_3_2_PLUS",
    "AIRFLOW_V_3_3_PLUS",
    "get_base_airflow_version_tuple",
]
