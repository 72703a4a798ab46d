"""Stored outputs: where each one goes, what produced it, and when a re-run may reuse it instead of paying.

The path rule: ``output_path`` names a directory when it is written with a trailing ``/`` or is
an existing directory; the directory receives ``<request_id>[_<n>].<ext>``. Any other path names
the output file itself and must have a file extension (``.../talk.fr.mp4``): a directory written
without its ``/`` is refused before anything is paid, instead of becoming one extension-less file
that every mapped task overwrites.

Next to every stored output, ``<output>.wavespeed.json`` records what produced it: the request
id, the model, the inputs (media by content hash, so a re-upload does not change them) and their
fingerprint, the DAG run and task instance, and the time. A directory also keeps an index,
``<dir>/.wavespeed/<fingerprint>.json``, because its outputs are named by request id, which is
unknown until a prediction is paid for.

See docs/outputs.md for the whole behaviour.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, get_args
from urllib.parse import urlsplit

from airflow_provider_wavespeed import __version__
from airflow_provider_wavespeed.exceptions import StoredOutputError
from airflow_provider_wavespeed.media import (
    atomic_destination,
    is_http_url,
    local_path_of,
    object_storage_path,
    path_text,
    url_scheme,
)
from airflow_provider_wavespeed.xcoms import CLAIM_XCOM_KEY, pull_from_every_task_instance

if TYPE_CHECKING:
    from airflow_provider_wavespeed.content import MediaContent
    from airflow_provider_wavespeed.hooks.wavespeed import WaveSpeedHook
    from airflow_provider_wavespeed.models import Prediction

log = logging.getLogger(__name__)

IfOutputExists = Literal["skip_if_same_inputs", "overwrite", "fail"]
IF_OUTPUT_EXISTS_POLICIES: tuple[str, ...] = get_args(IfOutputExists)

RECORD_SUFFIX = ".wavespeed.json"
INDEX_DIRECTORY = ".wavespeed"


def check_if_output_exists(policy: Any) -> None:
    if policy not in IF_OUTPUT_EXISTS_POLICIES:
        raise ValueError(
            f"if_output_exists={policy!r} is not a policy; use one of {', '.join(IF_OUTPUT_EXISTS_POLICIES)} "
            "(skip_if_same_inputs reuses an output stored from the same inputs, overwrite always pays for a new "
            "one, fail refuses to touch an existing output)"
        )


# -- the path rule -------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutputPlan:
    """Where a task's outputs go: a directory, or one file (``<stem>_<n><ext>`` for several outputs)."""

    output_path: Any
    is_directory: bool

    def target(self, prediction: Prediction, index: int) -> Any:
        """Where output ``index`` of ``prediction`` is stored."""
        many = len(prediction.outputs) > 1
        suffix = os.path.splitext(urlsplit(prediction.outputs[index]).path)[1]
        name = f"{prediction.id}{f'_{index}' if many else ''}{suffix}"
        text = path_text(self.output_path)
        if text is not None:
            if self.is_directory:
                return f"{text.rstrip('/').rstrip(os.sep)}/{name}"
            if not many:
                return text
            stem, extension = os.path.splitext(text)
            return f"{stem}_{index}{extension or suffix}"
        if self.is_directory:
            return self.output_path / name
        path = self.output_path
        return path.with_name(f"{path.stem}_{index}{path.suffix or suffix}") if many else path

    @property
    def file_key(self) -> str:
        """The output file as one string for every way of writing it (a relative path, ``file://``)."""
        text = path_text(self.output_path)
        if text is None:
            return str(self.output_path)
        local = local_path_of(text)
        return str(local.resolve()) if local is not None else text

    def index_location(self, fingerprint: str) -> Any:
        return _location(self.output_path, f"{INDEX_DIRECTORY}/{fingerprint}.json")


def plan_output(output_path: Any) -> OutputPlan | None:
    """Decide, before anything is paid for, whether ``output_path`` is a directory or a file, and check it.

    :raises ValueError: an http(s) URL; a file path without an extension; a local path this
        process cannot create or write; object storage this Airflow cannot reach.
    """
    if output_path is None or output_path == "":
        return None
    text = path_text(output_path)
    if text is not None and is_http_url(text):
        raise ValueError(
            f"output_path={text!r} is an http(s) URL; give a local directory, a file:// or "
            "object-storage URI (s3://bucket/dir/), or an ObjectStoragePath"
        )
    shown = text if text is not None else str(output_path)
    local = local_path_of(text) if text is not None else None
    if text is not None and text.endswith(("/", os.sep)):
        is_directory = True
    elif local is not None:
        is_directory = local.is_dir()
    else:
        is_directory = _is_storage_directory(output_path if text is None else text, shown)
    if not is_directory and not _has_extension(shown):
        raise ValueError(
            f"output_path={shown!r} is neither an existing directory nor written with a trailing '/', so it "
            f"would be the output file itself, but it has no file extension: write {shown.rstrip('/') + '/'!r} "
            f"for a directory (each output named <request_id>.mp4), or a file name such as {shown + '.mp4'!r}"
        )
    if local is not None:
        _check_local_writable(local, is_directory=is_directory, shown=shown)
    return OutputPlan(output_path=output_path, is_directory=is_directory)


