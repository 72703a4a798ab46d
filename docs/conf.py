"""Sphinx configuration of the provider's docs site (``make docs``).

The pages are Markdown (MyST); the how-to pages pull their code from ``example_dags/`` between
``[START howto_...]`` and ``[END howto_...]`` markers, so the docs show code the test suite runs.
"""

from __future__ import annotations

from airflow_provider_wavespeed import __version__

project = "airflow-provider-wavespeed"
author = "airflow-provider-wavespeed contributors"
copyright = "the airflow-provider-wavespeed contributors"
release = version = __version__

extensions = ["myst_parser"]
source_suffix = {".md": "markdown"}
myst_enable_extensions = ["deflist"]
# Anchors for headings down to ###, so pages can link to a section: [text](page.md#a-heading).
myst_heading_anchors = 3

exclude_patterns = ["_build"]
nitpicky = True

html_theme = "alabaster"
html_title = f"{project} {release}"
html_theme_options = {"description": "Apache Airflow provider for WaveSpeedAI", "fixed_sidebar": True}
