"""WaveSpeedRunModelOperator, the generic operator, with the hook replaced: its checks before the submit."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_wavespeed.exceptions import WaveSpeedCostError, WaveSpeedInputSchemaError
from airflow_provider_wavespeed.operators.run_model import WaveSpeedRunModelOperator
from tests.helpers.airflow_context import make_context
from tests.helpers.catalog import IMAGE
from tests.helpers.wavespeed_tasks import parsed


def run_model(**kwargs: Any) -> Any:
    arguments = {
        "model": "wavespeed-ai/z-image/turbo",
        "inputs": {"prompt": "x"},
        "wait_for_completion": False,
        **kwargs,
    }
    return WaveSpeedRunModelOperator(task_id="run", **arguments).execute(make_context())


# -- the operator: nothing paid for before the checks ----------------------------------------------


def test_a_model_the_catalog_does_not_list_fails_unless_allowed(hook):
    hook.get_catalog_model.return_value = None
    with pytest.raises(
        WaveSpeedInputSchemaError, match="does not list model 'wavespeed-ai/z-image/turbo'.*allow_unlisted_model=True"
    ):
        run_model()
    hook.submit.assert_not_called()

    hook.submit.return_value = parsed("created")
    result = run_model(allow_unlisted_model=True)
    assert hook.submit.call_count == 1
    assert (result["price"], result["currency"]) == (0.15, "USD")


def test_max_price_and_min_balance_after_stop_before_the_submit(hook):
    hook.get_catalog_model.return_value = IMAGE
    with pytest.raises(WaveSpeedCostError, match=r"quotes 0.1500 USD \(list price 0.2000, 25% off\).*max_price=0.1"):
        run_model(max_price=0.1)
    hook.get_balance.return_value = 0.2
    with pytest.raises(WaveSpeedCostError, match="balance is 0.2000 USD.*would leave 0.0500.*min_balance_after=0.1"):
        run_model(min_balance_after=0.1)
    hook.submit.assert_not_called()


@pytest.mark.parametrize(("name", "value"), [("max_price", "1"), ("max_price", -1), ("min_balance_after", True)])
def test_a_cap_that_is_not_an_amount_fails_when_the_dag_is_parsed(name, value):
    with pytest.raises(ValueError, match=name):
        WaveSpeedRunModelOperator(task_id="run", model="a/b", inputs={}, **{name: value})
