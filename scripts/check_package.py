#!/usr/bin/env python3
"""Build both distributions' sdist and wheel, and check their metadata and contents (``make check-package``).

Metadata is validated by ``packaging.metadata``, the PyPA's parser and validator of the core
metadata specification, as twine check does before an upload; twine's remaining check, rendering
the README, cannot fail for a Markdown README, so twine is not a dependency. Contents: the provider's
wheel holds the provider package, its ``py.typed`` and the license, and nothing of the emulator or
of the repository's tests, examples, demo, benchmarks or docs; the sdist holds what a rebuild needs.
The emulator (``emulator/``, its own distribution) is built the same way, and its wheel is installed
into a fresh virtual environment without Airflow, where it must import and answer a request.
Prints a report; exits non-zero on the first failed check, naming it.

Run with the project's environment: ``.venv/bin/python scripts/check_package.py [--out-dir DIR]``.
"""

from __future__ import annotations

import argparse
import configparser
import json
import os
import re
import select
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from email.parser import HeaderParser
from pathlib import Path

from packaging.metadata import ExceptionGroup, InvalidMetadata, Metadata
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parent.parent
PACKAGE = "airflow_provider_wavespeed"
DISTRIBUTION = "airflow-provider-wavespeed"
ENTRY_POINT = ("apache_airflow_provider", "provider_info", f"{PACKAGE}:get_provider_info")

EMULATOR = REPO / "emulator"
EMULATOR_PACKAGE = "wavespeed_emulator"
EMULATOR_DISTRIBUTION = "wavespeed-emulator"
EMULATOR_SCRIPT = ("console_scripts", "wavespeed-emulator", f"{EMULATOR_PACKAGE}.__main__:main")
# The lock the development environment was synced from: installing the emulator's wheel under its
# pins takes every dependency from uv's cache.
LOCK = REPO / "requirements" / "airflow-3.3.txt"
SERVE_TIMEOUT_SECONDS = 30.0

# Repository folders that must never ship in the wheel.
NOT_IN_WHEEL = ("tests/", "example_dags/", "devstack/", "benchmarks/", "docs/", "scripts/", "requirements/")


@dataclass(frozen=True)
class Distribution:
    """One distribution of this repository, and what its built files must say and hold."""

    name: str
    package: str
    source: Path
    entry_point: tuple[str, str, str]
    required: tuple[str, ...]
    """Distributions its Requires-Dist must name."""
    forbidden: tuple[str, ...]
    """Distributions its Requires-Dist must not name."""
    extras: tuple[str, ...]

    @property
    def in_sdist(self) -> tuple[str, ...]:
        """What a rebuild from the sdist needs."""
        return ("pyproject.toml", "README.md", "LICENSE", f"{self.package}/__init__.py", f"{self.package}/py.typed")


PROVIDER = Distribution(
    name=DISTRIBUTION,
    package=PACKAGE,
    source=REPO,
    entry_point=ENTRY_POINT,
    required=("apache-airflow", "apache-airflow-providers-common-compat"),
    forbidden=(EMULATOR_DISTRIBUTION,),
    extras=("openlineage",),
)
EMULATOR_DIST = Distribution(
    name=EMULATOR_DISTRIBUTION,
    package=EMULATOR_PACKAGE,
    source=EMULATOR,
    entry_point=EMULATOR_SCRIPT,
    required=("aiohttp",),
    forbidden=("apache-airflow", DISTRIBUTION),
    extras=("render",),
)


class CheckFailed(Exception):
    """One check failed; the message says which and why."""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, help="keep the built files there (default: a temporary directory)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="check-package-") as scratch:
        out_dir = args.out_dir or Path(scratch)
        try:
            for distribution in (PROVIDER, EMULATOR_DIST):
                sdist, wheel = build(distribution, out_dir)
                version = package_version(distribution)
                check_wheel(distribution, wheel, version)
                check_sdist(distribution, sdist, version)
                if distribution is EMULATOR_DIST:
                    check_emulator_runs_alone(wheel, Path(scratch) / "emulator-venv")
        except CheckFailed as failure:
            print(f"FAILED: {failure}", file=sys.stderr)
            return 1
    print("package checks passed")
    return 0


def package_version(distribution: Distribution) -> str:
    init = distribution.source / distribution.package / "__init__.py"
    found = re.search(r'^__version__ = "([^"]+)"', init.read_text(), re.MULTILINE)
    if found is None:
        raise CheckFailed(f'{distribution.package}/__init__.py has no __version__ = "..." line')
    return found.group(1)


def uv() -> str:
    found = Path(sys.executable).with_name("uv")
    return str(found) if found.exists() else "uv"


