#!/usr/bin/env python3
"""Build the sdist and the wheel, and check their metadata and contents (``make check-package``).

Metadata is validated by ``packaging.metadata``, the PyPA's parser and validator of the core
metadata specification, as twine check does before an upload; twine's remaining check, rendering
the README, cannot fail for a Markdown README, so twine is not a dependency. Contents: the wheel
holds the provider package, its ``py.typed`` and the license, and nothing of the repository's tests,
examples, demo, benchmarks or docs; the sdist holds what a rebuild needs. Prints a report; exits
non-zero on the first failed check, naming it.

Run with the project's environment: ``.venv/bin/python scripts/check_package.py [--out-dir DIR]``.
"""

from __future__ import annotations

import argparse
import configparser
import re
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from email.parser import HeaderParser
from pathlib import Path

from packaging.metadata import ExceptionGroup, InvalidMetadata, Metadata
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parent.parent
PACKAGE = "airflow_provider_wavespeed"
DISTRIBUTION = "airflow-provider-wavespeed"
ENTRY_POINT = ("apache_airflow_provider", "provider_info", f"{PACKAGE}:get_provider_info")

# The emulator still lives in the provider's package; once it is its own distribution, set this to
# False and the check fails on any emulator module in the wheel.
ALLOW_EMULATOR_IN_WHEEL = True
EMULATOR_PREFIX = f"{PACKAGE}/emulator/"

# Repository folders that must never ship in the wheel.
NOT_IN_WHEEL = ("tests/", "example_dags/", "devstack/", "benchmarks/", "docs/", "scripts/", "requirements/")
# What a rebuild from the sdist needs.
IN_SDIST = ("pyproject.toml", "README.md", "LICENSE", f"{PACKAGE}/__init__.py", f"{PACKAGE}/py.typed")


class CheckFailed(Exception):
    """One check failed; the message says which and why."""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, help="keep the built files there (default: a temporary directory)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="check-package-") as scratch:
        out_dir = args.out_dir or Path(scratch)
        try:
            sdist, wheel = build(out_dir)
            version = package_version()
            check_wheel(wheel, version)
            check_sdist(sdist, version)
        except CheckFailed as failure:
            print(f"FAILED: {failure}", file=sys.stderr)
            return 1
    print("package checks passed")
    return 0


def package_version() -> str:
    found = re.search(r'^__version__ = "([^"]+)"', (REPO / PACKAGE / "__init__.py").read_text(), re.MULTILINE)
    if found is None:
        raise CheckFailed(f'{PACKAGE}/__init__.py has no __version__ = "..." line')
    return found.group(1)


def build(out_dir: Path) -> tuple[Path, Path]:
    """Build both, isolated from the development environment, as a release would be built."""
    uv = Path(sys.executable).with_name("uv")
    command = [str(uv) if uv.exists() else "uv", "build", "--sdist", "--wheel", "--out-dir", str(out_dir), str(REPO)]
    print("building:", " ".join(command))
    done = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603 - our own command
    if done.returncode != 0:
        raise CheckFailed(f"the build failed:\n{done.stdout}{done.stderr}")
    sdists = sorted(out_dir.glob(f"{PACKAGE}-*.tar.gz"))
    wheels = sorted(out_dir.glob(f"{PACKAGE}-*.whl"))
    if len(sdists) != 1 or len(wheels) != 1:
        raise CheckFailed(f"expected one sdist and one wheel in {out_dir}, found {sdists + wheels}")
    return sdists[0], wheels[0]


def check_metadata(text: str, version: str, where: str) -> Metadata:
    try:
        metadata = Metadata.from_email(text, validate=True)
    except (ExceptionGroup, InvalidMetadata) as error:
        problems = getattr(error, "exceptions", [error])
        raise CheckFailed(
            f"{where}: invalid core metadata: " + "; ".join(str(problem) for problem in problems)
        ) from None
    headers = HeaderParser().parsestr(text)
    expect(str(metadata.name) == DISTRIBUTION, f"{where}: Name is {metadata.name!r}, not {DISTRIBUTION!r}")
    expect(str(metadata.version) == version, f"{where}: Version is {metadata.version}, __version__ is {version}")
    expect(bool(metadata.requires_python), f"{where}: no Requires-Python")
    license_text = metadata.license_expression or metadata.license or ""
    expect("Apache-2.0" in str(license_text), f"{where}: the license is {license_text!r}, not Apache-2.0")
    expect(
        metadata.description_content_type == "text/markdown",
        f"{where}: Description-Content-Type is {metadata.description_content_type!r}, not text/markdown",
    )
    readme_title = (REPO / "README.md").read_text().splitlines()[0]
    expect(readme_title in (metadata.description or ""), f"{where}: the long description is not the README")
    required = {Requirement(str(requirement)).name for requirement in metadata.requires_dist or []}
    for dependency in ("apache-airflow", "apache-airflow-providers-common-compat"):
        expect(dependency in required, f"{where}: {dependency} is not in Requires-Dist")
    extras = {str(extra) for extra in metadata.provides_extra or []}
    expect("openlineage" in extras, f"{where}: no 'openlineage' extra (Provides-Extra: {sorted(extras)})")
    print(f"{where}: core metadata {headers['Metadata-Version']} valid; {metadata.name} {metadata.version}")
    return metadata


