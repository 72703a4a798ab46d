"""The input schema check: inputs against the catalog's schema, before anything is uploaded or paid for."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_wavespeed.exceptions import WaveSpeedInputSchemaError
from airflow_provider_wavespeed.schema import check_inputs
from tests.helpers.catalog import IMAGE, LIPSYNC
from tests.helpers.wavespeed_tasks import AUDIO, VIDEO

SCHEMA_CASES: list[tuple[str, Any, dict[str, Any], str | None, tuple[str, ...]]] = [
    # (id, catalog entry, inputs, field at fault or None, fragments of the error)
    ("lipsync-ok", LIPSYNC, {"video": VIDEO, "audio": AUDIO, "sync_mode": "remap"}, None, ()),
    ("lipsync-default-sync-mode", LIPSYNC, {"video": VIDEO, "audio": AUDIO}, None, ()),
    ("lipsync-no-audio", LIPSYNC, {"video": VIDEO}, "audio", ("'audio'", "is required and missing", "a string")),
    ("lipsync-blank-video", LIPSYNC, {"video": " ", "audio": AUDIO}, "video", ("'video'", "required")),
    (
        "lipsync-sync-mode-outside-enum",
        LIPSYNC,
        {"video": VIDEO, "audio": AUDIO, "sync_mode": "stretch"},
        "sync_mode",
        ("'sync_mode'", "'stretch'", "bounce, loop, cut_off, silence, remap"),
    ),
    (
        "lipsync-sync-mode-wrong-type",
        LIPSYNC,
        {"video": VIDEO, "audio": AUDIO, "sync_mode": 3},
        "sync_mode",
        ("'sync_mode'", "= 3 is a integer", "takes a string"),
    ),
    ("lipsync-video-wrong-type", LIPSYNC, {"video": ["a"], "audio": AUDIO}, "video", ("= ['a'] is a array",)),
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
    check_inputs(LIPSYNC, {"video": VIDEO, "audio": AUDIO, "sync_mod": "loop"})
    assert "'sync_mod' is not in the catalog schema" in caplog.text
