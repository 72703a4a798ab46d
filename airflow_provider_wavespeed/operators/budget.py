"""A budget per DAG run: quote every prediction before the fan-out, and stop above the budget.

DAG files import this module at every parse, so it imports no HTTP client: the hook is imported
when the task runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator

from airflow_provider_wavespeed.content import read_media_content
from airflow_provider_wavespeed.exceptions import WaveSpeedCostError
from airflow_provider_wavespeed.media import is_http_url
from airflow_provider_wavespeed.operators.lipsync import LIPSYNC_MODEL
from airflow_provider_wavespeed.uploads import UploadCache, upload_once
from airflow_provider_wavespeed.version_compat import AIRFLOW_V_3_1_PLUS
from airflow_provider_wavespeed.xcoms import COST_XCOM_KEY

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_wavespeed.hooks.wavespeed import WaveSpeedHook


class WaveSpeedBudgetOperator(BaseOperator):
    """Quote every prediction a DAG run is about to make, before any is paid, and stop above ``budget``.

    Put it between the task that lists the work and the mapped WaveSpeed tasks: it uploads each
    distinct media file once, through the content-keyed upload cache
    (:mod:`airflow_provider_wavespeed.uploads`) that the mapped tasks then find it in, asks
    WaveSpeed for each price (``POST /api/v3/model/price``), logs every quote and the total, and
    pushes the total to XCom (``cost``). Above the budget it fails, so nothing downstream is paid
    for; with ``ask_approval_over_budget`` it succeeds instead and a downstream
    :class:`~airflow_provider_wavespeed.operators.approval.WaveSpeedSpendApprovalOperator`
    (Airflow 3.1+) asks a person.

    Returns the predictions as given (media as their sources, so that each mapped task can tell a
    stored output made from the same content): pass it to the mapped task's ``expand_kwargs``.

    :param predictions: one dict per prediction, the keyword arguments of the mapped task (what
        ``expand_kwargs`` takes), e.g. ``{"video": ..., "audio": ..., "output_path": ...}``. Templated.
    :param model: the model every prediction runs. Templated.
    :param input_names: the keys of each dict that are model inputs; the others (``output_path``)
        are passed through unquoted.
    :param common_inputs: inputs every prediction shares, as given to the mapped task's
        ``partial()`` (e.g. ``{"sync_mode": "remap"}``): they change the price. Templated.
    :param media_inputs: the inputs that hold media (uploaded unless an http(s) URL).
    :param budget: the most the run may spend, in the quotes' currency (USD); None or "" for no
        limit. Templated, e.g. ``"{{ params.budget }}"``.
    :param ask_approval_over_budget: over budget, leave the decision to a downstream
        ``WaveSpeedSpendApprovalOperator`` instead of failing. Needs Airflow 3.1+. Templated.
    :param wavespeed_conn_id: the Airflow connection holding the API key.
    """

    template_fields: Sequence[str] = (
        "predictions",
        "model",
        "common_inputs",
        "budget",
        "ask_approval_over_budget",
        "wavespeed_conn_id",
    )
    ui_color = "#fef7e0"

    def __init__(
        self,
        *,
        predictions: Any,
        model: str = LIPSYNC_MODEL,
        input_names: Sequence[str] = ("video", "audio", "sync_mode"),
        common_inputs: Mapping[str, Any] | None = None,
        media_inputs: Sequence[str] = ("video", "audio"),
        budget: float | str | None = None,
        ask_approval_over_budget: bool | str = False,
        wavespeed_conn_id: str = "wavespeed_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.predictions = predictions
        self.model = model
        self.input_names = tuple(input_names)
        self.common_inputs = dict(common_inputs or {})
        self.media_inputs = tuple(media_inputs)
        self.budget = budget
        self.ask_approval_over_budget = ask_approval_over_budget
        self.wavespeed_conn_id = wavespeed_conn_id

    @cached_property
    def hook(self) -> WaveSpeedHook:
        from airflow_provider_wavespeed.hooks.wavespeed import WaveSpeedHook

        return WaveSpeedHook(self.wavespeed_conn_id)

    def execute(self, context: Context) -> list[dict[str, Any]]:
        budget = _budget(self.budget)
        ask = _flag(self.ask_approval_over_budget, "ask_approval_over_budget")
        if ask:
            self._check_approval_follows()
        predictions = _predictions(self.predictions)
        prepared: list[dict[str, Any]] = []
        quotes: list[dict[str, Any]] = []
        cache = UploadCache(self.hook.base_url)
        uploaded: dict[str, str] = {}  # by content: a video dubbed into several languages is uploaded once
        for index, prediction in enumerate(predictions):
            quoted = dict(prediction)
            for name in self.media_inputs:
                if name in quoted and not is_http_url(quoted[name]):
                    content = read_media_content(quoted[name], field=name)
                    if content.sha256 not in uploaded:
                        uploaded[content.sha256] = upload_once(self.hook, quoted[name], content, cache)
                    quoted[name] = uploaded[content.sha256]
            inputs = {**self.common_inputs, **{name: quoted[name] for name in self.input_names if name in quoted}}
            quote = self.hook.get_price(self.model, inputs)
            self.log.info(
                "Prediction %d of %d: WaveSpeed quotes %s for %s", index + 1, len(predictions), quote.describe(), inputs
            )
            prepared.append(dict(prediction))
            quotes.append(
                {
                    "index": index,
                    "price": quote.charged,
                    "list_price": quote.price,
                    "currency": quote.currency,
                    "inputs": inputs,
                }
            )
        currencies = {quote["currency"] for quote in quotes}
        if len(currencies) > 1:
            raise WaveSpeedCostError(
                f"WaveSpeed quoted this run's predictions in several currencies ({', '.join(sorted(currencies))}); "
                "a budget cannot add them up. Nothing was submitted.",
                price=0.0,
                currency="/".join(sorted(currencies)),
            )
        currency = currencies.pop() if currencies else "USD"
        total = round(sum(quote["price"] for quote in quotes), 6)
        within = budget is None or total <= budget
        cost = {
            "total": total,
            "currency": currency,
            "count": len(quotes),
            "budget": budget,
            "within_budget": within,
            "model": self.model,
            "quotes": quotes,
        }
        context["ti"].xcom_push(key=COST_XCOM_KEY, value=cost)
        limit = "no budget" if budget is None else f"budget {budget:g} {currency}"
        self.log.info(
            "This run's %d WaveSpeed prediction(s) of '%s' are quoted %.4f %s in all (%s)",
            len(quotes),
            self.model,
            total,
            currency,
            limit,
        )
        if within:
            return prepared
        message = (
            f"This run's {len(quotes)} WaveSpeed prediction(s) of '{self.model}' are quoted {total:.4f} {currency} "
            f"in all, above the budget of {budget:g}; nothing was submitted or paid for. The quotes are in this "
            f"task's '{COST_XCOM_KEY}' XCom and log."
        )
        if ask:
            self.log.warning(
                "%s A person is asked to approve the spend.", message.replace("nothing was", "nothing is yet")
            )
            return prepared
        raise WaveSpeedCostError(
            f"{message} Raise the budget param, process fewer predictions in this run, or (Airflow 3.1+) "
            "set ask_approval_over_budget to have a person approve it.",
            price=total,
            currency=currency,
        )

    def _check_approval_follows(self) -> None:
        if not AIRFLOW_V_3_1_PLUS:
            raise ValueError(
                "ask_approval_over_budget needs Airflow 3.1+ (human-in-the-loop tasks); on this Airflow a run "
                "over budget can only stop: set ask_approval_over_budget=False."
            )
        if not any(getattr(task, "approves_wavespeed_spend", False) for task in self.downstream_list):
            raise ValueError(
                f"ask_approval_over_budget is set, but no WaveSpeedSpendApprovalOperator follows task "
                f"'{self.task_id}': over budget, nothing would stop the spend. Add one between this task and the "
                "WaveSpeed tasks, or set ask_approval_over_budget=False."
            )


def spend_summary(cost: Mapping[str, Any]) -> str:
    """The run's quote as Markdown, for the person asked to approve it."""
    lines = [
        f"This run's **{cost['count']}** WaveSpeed prediction(s) of `{cost['model']}` are quoted "
        f"**{cost['total']:.4f} {cost['currency']}** in all, above the budget of **{cost['budget']:g}**.",
        "",
        "| # | price | inputs |",
        "|---|---|---|",
    ]
    lines += [
        f"| {quote['index'] + 1} | {quote['price']:.4f} | "
        + ", ".join(f"{name}=`{value}`" for name, value in quote["inputs"].items())
        + " |"
        for quote in cost["quotes"]
    ]
    lines += ["", "Approve to submit them all (and pay); Reject to skip them."]
    return "\n".join(lines)


def _predictions(value: Any) -> list[Mapping[str, Any]]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(item, Mapping) for item in value):
        raise ValueError(
            f"predictions must be a list of dicts, one per prediction (the mapped task's kwargs); got {value!r}"
        )
    return list(value)


def _budget(value: Any) -> float | None:
    if value is None or (isinstance(value, str) and value.strip() in ("", "None")):
        return None
    try:
        budget = float(value)
    except (TypeError, ValueError):
        budget = -1.0
    if isinstance(value, bool) or not budget >= 0:
        raise ValueError(f"budget={value!r} must be an amount (USD) of at least 0, or None for no budget")
    return budget


def _flag(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ValueError(f"{name}={value!r} must be True or False")