def check_mapped_output_path(output_path: Any, *, task_id: Any) -> None:
    """At DAG parse time: a literal file path shared by every map index of a mapped task would be overwritten.

    Only what needs no network is decided here (a trailing ``/``, a template, a local directory).
    """
    text = path_text(output_path) if output_path is not None else None
    if not text or "{{" in text or text.endswith(("/", os.sep)) or not _has_extension(text):
        return
    local = local_path_of(text)
    if local is not None and local.is_dir():
        return
    raise ValueError(
        f"Mapped task {task_id!r}: output_path={text!r} is one file for every map index, so each task would "
        "overwrite the output the previous one paid for. Give a directory (a trailing '/': each output is "
        "named by its request id), or map output_path too, one file per task (expand/expand_kwargs)."
    )


def _has_extension(shown: str) -> bool:
    return bool(os.path.splitext(shown.rstrip("/").rsplit("/", 1)[-1])[1])


def _is_storage_directory(path: Any, shown: str) -> bool:
    try:
        storage = object_storage_path(path) if isinstance(path, str) else path
        is_dir = getattr(storage, "is_dir", None)
        return bool(is_dir()) if callable(is_dir) else False
    except (ImportError, ValueError) as error:
        raise ValueError(
            f"output_path={shown!r} uses '{url_scheme(shown)}://', which this Airflow cannot write ({error}); "
            "install the Airflow provider for that storage (e.g. apache-airflow-providers-amazon for s3://), "
            "or give a local path"
        ) from None


