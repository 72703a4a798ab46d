"""``make bench``: run every benchmark, print the report, write ``benchmarks/results/latest.json``.

``python -m benchmarks --smoke`` runs each at a tiny size (the test suite's check that none has
rotted; its figures mean nothing and are written nowhere unless ``--output`` says so).
``--only triggerer_scale,parse_cost`` runs some sections.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import os
import platform
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.harness import (
    RESULTS_FILE,
    SectionResult,
    compile_bytecode,
    git_commit,
    git_tree_is_dirty,
    isolated_airflow_home,
    write_results,
)

SECTIONS = ("triggerer_scale", "poll_schedule", "parse_cost", "media_transfer", "worker_slot", "first_admission")
COMMAND = "make bench"


def run_section(key: str, *, smoke: bool) -> SectionResult:
    """Run one section at its full (or smoke) scale."""
    module: Any = importlib.import_module(f"benchmarks.{key}")
    result: SectionResult = module.run(module.SMOKE if smoke else module.FULL)
    return result


def machine() -> dict[str, Any]:
    with open("/proc/meminfo") as meminfo:
        total_kib = int(meminfo.readline().split()[1])
    versions = {name: importlib.metadata.version(name) for name in ("apache-airflow", "aiohttp", "requests")}
    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(total_kib / 1024 / 1024, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        **versions,
    }


def report(document: dict[str, Any], results: list[SectionResult]) -> str:
    """The whole report as markdown: what docs/performance.md shows."""
    commit = document["commit"] + (" (with uncommitted changes)" if document["dirty"] else "")
    host = document["machine"]
    lines = [
        f"Made by `{document['command']}` on {document['started_at'][:10]} at commit {commit}, in "
        f"{document['wall_seconds'] / 60:.1f} min, on {host['cpus']} CPUs / {host['memory_gib']} GiB, Python "
        f"{host['python']}, Airflow {host['apache-airflow']}.",
        "",
    ]
    for result in results:
        lines += [result.markdown(), ""]
    failed = {key: section for key, section in document["sections"].items() if "error" in section}
    for key, section in failed.items():
        lines += [f"### {key}: FAILED", "", "```", section["error"].rstrip(), "```", ""]
    targets = [target for result in results for target in result.targets]
    met = sum(target.met is True for target in targets)
    lines.append(f"Targets met: {met} of {len(targets)}" + (f"; {len(failed)} sections failed" if failed else ""))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks that every benchmark still runs")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma list of sections ({', '.join(SECTIONS)})")
    parser.add_argument(
        "--output", type=Path, help=f"where to write the JSON (default: {RESULTS_FILE}, not for --smoke)"
    )
    args = parser.parse_args(argv)
    selected = [key.strip() for key in args.only.split(",") if key.strip()]
    unknown = sorted(set(selected) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown sections {unknown}; known: {', '.join(SECTIONS)}")
    output = args.output or (None if args.smoke else RESULTS_FILE)

    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    started = time.monotonic()
    results: list[SectionResult] = []
    sections: dict[str, Any] = {}
    if not args.smoke:
        print(f"[bench] bytecode compiled in {compile_bytecode():.0f} s", file=sys.stderr, flush=True)
    with isolated_airflow_home():
        for key in selected:
            print(f"[bench] {key} ...", file=sys.stderr, flush=True)
            try:
                result = run_section(key, smoke=args.smoke)
            except Exception:  # noqa: BLE001 - one broken section must not hide the others' figures
                sections[key] = {"error": traceback.format_exc()}
                print(sections[key]["error"], file=sys.stderr, flush=True)
                continue
            results.append(result)
            sections[key] = result.to_json()
            print(f"[bench] {key} took {result.wall_seconds:.0f} s", file=sys.stderr, flush=True)
    document = {
        "command": COMMAND + (" (smoke)" if args.smoke else ""),
        "commit": git_commit(),
        "dirty": git_tree_is_dirty(),
        "started_at": started_at,
        "wall_seconds": time.monotonic() - started,
        "machine": machine(),
        "sections": sections,
    }
    print(report(document, results), flush=True)
    if output is not None:
        write_results(document, output)
        print(f"\n[bench] figures written to {output}", file=sys.stderr)
    return 1 if any("error" in section for section in sections.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
