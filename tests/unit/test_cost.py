"""Prices, the model catalog, the input schema check, and refusals for lack of funds."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_wavespeed.emulator import EmulatorConfig
from airflow_provider_wavespeed.emulator.pricing import catalog
from airflow_provider_wavespeed.exceptions import (
    WaveSpeedAuthError,
    WaveSpeedInputSchemaError,
    WaveSpeedInsufficientBalanceError,
    WaveSpeedMalformedResponseError,
    WaveSpeedServerError,
)
from airflow_provider_wavespeed.hooks.wavespeed import WaveSpeedHook, is_retryable_error
from airflow_provider_wavespeed.models import CatalogModel, ModelPrice, catalog_from_api, parse_envelope
from airflow_provider_wavespeed.schema import check_inputs
from tests.helpers.api_answers import BASE, envelope

# The catalog as the emulator serves it: lipsync's schema is its API page's parameter table.
CATALOG = {entry.model: entry for entry in catalog_from_api(catalog(EmulatorConfig(api_key="k")), url=BASE)}
LIPSYNC = CATALOG["sync/lipsync-1.9.0-beta"]
IMAGE = CATALOG["wavespeed-ai/z-image/turbo"]
VIDEO_URL = "https://media.test/v.mp4"
AUDIO_URL = "https://media.test/a.wav"


def test_the_catalog_lists_lipsync_with_its_documented_parameters():
    assert LIPSYNC.required == ("video", "audio")
    assert LIPSYNC.properties["sync_mode"]["enum"] == ["bounce", "loop", "cut_off", "silence", "remap"]
    assert LIPSYNC.properties["sync_mode"]["default"] == "cut_off"
    assert {name: spec["type"] for name, spec in LIPSYNC.properties.items()} == dict.fromkeys(
        ("video", "audio", "sync_mode"), "string"
    )


SCHEMA_CASES: list[tuple[str, Any, dict[str, Any], str | None, tuple[str, ...]]] = [
    # (id, catalog entry, inputs, field at fault or None, fragments of the error)
    ("lipsync-ok", LIPSYNC, {"video": VIDEO_URL, "audio": AUDIO_URL, "sync_mode": "remap"}, None, ()),
    ("lipsync-default-sync-mode", LIPSYNC, {"video": VIDEO_URL, "audio": AUDIO_URL}, None, ()),
    ("lipsync-no-audio", LIPSYNC, {"video": VIDEO_URL}, "audio", ("'audio'", "is required and missing", "a string")),
    ("lipsync-blank-video", LIPSYNC, {"video": " ", "audio": AUDIO_URL}, "video", ("'video'", "required")),
    (
        "lipsync-sync-mode-outside-enum",
        LIPSYNC,
        {"video": VIDEO_URL, "audio": AUDIO_URL, "sync_mode": "stretch"},
        "sync_mode",
        ("'sync_mode'", "'stretch'", "bounce, loop, cut_off, silence, remap"),
    ),
    (
        "lipsync-sync-mode-wrong-type",
        LIPSYNC,
        {"video": VIDEO_URL, "audio": AUDIO_URL, "sync_mode": 3},
        "sync_mode",
        ("'sync_mode'", "= 3 is a integer", "takes a string"),
    ),
    ("lipsync-video-wrong-type", LIPSYNC, {"video": ["a"], "audio": AUDIO_URL}, "video", ("= ['a'] is a array",)),
    ("image-ok", IMAGE, {"prompt": "a cat", "seed": 7, "output_format": "webp"}, None, ()),
    ("image-integral-float-seed", IMAGE, {"prompt": "a cat", "seed": 7.0}, None, ()),
    ("image-no-prompt", IMAGE, {"seed": 1}, "prompt", ("'prompt'", "is required and missing")),
    ("image-seed-a-string", IMAGE, {"prompt": "x", "seed": "7"}, "seed", ("'seed'", "= '7' is a string", "integer")),
    ("image-seed-a-bool", IMAGE, {"prompt": "x", "seed": True}, "seed", ("= True is a boolean", "integer")),
    ("image-seed-a-fraction", IMAGE, {"prompt": "x", "seed": 1.5}, "seed", ("= 1.5 is a number", "integer")),
    (
        "image-seed-below-minimum",
        IMAGE,
        {"prompt": "x", "seed": -2},
        "seed",
        ("below the minimum -1", "-1 to 2147483647"),
    ),
    ("image-seed-above-maximum", IMAGE, {"prompt": "x", "seed": 2**31}, "seed", ("above the maximum 2147483647",)),
    (
        "image-format-outside-enum",
        IMAGE,
        {"prompt": "x", "output_format": "gif"},
        "output_format",
        ("'gif'", "jpeg, png, webp"),
    ),
]


@pytest.mark.parametrize(
    ("entry", "inputs", "field", "fragments"),
    [case[1:] for case in SCHEMA_CASES],
    ids=[case[0] for case in SCHEMA_CASES],
)
def test_inputs_are_checked_against_the_catalog_schema(entry, inputs, field, fragments):
    if field is None:
        check_inputs(entry, inputs)
        return
    with pytest.raises(WaveSpeedInputSchemaError) as raised:
        check_inputs(entry, inputs)
    assert raised.value.field == field
    assert raised.value.model == entry.model
    for fragment in (*fragments, "nothing was uploaded or paid for"):
        assert fragment in str(raised.value)


def test_media_inputs_not_uploaded_yet_are_checked_for_presence_only():
    check_inputs(LIPSYNC, {"video": "/data/talk.mp4", "audio": object()}, media_inputs=("video", "audio"))
    with pytest.raises(WaveSpeedInputSchemaError, match="'audio'"):
        check_inputs(LIPSYNC, {"video": "/data/talk.mp4"}, media_inputs=("video",))


def test_an_input_the_schema_does_not_list_passes_with_a_warning(caplog):
    check_inputs(LIPSYNC, {"video": VIDEO_URL, "audio": AUDIO_URL, "sync_mod": "loop"})
    assert "'sync_mod' is not in the catalog schema" in caplog.text


# -- prices ------------------------------------------------------------------------------------------


def test_a_price_answer_parses_with_and_without_its_optional_fields():
    full = ModelPrice.from_api(
        {"model_id": "m/x", "price": "0.2", "discounted_price": 0.15, "discount_rate": 25, "currency": "USD"},
        model="m/x",
        url=BASE,
    )
    assert (full.price, full.charged, full.discount_rate) == (0.2, 0.15, 25.0)
    assert full.describe() == "0.1500 USD (list price 0.2000, 25% off)"
    bare = ModelPrice.from_api({"price": 0.05}, model="m/x", url=BASE)
    assert (bare.model, bare.charged, bare.currency) == ("m/x", 0.05, "USD")


@pytest.mark.parametrize(
    "data", [None, [], {"price": None}, {"price": "free"}, {"price": True}, {"price": float("nan")}]
)
def test_a_price_answer_without_a_number_is_malformed(data):
    with pytest.raises(WaveSpeedMalformedResponseError, match="no numeric data.price|no object"):
        ModelPrice.from_api(data, model="m/x", url=BASE)


def test_get_price_posts_the_model_and_inputs(wavespeed_connection, requests_mock):
    wavespeed_connection(host=BASE)
    route = requests_mock.post(
        f"{BASE}/api/v3/model/price", json=envelope({"model_id": "sync/x", "price": 0.3, "discounted_price": 0.27})
    )

    quote = WaveSpeedHook().get_price("sync/x", {"video": VIDEO_URL})

    assert route.last_request.json() == {"model_id": "sync/x", "inputs": {"video": VIDEO_URL}}
    assert quote.charged == 0.27


def test_the_catalog_is_fetched_once_and_refreshed_once_for_a_model_it_lacks(wavespeed_connection, requests_mock):
    wavespeed_connection(host=BASE)
    listed = [{"model_id": "sync/lipsync-1.9.0-beta", "base_price": 0.025, "api_schema": {"api_schemas": [{}]}}]
    route = requests_mock.get(f"{BASE}/api/v3/models", json=envelope(listed))
    hook = WaveSpeedHook()

    entry = hook.get_catalog_model("sync/lipsync-1.9.0-beta")
    assert entry is not None and entry.base_price == 0.025
    assert WaveSpeedHook().get_catalog_model("sync/lipsync-1.9.0-beta") is not None
    assert route.call_count == 1, "cached for the process"
    assert hook.get_catalog_model("sync/newer-model") is None
    assert route.call_count == 2, "a model missing from the cached copy refreshes it once"


def test_odd_catalog_entries_are_skipped_not_fatal():
    models = catalog_from_api([{"model_id": "a/b"}, "junk", {"name": "no id"}], url=BASE)
    assert [entry.model for entry in models] == ["a/b"]
    assert models[0].required == () and models[0].properties == {}


# -- refusals for lack of funds (which answers count is inferred: WaveSpeed documents none) -----------


@pytest.mark.parametrize(
    ("http_status", "body"),
    [
        (402, {"code": 402, "message": "Payment Required"}),
        (200, {"code": 402, "message": "anything"}),
        (400, {"code": 400, "message": "Insufficient balance"}),
        (403, {"code": 403, "message": "Your balance is not enough, please top up"}),
        (500, {"code": 500, "message": "insufficient_funds"}),
        (400, {"code": 400, "message": "Not enough credits for this task"}),
    ],
)
def test_a_refusal_that_says_the_balance_is_short_is_one_typed_error_never_retried(http_status, body):
    import json

    with pytest.raises(WaveSpeedInsufficientBalanceError) as raised:
        parse_envelope(http_status=http_status, body=json.dumps(body).encode(), url=f"{BASE}/api/v3/sync/x")

    assert "Top up" in str(raised.value)
    assert not is_retryable_error(raised.value, idempotent=False)
    assert not is_retryable_error(raised.value, idempotent=True)


@pytest.mark.parametrize(
    ("http_status", "message", "error"),
    [
        (401, "Please top up to activate your key", WaveSpeedAuthError),
        (500, "balance service unavailable", WaveSpeedServerError),
        (403, "Account suspended", WaveSpeedAuthError),
    ],
)
def test_other_refusals_keep_their_own_type(http_status, message, error):
    import json

    body = json.dumps({"code": http_status, "message": message}).encode()
    with pytest.raises(error):
        parse_envelope(http_status=http_status, body=body, url=f"{BASE}/api/v3/sync/x")


# -- the operator: nothing uploaded or paid before the checks ------------------------------------------


@pytest.fixture
def operator_hook():
    from airflow_provider_wavespeed.operators.lipsync import WaveSpeedRunModelOperator
    from tests.unit.test_operators import replaced_hook

    yield from replaced_hook(WaveSpeedRunModelOperator)


def run_model(**kwargs: Any) -> Any:
    from airflow_provider_wavespeed.operators.lipsync import WaveSpeedRunModelOperator
    from tests.unit.test_operators import make_context

    arguments = {
        "model": "wavespeed-ai/z-image/turbo",
        "inputs": {"prompt": "x"},
        "wait_for_completion": False,
        **kwargs,
    }
    return WaveSpeedRunModelOperator(task_id="run", **arguments).execute(make_context())


def test_inputs_the_schema_refuses_fail_before_any_upload_quote_or_submit(operator_hook, tmp_path):
    from airflow_provider_wavespeed.operators.lipsync import LipsyncOperator
    from tests.unit.test_operators import MP4_HEADER, make_context

    local_video = tmp_path / "talk.mp4"
    local_video.write_bytes(MP4_HEADER + b"\x00" * 64)
    # The catalog's enum rules, not the provider's own list of modes: here it allows only cut_off.
    only_cut_off = {**LIPSYNC.properties, "sync_mode": {"type": "string", "enum": ["cut_off"]}}
    operator_hook.get_catalog_model.return_value = CatalogModel(
        model=LIPSYNC.model, request_schema={**LIPSYNC.request_schema, "properties": only_cut_off}
    )
    operator = LipsyncOperator(task_id="lipsync", video=str(local_video), audio=AUDIO_URL, sync_mode="bounce")

    with pytest.raises(WaveSpeedInputSchemaError, match="'bounce' is not one of cut_off"):
        operator.execute(make_context())

    operator_hook.upload.assert_not_called()
    operator_hook.get_price.assert_not_called()
    operator_hook.submit.assert_not_called()


def test_a_model_the_catalog_does_not_list_fails_unless_allowed(operator_hook):
    from tests.unit.test_operators import parsed

    operator_hook.get_catalog_model.return_value = None
    with pytest.raises(
        WaveSpeedInputSchemaError, match="does not list model 'wavespeed-ai/z-image/turbo'.*allow_unlisted_model=True"
    ):
        run_model()
    operator_hook.submit.assert_not_called()

    operator_hook.submit.return_value = parsed("created")
    result = run_model(allow_unlisted_model=True)
    assert operator_hook.submit.call_count == 1
    assert (result["price"], result["currency"]) == (0.15, "USD")


def test_max_price_and_min_balance_after_stop_before_the_submit(operator_hook):
    from airflow_provider_wavespeed.exceptions import WaveSpeedCostError

    operator_hook.get_catalog_model.return_value = IMAGE
    with pytest.raises(WaveSpeedCostError, match=r"quotes 0.1500 USD \(list price 0.2000, 25% off\).*max_price=0.1"):
        run_model(max_price=0.1)
    operator_hook.get_balance.return_value = 0.2
    with pytest.raises(WaveSpeedCostError, match="balance is 0.2000 USD.*would leave 0.0500.*min_balance_after=0.1"):
        run_model(min_balance_after=0.1)
    operator_hook.submit.assert_not_called()


@pytest.mark.parametrize(("name", "value"), [("max_price", "1"), ("max_price", -1), ("min_balance_after", True)])
def test_a_cap_that_is_not_an_amount_fails_when_the_dag_is_parsed(name, value):
    from airflow_provider_wavespeed.operators.lipsync import WaveSpeedRunModelOperator

    with pytest.raises(ValueError, match=name):
        WaveSpeedRunModelOperator(task_id="run", model="a/b", inputs={}, **{name: value})
