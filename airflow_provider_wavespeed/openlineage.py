"""OpenLineage for the WaveSpeed operators: the media a prediction read, the files it produced, its id.

The OpenLineage provider (the ``openlineage`` extra) calls the operator's
``get_openlineage_facets_on_start/complete/failure`` methods, which delegate here. Nothing in this
module imports OpenLineage at module level, so the operators import and run without it.

After a deferral the task resumes on a new operator object, built from the DAG, that has not seen
the first execution: OpenLineage runs ``on_start`` for that execution too, then ``on_complete``
or ``on_failure`` on the same object. So everything here comes from what the current execution
set on the operator: ``request_id`` (after the submit, or re-derived from the trigger's event on
resuming) and ``result`` (the task's return value). Nothing is read from XCom or WaveSpeed: the
OpenLineage listener may call these methods in a forked process, where a request through the task
runner's connection to its supervisor is not safe.

Dataset names follow OpenLineage's naming conventions: ``s3://<bucket>`` / ``<key>`` for object
storage (the connection id of ``s3://<conn_id>@<bucket>/...`` left out), ``file`` / ``<absolute
path>`` for local files, ``<scheme>://<host>`` / ``<path>`` for URLs, whose query string is dropped
because a presigned URL carries credentials there.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from airflow_provider_wavespeed.media import local_path_of, path_text, url_scheme

if TYPE_CHECKING:
    from airflow.providers.common.compat.openlineage.facet import Dataset
    from airflow.providers.openlineage.extractors import OperatorLineage

    from airflow_provider_wavespeed.operators.run_model import WaveSpeedRunModelOperator

EXTERNAL_QUERY_SOURCE = "wavespeed"
"""The ``source`` of the ``ExternalQueryRunFacet`` that carries a prediction's request id."""

_NAMESPACE_OF_SCHEME = {"gcs": "gs"}
"""Schemes Airflow accepts whose OpenLineage namespace is spelled otherwise."""


def lineage_on_start(operator: WaveSpeedRunModelOperator) -> OperatorLineage:
    """The media the task will send: one input dataset per media input (video and audio)."""
    lineage = _operator_lineage()
    return lineage(inputs=media_input_datasets(operator))


def lineage_on_complete(operator: WaveSpeedRunModelOperator) -> OperatorLineage:
    """Inputs, the stored outputs (or WaveSpeed's output URLs when none were stored), and the request id."""
    lineage = _operator_lineage()
    result = operator.result or {}
    outputs = result.get("stored_outputs") or result.get("outputs") or []
    return lineage(
        inputs=media_input_datasets(operator),
        outputs=[dataset for dataset in (dataset_of(output) for output in outputs) if dataset is not None],
        run_facets=_request_facets(operator.request_id),
    )


def lineage_on_failure(operator: WaveSpeedRunModelOperator) -> OperatorLineage:
    """Inputs, the request id when a prediction was submitted, and an ``ErrorMessageRunFacet``.

    OpenLineage's listener replaces the message with the task's own exception where it has one; this
    one stands where it has none, and says how to collect a paid prediction without paying again.
    """
    from airflow.providers.common.compat.openlineage.facet import ErrorMessageRunFacet

    lineage = _operator_lineage()
    request_id = operator.request_id
    if request_id:
        message = (
            f"The task failed after submitting WaveSpeed prediction {request_id} of model '{operator.model}'. "
            f"If it completed, collect it without paying again with PredictionSensor(request_id='{request_id}')."
        )
    else:
        message = f"The task failed with no WaveSpeed request id recorded for model '{operator.model}'."
    run_facets = {
        **_request_facets(request_id),
        "errorMessage": ErrorMessageRunFacet(message=message, programmingLanguage="python"),
    }
    return lineage(inputs=media_input_datasets(operator), run_facets=run_facets)


def _request_facets(request_id: str | None) -> dict[str, Any]:
    if not request_id:
        return {}
    from airflow.providers.common.compat.openlineage.facet import ExternalQueryRunFacet

    return {"externalQuery": ExternalQueryRunFacet(externalQueryId=request_id, source=EXTERNAL_QUERY_SOURCE)}


def media_input_datasets(operator: WaveSpeedRunModelOperator) -> list[Dataset]:
    """One dataset per media input (``video``, ``audio`` for lipsync) that names a file or URL."""
    try:
        inputs = operator.rendered_inputs()
    except ValueError:  # a bad input: the task fails on it, with its own message, before paying
        return []
    if not isinstance(inputs, Mapping):
        return []
    datasets = (dataset_of(inputs.get(field)) for field in operator.media_inputs)
    return [dataset for dataset in datasets if dataset is not None]


def dataset_of(media: Any) -> Dataset | None:
    """The OpenLineage dataset a media value names; None for a file object or an empty value."""
    from airflow.providers.common.compat.openlineage.facet import Dataset

    text = path_text(media)
    if text is None and isinstance(getattr(media, "protocol", None), str):
        # An ObjectStoragePath: its URI, whose user info (the connection id) is left out below. Its
        # own ``namespace`` keeps the connection id with universal-pathlib < 0.3 (Airflow 2.11, 3.0).
        text = str(media)
    if text is None or not text.strip():
        return None
    local = local_path_of(text)
    if local is not None:
        host = urlsplit(text).netloc if url_scheme(text) == "file" else ""
        return Dataset(namespace=f"file://{host}" if host else "file", name=os.path.abspath(local))
    parts = urlsplit(text)
    scheme = _NAMESPACE_OF_SCHEME.get(parts.scheme, parts.scheme)
    host = parts.netloc.rpartition("@")[2]  # the connection id (or any user info) is not part of the name
    return Dataset(namespace=f"{scheme}://{host}", name=unquote(parts.path).lstrip("/"))


def _operator_lineage() -> type[OperatorLineage]:
    try:
        from airflow.providers.openlineage.extractors import OperatorLineage
    except ImportError as error:
        raise ImportError(
            "OpenLineage facets need the OpenLineage provider: install "
            "'airflow-provider-wavespeed[openlineage]' (apache-airflow-providers-openlineage)"
        ) from error
    return OperatorLineage