def _check_local_writable(path: Any, *, is_directory: bool, shown: str) -> None:
    directory = path if is_directory else path.parent
    existing = directory
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(
            f"output_path={shown!r}: {str(existing)!r} is a file, so the directory {str(directory)!r} cannot "
            "be created; choose another output_path"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(
            f"output_path={shown!r}: this process cannot write to {str(existing)!r} (its mode or owner); "
            "make it writable for the Airflow worker's user, or choose another output_path"
        )


def _location(base: Any, relative: str) -> Any:
    """``relative`` under the directory ``base`` (or next to the file ``base`` when it starts with a name)."""
    text = path_text(base)
    if text is None:
        return base / relative
    joined = f"{text.rstrip('/').rstrip(os.sep)}/{relative}"
    local = local_path_of(joined)
    return local if local is not None else object_storage_path(joined)


def _record_location(target: Any) -> Any:
    """``<output>.wavespeed.json``, next to the output ``target``."""
    text = path_text(target)
    if text is None:
        return target.with_name(target.name + RECORD_SUFFIX)
    local = local_path_of(text + RECORD_SUFFIX)
    return local if local is not None else object_storage_path(text + RECORD_SUFFIX)


def _file_location(target: Any) -> Any:
    text = path_text(target)
    if text is None:
        return target
    local = local_path_of(text)
    return local if local is not None else object_storage_path(text)


# -- what produced an output ----------------------------------------------------------------------


@dataclass(frozen=True)
class InputsDescription:
    """A prediction's model and inputs, media described by content: what decides whether an output can be reused."""

    model: str
    inputs: dict[str, Any]
    media_fields: tuple[str, ...] = field(default=())

    @property
    def fingerprint(self) -> str:
        """sha256 of the model and inputs, each uploaded media input by its content hash alone."""
        identity = {
            name: {"sha256": value["sha256"]} if name in self.media_fields and isinstance(value, Mapping) else value
            for name, value in self.inputs.items()
        }
        canonical = json.dumps({"model": self.model, "inputs": identity}, sort_keys=True, default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "inputs": self.inputs, "media_fields": list(self.media_fields)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> InputsDescription:
        return cls(model=str(data["model"]), inputs=dict(data["inputs"]), media_fields=tuple(data["media_fields"]))

    def changes_since(self, record: Mapping[str, Any]) -> list[str]:
        """What differs from the inputs an earlier output was made from, for the log."""
        changes = []
        if record.get("model") != self.model:
            changes.append(f"model {record.get('model')!r} -> {self.model!r}")
        before = record.get("inputs") or {}
        for name in sorted(set(before) | set(self.inputs)):
            old, new = before.get(name), self.inputs.get(name)
            if isinstance(old, Mapping) and isinstance(new, Mapping):
                if old.get("sha256") != new.get("sha256"):
                    changes.append(
                        f"{name} content {str(old.get('sha256'))[:12]} -> {str(new.get('sha256'))[:12]} "
                        f"({new.get('source')})"
                    )
            elif old != new:
                changes.append(f"{name} {_short(old)} -> {_short(new)}")
        return changes or ["the inputs fingerprint"]


def describe_inputs(
    model: str, inputs: Mapping[str, Any], contents: Mapping[str, MediaContent], media_fields: tuple[str, ...]
) -> InputsDescription:
    """The inputs as a record shows them: each read media input by its content, everything else as given."""
    described = {name: contents[name].to_json() if name in contents else value for name, value in inputs.items()}
    return InputsDescription(model=model, inputs=described, media_fields=tuple(name for name in media_fields))


def _short(value: Any) -> str:
    shown = repr(value)
    return shown if len(shown) <= 80 else shown[:77] + "..."


@dataclass(frozen=True)
class TaskInstanceId:
    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    try_number: int

    @classmethod
    def of(cls, context: Any) -> TaskInstanceId:
        ti = context["ti"]
        return cls(
            dag_id=str(ti.dag_id),
            run_id=str(ti.run_id),
            task_id=str(ti.task_id),
            map_index=_integer(getattr(ti, "map_index", -1), -1),
            try_number=_integer(getattr(ti, "try_number", 0), 0),
        )

    def shown(self) -> str:
        index = f"[{self.map_index}]" if self.map_index >= 0 else ""
        return f"task {self.task_id}{index} of DAG run {self.dag_id}/{self.run_id}"


def _integer(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _read_record(location: Any) -> dict[str, Any] | None:
    """A provenance record, or None when there is none or it is not one of ours (logged)."""
    try:
        if not location.exists():
            return None
        data = json.loads(location.read_text())
    except (OSError, ValueError) as error:
        log.warning("Ignoring the unreadable provenance record %s: %s", location, error)
        return None
    return data if isinstance(data, dict) and "inputs_fingerprint" in data else None


def _write_json(location: Any, data: Mapping[str, Any]) -> None:
    if getattr(location, "protocol", None) in ("file", "local"):
        location.parent.mkdir(parents=True, exist_ok=True)  # object stores have no directories to create
    with atomic_destination(location, location.name) as (stream, _):
        stream.write(json.dumps(data, indent=2, sort_keys=False, default=str).encode() + b"\n")


def _exists(target: Any) -> bool:
    try:
        return bool(_file_location(target).exists())
    except OSError:
        return False


# -- reusing, refusing, and storing ---------------------------------------------------------------


def claim_output_file(context: Any, plan: OutputPlan, task_ids: list[str], *, paid: str | None = None) -> None:
    """Announce this task instance's output file to its DAG run; fail if another one announced it too.

    Every task instance pushes its claim and then reads the others', so of two that race at least
    the second sees the first: no two of them both go on to pay for the same file. One that finds
    another's claim before paying withdraws its own and fails. It is checked again just before the
    download (``paid`` names the prediction then), so that no paid output is ever overwritten by
    another task's.
    """
    if plan.is_directory:
        return
    me = TaskInstanceId.of(context)
    context["ti"].xcom_push(
        key=CLAIM_XCOM_KEY, value={"output_file": plan.file_key, "task_id": me.task_id, "map_index": me.map_index}
    )
    try:
        claims = pull_from_every_task_instance(context, task_ids, CLAIM_XCOM_KEY)
    # Unknown claims cannot prove a conflict; the task goes on as it did before claims existed.
    except Exception:
        log.warning("Could not read the output files of the other tasks of this run", exc_info=True)
        return
    for claim in claims:
        if (
            isinstance(claim, Mapping)
            and claim.get("output_file") == plan.file_key
            and (claim.get("task_id"), claim.get("map_index")) != (me.task_id, me.map_index)
        ):
            other = TaskInstanceId(me.dag_id, me.run_id, str(claim["task_id"]), _integer(claim["map_index"], -1), 0)
            if paid is None:
                # Withdrawn, so that the task which holds the file does not find this claim when it checks
                # again before its download, and refuse its own paid output. A claim of no file rather
                # than None: after a push of None, Airflow 3.0.6 still returns the earlier value.
                context["ti"].xcom_push(key=CLAIM_XCOM_KEY, value={"output_file": None})
                outcome = "Nothing was uploaded or submitted."
            else:
                outcome = (
                    f"This task's prediction {paid} is paid for and was not stored; collect it without paying "
                    f"again with PredictionSensor(request_id='{paid}', output_path=<a path of its own>), or give "
                    "this task its own output_path and retry it (the retry resumes the same prediction)."
                )
            raise StoredOutputError(
                f"output_path={plan.file_key!r} is also the output file of {other.shown()}: two tasks of one DAG "
                f"run would overwrite each other's paid output. {outcome} Give each task its own output file "
                "(map output_path too), or a directory (a trailing '/': outputs are named by request id)."
            )


def reusable_result(
    plan: OutputPlan, description: InputsDescription, policy: IfOutputExists, context: Any
) -> dict[str, Any] | None:
    """The stored result to return instead of paying, or None to submit; raises when ``policy`` forbids both.

    :raises StoredOutputError: ``policy`` is ``fail`` and an output is there, or the output file was
        stored by another task instance of this DAG run.
    """
    fingerprint = description.fingerprint
    if plan.is_directory:
        record = _read_record(plan.index_location(fingerprint))
        if record is None or not all(_exists(stored) for stored in record.get("stored_outputs", [])):
            return None
        where = f"{plan.output_path} holds {', '.join(record['stored_outputs'])}"
    else:
        if not _exists(plan.output_path):
            return None
        record = _read_record(_record_location(plan.output_path))
        where = f"{plan.output_path} exists"
    made_by = (
        f"stored by prediction {record['request_id']} (model {record.get('model')}, {record.get('task_id')} of DAG "
        f"run {record.get('dag_id')}/{record.get('run_id')}, at {record.get('stored_at')})"
        if record
        else "with no provenance record next to it"
    )
    if policy == "fail":
        raise StoredOutputError(
            f"{where}, {made_by}, and if_output_exists='fail': nothing was uploaded or submitted. Move or delete "
            "it, or set if_output_exists='skip_if_same_inputs' (reuse it when the inputs are the same) or "
            "'overwrite'."
        )
    if policy == "overwrite":
        log.info("%s, %s; if_output_exists='overwrite', so a new prediction is paid for.", where, made_by)
        return None
    if record is None:
        log.warning(
            "%s %s, so the inputs that made it are unknown: it is replaced by a new (paid) prediction.", where, made_by
        )
        return None
    if record["inputs_fingerprint"] != fingerprint:
        log.info(
            "%s, %s, from other inputs (changed: %s): it is replaced by a new (paid) prediction.",
            where,
            made_by,
            "; ".join(description.changes_since(record)),
        )
        return None
    log.info(
        "Not uploading or submitting anything: %s, %s, from the same inputs (fingerprint %s). Returning that "
        "result; set if_output_exists='overwrite' to pay for a new prediction.",
        where,
        made_by,
        fingerprint[:16],
    )
    result: dict[str, Any] = record["result"]
    return result


def store_outputs(
    hook: WaveSpeedHook,
    plan: OutputPlan,
    prediction: Prediction,
    description: InputsDescription | None,
    result: dict[str, Any],
    context: Any,
) -> list[str]:
    """Download every output to its place and write its provenance record; return where they are."""
    me = TaskInstanceId.of(context)
    targets = [plan.target(prediction, index) for index in range(len(prediction.outputs))]
    stored = []
    for url, target in zip(prediction.outputs, targets, strict=True):
        _record_location(target).unlink(missing_ok=True)  # a crash mid-download must not leave it describing us
        stored.append(hook.download(url, target))
    record = {
        "about": "What produced the output file next to this record (airflow-provider-wavespeed).",
        "request_id": prediction.id,
        "model": prediction.model or (description.model if description else ""),
        "inputs_fingerprint": description.fingerprint if description else None,
        "inputs": description.inputs if description else None,
        "stored_outputs": stored,
        "output_urls": list(prediction.outputs),
        "dag_id": me.dag_id,
        "run_id": me.run_id,
        "task_id": me.task_id,
        "map_index": me.map_index,
        "try_number": me.try_number,
        "stored_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "provider_version": __version__,
        "result": {**result, "stored_outputs": stored},
    }
    for target in targets:
        _write_json(_record_location(target), record)
    if plan.is_directory and description is not None:
        _write_json(plan.index_location(description.fingerprint), record)
    return stored