def run(command: list[str], what: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(  # noqa: S603 - our own commands
        command, capture_output=True, text=True, check=False, cwd=cwd, env={**os.environ, **env}
    )
    if done.returncode != 0:
        raise CheckFailed(f"{what} failed ({' '.join(command)}):\n{done.stdout}{done.stderr}")
    return done


def build(distribution: Distribution, out_dir: Path) -> tuple[Path, Path]:
    """Build both, isolated from the development environment, as a release would be built."""
    target = out_dir / distribution.name
    command = [uv(), "build", "--sdist", "--wheel", "--out-dir", str(target), str(distribution.source)]
    print("building:", " ".join(command))
    run(command, f"the build of {distribution.name}")
    sdists = sorted(target.glob(f"{distribution.package}-*.tar.gz"))
    wheels = sorted(target.glob(f"{distribution.package}-*.whl"))
    if len(sdists) != 1 or len(wheels) != 1:
        raise CheckFailed(f"expected one sdist and one wheel in {target}, found {sdists + wheels}")
    return sdists[0], wheels[0]


def check_metadata(distribution: Distribution, text: str, version: str, where: str) -> Metadata:
    try:
        metadata = Metadata.from_email(text, validate=True)
    except (ExceptionGroup, InvalidMetadata) as error:
        problems = getattr(error, "exceptions", [error])
        raise CheckFailed(
            f"{where}: invalid core metadata: " + "; ".join(str(problem) for problem in problems)
        ) from None
    headers = HeaderParser().parsestr(text)
    expect(str(metadata.name) == distribution.name, f"{where}: Name is {metadata.name!r}, not {distribution.name!r}")
    expect(str(metadata.version) == version, f"{where}: Version is {metadata.version}, __version__ is {version}")
    expect(bool(metadata.requires_python), f"{where}: no Requires-Python")
    license_text = metadata.license_expression or metadata.license or ""
    expect("Apache-2.0" in str(license_text), f"{where}: the license is {license_text!r}, not Apache-2.0")
    expect(
        metadata.description_content_type == "text/markdown",
        f"{where}: Description-Content-Type is {metadata.description_content_type!r}, not text/markdown",
    )
    readme_title = (distribution.source / "README.md").read_text().splitlines()[0]
    expect(readme_title in (metadata.description or ""), f"{where}: the long description is not the README")
    required = {Requirement(str(requirement)).name for requirement in metadata.requires_dist or []}
    for dependency in distribution.required:
        expect(dependency in required, f"{where}: {dependency} is not in Requires-Dist")
    for dependency in distribution.forbidden:
        expect(dependency not in required, f"{where}: Requires-Dist names {dependency}")
    extras = {str(extra) for extra in metadata.provides_extra or []}
    for extra in distribution.extras:
        expect(extra in extras, f"{where}: no {extra!r} extra (Provides-Extra: {sorted(extras)})")
    print(f"{where}: core metadata {headers['Metadata-Version']} valid; {metadata.name} {metadata.version}")
    return metadata


def check_wheel(distribution: Distribution, wheel: Path, version: str) -> None:
    package = distribution.package
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        dist_info = f"{package}-{version}.dist-info/"
        check_metadata(distribution, archive.read(f"{dist_info}METADATA").decode(), version, wheel.name)
        entry_points = configparser.ConfigParser()
        entry_points.read_string(archive.read(f"{dist_info}entry_points.txt").decode())
        modules = {name: archive.read(name).decode() for name in names if name.endswith(".py")}
    group, name, target = distribution.entry_point
    expect(
        entry_points.has_option(group, name) and entry_points.get(group, name).strip() == target,
        f"{wheel.name}: no entry point [{group}] {name} = {target}",
    )
    expect(wheel.name.endswith("-py3-none-any.whl"), f"{wheel.name}: not a pure-Python py3-none-any wheel")
    stray = [name for name in names if not name.startswith((f"{package}/", dist_info))]
    expect(not stray, f"{wheel.name}: files outside the package: {stray}")
    shipped_repo_folders = [name for name in names if name.startswith(NOT_IN_WHEEL) or "/tests/" in name]
    expect(not shipped_repo_folders, f"{wheel.name}: ships repository folders: {shipped_repo_folders}")
    compiled = [name for name in names if name.endswith((".pyc", ".pyo")) or "__pycache__" in name]
    expect(not compiled, f"{wheel.name}: ships compiled files: {compiled}")
    expect(f"{package}/py.typed" in names, f"{wheel.name}: no {package}/py.typed: type checkers would ignore it")
    expect(
        any(name.startswith(dist_info) and Path(name).name == "LICENSE" for name in names),
        f"{wheel.name}: no LICENSE in {dist_info}",
    )
    root = distribution.source
    source = {path.relative_to(root).as_posix() for path in (root / package).rglob("*.py")}
    missing = sorted(source - set(names))
    expect(not missing, f"{wheel.name}: modules of the package missing from the wheel: {missing}")
    if distribution is PROVIDER:
        emulator_modules = [name for name in names if name.startswith(f"{PACKAGE}/emulator/")]
        expect(not emulator_modules, f"{wheel.name}: ships emulator modules {emulator_modules}")
        importers = sorted(name for name, text in modules.items() if EMULATOR_PACKAGE in text)
        expect(not importers, f"{wheel.name}: modules naming {EMULATOR_PACKAGE}: {importers}")
    else:
        importers = sorted(
            name for name, text in modules.items() if re.search(r"^\s*(from|import) (airflow|{PACKAGE})\b", text, re.M)
        )
        expect(not importers, f"{wheel.name}: modules importing Airflow or the provider: {importers}")
    print(f"{wheel.name}: {len(names)} files, {distribution.package} alone, no tests, examples or repository folders")


def check_sdist(distribution: Distribution, sdist: Path, version: str) -> None:
    root = f"{distribution.package}-{version}/"
    with tarfile.open(sdist) as archive:
        names = [member.name for member in archive.getmembers()]
        pkg_info = archive.extractfile(f"{root}PKG-INFO")
        expect(pkg_info is not None, f"{sdist.name}: no PKG-INFO")
        assert pkg_info is not None
        check_metadata(distribution, pkg_info.read().decode(), version, sdist.name)
    relative = {name.removeprefix(root) for name in names if name.startswith(root)}
    missing = [name for name in distribution.in_sdist if name not in relative]
    expect(not missing, f"{sdist.name}: missing what a rebuild needs: {missing}")
    unwanted = sorted(
        name
        for name in relative
        if name.startswith((".venv", ".git/", "docs/_build/", ".demo/", "emulator/"))
        or "__pycache__" in name
        or name.endswith(".pyc")
    )
    expect(not unwanted, f"{sdist.name}: ships local or generated files: {unwanted}")
    print(f"{sdist.name}: {len(names)} entries, with {', '.join(distribution.in_sdist)}")


def check_emulator_runs_alone(wheel: Path, venv: Path) -> None:
    """Install the emulator's wheel alone into a new venv (no Airflow), import it, serve and answer a request.

    The dependencies come under the development lock's pins, so uv takes them from its cache.
    """
    run([uv(), "venv", "--quiet", "--python", sys.executable, str(venv)], "creating a venv for the emulator")
    python = venv / "bin" / "python"
    run(
        [uv(), "pip", "install", "--quiet", "--python", str(python), "--constraint", str(LOCK), str(wheel)],
        f"installing {wheel.name} alone",
        UV_PYTHON_DOWNLOADS="never",
    )
    # Run from the venv, not the repository, whose provider package the current directory would expose.
    probe = (
        "import importlib.util, json, wavespeed_emulator; "
        "print(json.dumps({'version': wavespeed_emulator.__version__, 'importable': "
        f"[name for name in ('airflow', '{PACKAGE}') if importlib.util.find_spec(name)]}}))"
    )
    alone = json.loads(run([str(python), "-c", probe], f"importing {EMULATOR_PACKAGE} in the new venv", venv).stdout)
    expect(not alone["importable"], f"the emulator's venv can import {alone['importable']}")
    key = "check-package-key"
    serving = subprocess.Popen(  # noqa: S603 - the console script the wheel just installed
        [str(venv / "bin" / "wavespeed-emulator"), "--host", "127.0.0.1", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=venv,
        env={**os.environ, "WAVESPEED_API_KEY": key},
    )
    try:
        assert serving.stdout is not None
        ready, _, _ = select.select([serving.stdout], [], [], SERVE_TIMEOUT_SECONDS)
        line = serving.stdout.readline() if ready else ""
        found = re.search(r"listening on (http://\S+)", line)
        expect(found is not None, f"wavespeed-emulator did not announce its URL: {line!r}")
        assert found is not None
        request = urllib.request.Request(  # noqa: S310 - the http:// URL the emulator printed
            f"{found.group(1)}/api/v3/balance", headers={"Authorization": f"Bearer {key}"}
        )
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(request, timeout=SERVE_TIMEOUT_SECONDS) as response:
            answer = json.load(response)
        expect(answer.get("code") == 200, f"GET /api/v3/balance answered {answer}")
    finally:
        serving.terminate()
        serving.communicate(timeout=SERVE_TIMEOUT_SECONDS)
    print(
        f"{wheel.name}: installed alone (no Airflow, no provider), {EMULATOR_PACKAGE} {alone['version']} imports, "
        f"wavespeed-emulator serves: balance {answer['data']}"
    )


def expect(condition: bool, failure: str) -> None:
    if not condition:
        raise CheckFailed(failure)


if __name__ == "__main__":
    sys.exit(main())
