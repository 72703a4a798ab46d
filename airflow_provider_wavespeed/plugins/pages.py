"""The HTML of the WaveSpeed view: plain server-rendered pages that Airflow shows in its own frame."""

from __future__ import annotations

import json
from html import escape
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    from datetime import datetime

    from airflow_provider_wavespeed.plugins.records import OutputVideo, PredictionRecord, RunBoard

_STYLE = """
:root { color-scheme: light dark; --muted: #6b7280; --line: rgba(127,127,127,.25); }
body { font: 14px/1.45 system-ui, sans-serif; margin: 16px; }
h1 { font-size: 18px; margin: 0 0 4px; } h2 { font-size: 15px; margin: 20px 0 8px; }
.muted { color: var(--muted); } code { font-size: 13px; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-weight: 600; }
.state { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; color: #fff;
         background: #6b7280; }
.state-success { background: #15803d; } .state-failed, .state-upstream_failed { background: #b91c1c; }
.state-deferred { background: #7c3aed; } .state-running { background: #0284c7; }
.state-queued, .state-scheduled { background: #a16207; } .state-skipped { background: #db2777; }
video { max-width: 100%; background: #000; border-radius: 4px; }
.board video { width: 220px; }
.timeline td:first-child { width: 120px; }
.total { font-size: 16px; font-weight: 600; }
"""


def _page(title: str, body: str) -> str:
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{_STYLE}</style></head><body>{body}</body></html>"
    )


def _time(value: datetime | None) -> str:
    return escape(value.strftime("%Y-%m-%d %H:%M:%S %Z").strip()) if value else '<span class="muted">-</span>'


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return '<span class="muted">-</span>'
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s" if minutes else f"{seconds:.1f} s"


def _price(record: PredictionRecord) -> str:
    price = record.price
    return f"{price:.4f} {escape(record.currency)}" if price is not None else '<span class="muted">not recorded</span>'


def _state(state: str) -> str:
    return f'<span class="state state-{escape(state)}">{escape(state)}</span>'


def media_url(prefix: str, record: PredictionRecord, output: OutputVideo) -> str:
    """Where the browser gets the video: this view's copy of the stored file, else WaveSpeed's URL."""
    if output.stored_is_readable:
        parts = (record.dag_id, record.run_id, record.task_id, str(record.map_index), str(output.index))
        return f"{prefix}/media/" + "/".join(quote(part, safe="") for part in parts)
    return output.wavespeed_url or ""


def _player(prefix: str, record: PredictionRecord, output: OutputVideo, *, preload: str) -> str:
    source = media_url(prefix, record, output)
    if not source:
        return '<span class="muted">no output</span>'
    return (
        f'<video controls preload="{preload}" src="{escape(source)}" data-source="{escape(output.source)}"></video>'
        f'<div class="muted">playing the {escape(output.source)}</div>'
    )


def task_instance_page(prefix: str, record: PredictionRecord) -> str:
    """One task instance: its prediction, timeline, inputs, price and the output playing inline."""
    inputs = "".join(
        f"<tr><th>{escape(name)}</th><td><code>{escape(_text(value))}</code></td></tr>"
        for name, value in record.inputs.items()
    )
    timeline = "".join(
        f'<tr><td>{escape(step.status)}</td><td>{_time(step.at)}</td><td class="muted">{escape(step.note)}</td></tr>'
        for step in record.timeline
    )
    outputs = (
        "".join(
            f"<h2>Output {output.index + 1}</h2>{_player(prefix, record, output, preload='auto')}"
            f"<table><tr><th>Stored copy</th><td><code>{escape(output.stored or '-')}</code></td></tr>"
            f"<tr><th>WaveSpeed copy</th><td><code>{escape(output.wavespeed_url or '-')}</code>"
            ' <span class="muted">(deleted by WaveSpeed after 7 days)</span></td></tr></table>'
            for output in record.outputs
        )
        or '<p class="muted">No output yet.</p>'
    )
    model = str(record.result.get("model") or record.inputs.get("model") or "-")
    body = f"""
<h1>WaveSpeed prediction: {escape(record.label)}</h1>
<div class="muted">{escape(record.dag_id)} / {escape(record.run_id)} / {escape(record.task_id)}</div>
<table>
<tr><th>State</th><td>{_state(record.state)} (try {record.try_number})</td></tr>
<tr><th>Request id</th><td><code data-testid="request-id">{escape(record.request_id or "not submitted yet")}</code>
</td></tr>
<tr><th>Model</th><td><code>{escape(model)}</code></td></tr>
<tr><th>Price</th><td data-testid="price">{_price(record)}</td></tr>
<tr><th>Duration</th><td>{_duration(record.duration_seconds)}</td></tr>
</table>
<h2>Status</h2><table class="timeline">{timeline}</table>
{outputs}
<h2>Inputs</h2><table>{inputs or '<tr><td class="muted">not rendered yet</td></tr>'}</table>
"""
    return _page(f"WaveSpeed: {record.label}", body)


def board_page(prefix: str, board: RunBoard, task_instance_href: str) -> str:
    """Every WaveSpeed task instance of a DAG run, with a player each and the run's total cost."""
    rows = []
    for record in board.records:
        players = "".join(_player(prefix, record, output, preload="metadata") for output in record.outputs)
        href = task_instance_href.format(
            dag_id=quote(record.dag_id, safe=""),
            run_id=quote(record.run_id, safe=""),
            task_id=quote(record.task_id, safe=""),
            map_index=record.map_index,
        )
        rows.append(
            f'<tr data-testid="dub"><td><a href="{escape(href)}">{escape(record.label)}</a></td>'
            f"<td>{_state(record.state)}</td><td>{_duration(record.duration_seconds)}</td><td>{_price(record)}</td>"
            f"<td><code>{escape(record.request_id or '-')}</code></td>"
            f"<td>{players or '<span class=muted>no output yet</span>'}</td></tr>"
        )
    currency = ", ".join(sorted(board.currencies)) or "USD"
    priced = f"{board.priced} of {len(board.records)} priced"
    body = f"""
<h1>WaveSpeed board</h1>
<div class="muted">{escape(board.dag_id)} / {escape(board.run_id)}:
{len(board.records)} WaveSpeed task instance(s)</div>
<p class="total" data-testid="total">Run total: {board.total_price:.4f} {escape(currency)}
<span class="muted">({priced})</span></p>
<table class="board">
<tr><th>Label</th><th>State</th><th>Duration</th><th>Price</th><th>Request id</th><th>Output</th></tr>
{"".join(rows) or '<tr><td colspan="6" class="muted">No WaveSpeed task in this run.</td></tr>'}
</table>
"""
    return _page(f"WaveSpeed board: {board.run_id}", body)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)