def check_wheel(wheel: Path, version: str) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        dist_info = f"{PACKAGE}-{version}.dist-info/"
        check_metadata(archive.read(f"{dist_info}METADATA").decode(), version, wheel.name)
        entry_points = configparser.ConfigParser()
        entry_points.read_string(archive.read(f"{dist_info}entry_points.txt").decode())
    group, name, target = ENTRY_POINT
    expect(
        entry_points.has_option(group, name) and entry_points.get(group, name).strip() == target,
        f"{wheel.name}: no entry point [{group}] {name} = {target}: Airflow would not find the provider",
    )
    expect(wheel.name.endswith("-py3-none-any.whl"), f"{wheel.name}: not a pure-Python py3-none-any wheel")
    stray = [name for name in names if not name.startswith((f"{PACKAGE}/", dist_info))]
    expect(not stray, f"{wheel.name}: files outside the package: {stray}")
    shipped_repo_folders = [name for name in names if name.startswith(NOT_IN_WHEEL) or "/tests/" in name]
    expect(not shipped_repo_folders, f"{wheel.name}: ships repository folders: {shipped_repo_folders}")
    compiled = [name for name in names if name.endswith((".pyc", ".pyo")) or "__pycache__" in name]
    expect(not compiled, f"{wheel.name}: ships compiled files: {compiled}")
    expect(f"{PACKAGE}/py.typed" in names, f"{wheel.name}: no {PACKAGE}/py.typed: type checkers would ignore it")
    expect(
        any(name.startswith(dist_info) and Path(name).name == "LICENSE" for name in names),
        f"{wheel.name}: no LICENSE in {dist_info}",
    )
    source = {
        path.relative_to(REPO).as_posix() for path in (REPO / PACKAGE).rglob("*.py") if "__pycache__" not in path.parts
    }
    missing = sorted(source - set(names) - ({name for name in source if name.startswith(EMULATOR_PREFIX)}))
    expect(not missing, f"{wheel.name}: modules of the package missing from the wheel: {missing}")
    emulator = [name for name in names if name.startswith(EMULATOR_PREFIX)]
    if emulator:
        expect(
            ALLOW_EMULATOR_IN_WHEEL,
            f"{wheel.name}: ships the emulator ({len(emulator)} files under {EMULATOR_PREFIX}); it belongs in its "
            "own distribution",
        )
        print(f"{wheel.name}: ships the emulator ({len(emulator)} files under {EMULATOR_PREFIX}): allowed for now")
    print(f"{wheel.name}: {len(names)} files, no tests, examples or repository folders")


def check_sdist(sdist: Path, version: str) -> None:
    root = f"{PACKAGE}-{version}/"
    with tarfile.open(sdist) as archive:
        names = [member.name for member in archive.getmembers()]
        pkg_info = archive.extractfile(f"{root}PKG-INFO")
        expect(pkg_info is not None, f"{sdist.name}: no PKG-INFO")
        assert pkg_info is not None
        check_metadata(pkg_info.read().decode(), version, sdist.name)
    relative = {name.removeprefix(root) for name in names if name.startswith(root)}
    missing = [name for name in IN_SDIST if name not in relative]
    expect(not missing, f"{sdist.name}: missing what a rebuild needs: {missing}")
    unwanted = sorted(
        name
        for name in relative
        if name.startswith((".venv", ".git/", "docs/_build/", ".demo/"))
        or "__pycache__" in name
        or name.endswith(".pyc")
    )
    expect(not unwanted, f"{sdist.name}: ships local or generated files: {unwanted}")
    print(f"{sdist.name}: {len(names)} entries, with {', '.join(IN_SDIST)}")


def expect(condition: bool, failure: str) -> None:
    if not condition:
        raise CheckFailed(failure)


if __name__ == "__main__":
    sys.exit(main())
