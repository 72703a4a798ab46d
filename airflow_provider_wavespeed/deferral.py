"""Handing a prediction's wait to the triggerer: the one defer call the operators and the sensor share."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import BaseOperator

    from airflow_provider_wavespeed.models import Prediction

DEFER_TIMEOUT_MARGIN = timedelta(seconds=60)
"""How far past the trigger's own deadline the framework's defer timeout sits, so that the
trigger's clean timeout event (which names the prediction) arrives before a generic framework timeout."""


def defer_until_prediction_ends(
    task: BaseOperator,
    prediction: Prediction,
    *,
    wavespeed_conn_id: str,
    timeout_seconds: float,
    poll_interval: float,
    max_poll_interval: float,
) -> NoReturn:
    """Defer ``task`` to a :class:`PredictionTrigger` for ``prediction``; it resumes in ``execute_complete``.

    The trigger's deadline is wall-clock time (it may resume in another triggerer process), and its
    poll interval grows from the submit, not from this deferral.
    """
    from airflow_provider_wavespeed.triggers.prediction import PredictionTrigger

    submitted_at = prediction.created_at.timestamp() if prediction.created_at else time.time()
    task.defer(
        trigger=PredictionTrigger(
            request_id=prediction.id,
            end_time=time.time() + timeout_seconds,
            submitted_at=submitted_at,
            wavespeed_conn_id=wavespeed_conn_id,
            poll_interval=poll_interval,
            max_poll_interval=max_poll_interval,
        ),
        method_name="execute_complete",
        timeout=timedelta(seconds=timeout_seconds + max_poll_interval) + DEFER_TIMEOUT_MARGIN,
    )
