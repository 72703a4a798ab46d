from __future__ import annotations

from importlib.metadata import version

import pytest

from airflow_provider_wavespeed import version_compat
from airflow_provider_wavespeed.version_compat import base_version_tuple


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2.11.2", (2, 11, 2)),
        ("3.0.2", (3, 0, 2)),
        ("3.3.0rc1", (3, 3, 0)),
        ("3.1.0.dev0", (3, 1, 0)),
        ("3.2.1.post1", (3, 2, 1)),
        ("3.10", (3, 10, 0)),
        ("3", (3, 0, 0)),
    ],
)
def test_base_version_drops_pre_post_and_dev_parts(text, expected):
    assert base_version_tuple(text) == expected


def test_a_two_digit_minor_compares_as_a_number_not_as_text():
    assert base_version_tuple("3.10.0") > base_version_tuple("3.9.0")


def test_a_release_candidate_counts_as_the_release_it_leads_to():
    assert base_version_tuple("3.3.0rc1") >= (3, 3, 0)


def test_an_invalid_version_is_refused_with_the_text():
    with pytest.raises(ValueError, match="not-a-version"):
        base_version_tuple("not-a-version")


def test_the_flags_describe_the_installed_airflow():
    # Read from the distribution's metadata: a second source, independent of airflow.__version__.
    major, minor = (int(part) for part in version("apache-airflow").split(".")[:2])

    flags = {
        (3, 0): version_compat.AIRFLOW_V_3_0_PLUS,
        (3, 1): version_compat.AIRFLOW_V_3_1_PLUS,
        (3, 2): version_compat.AIRFLOW_V_3_2_PLUS,
        (3, 3): version_compat.AIRFLOW_V_3_3_PLUS,
    }

    assert version_compat.get_base_airflow_version_tuple()[:2] == (major, minor)
    assert flags == {line: (major, minor) >= line for line in flags}
