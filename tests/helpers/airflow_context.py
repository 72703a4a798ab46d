"""What Airflow hands a task at run time, faked: the context, its task state store, the Variables."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock


class StateStore:
    """What Airflow 3.3 puts in context["task_state_store"]."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def set(self, key: str, value: Any) -> None:
        self.values[key] = value

    def delete(self, key: str) -> None:
        self.values.pop(key, None)


def make_context(store: StateStore | None = None, *, try_number: int = 1, max_tries: int = 1) -> Any:
    """A task instance's context; by default its first try, with a retry left."""
    ti = mock.MagicMock(
        dag_id="dubbing", run_id="run-1", task_id="lipsync", map_index=-1, try_number=try_number, max_tries=max_tries
    )
    ti.get_ti_count.return_value = 1
    return {"ti": ti, "task_state_store": store if store is not None else StateStore()}


def without_state_store(context: Any) -> Any:
    """The context as Airflow 2.11 and 3.0-3.2 give it: no task state store."""
    del context["task_state_store"]
    return context


def pushed(context: dict[str, Any]) -> dict[str, Any]:
    """What the task pushed to XCom, by key."""
    return {call.kwargs["key"]: call.kwargs["value"] for call in context["ti"].xcom_push.call_args_list}


@contextmanager
def variables(initial: dict[str, str] | None = None) -> Iterator[dict[str, str]]:
    """Airflow Variables held in a dict, for the record's backend before Airflow 3.3."""
    held = dict(initial or {})
    with mock.patch("airflow.providers.common.compat.sdk.Variable") as variable:
        variable.get.side_effect = lambda name, default=None: held.get(name, default)
        variable.set.side_effect = lambda name, value, **_: held.__setitem__(name, value)
        variable.delete.side_effect = lambda name: held.pop(name)
        yield held
