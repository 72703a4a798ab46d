"""A real Airflow 3 on loopback: api-server, scheduler, triggerer and dag-processor over SQLite.

The demo and the end-to-end tests both run the provider in this, not in mocks: the task is
submitted by a LocalExecutor worker, deferred, completed by the triggerer, and read back through
Airflow's REST API, exactly as in a deployment.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import requests

REPO = Path(__file__).resolve().parent.parent
COMPONENTS = ("api-server", "scheduler", "triggerer", "dag-processor")
AIRFLOW_VERSION = tuple(int(part) for part in version("apache-airflow").split(".")[:2])
ADMIN_USER = "admin"
TERMINAL_RUN_STATES = frozenset({"success", "failed"})


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class LocalAirflow:
    """Airflow's four services as child processes, each logging to ``<home>/logs/<component>.log``.

    :param home: AIRFLOW_HOME: the SQLite database, logs and the generated admin password live here.
    :param dags_folder: the DAG folder (the default DAG bundle).
    :param extra_env: more environment for every component (e.g. what the DAGs read).
    :param extra_users: more SimpleAuthManager users besides the admin, name to role (e.g. ``viewer``);
        each gets a generated password, :meth:`password_of`.
    """

    home: Path
    dags_folder: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    admin_password: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    extra_users: dict[str, str] = field(default_factory=dict)
    _extra_passwords: dict[str, str] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _token: str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        """The configuration every component shares (one JWT secret, or workers cannot talk back)."""
        secret_file = self.home / "stack-secrets.json"
        if not secret_file.exists():
            self.home.mkdir(parents=True, exist_ok=True)
            from cryptography.fernet import Fernet

            secret_file.write_text(
                json.dumps({"jwt": secrets.token_urlsafe(32), "fernet": Fernet.generate_key().decode()})
            )
        stack_secrets = json.loads(secret_file.read_text())
        passwords = self.home / "simple_auth_manager_passwords.json"
        passwords.write_text(json.dumps({name: self.password_of(name) for name in (ADMIN_USER, *self.extra_users)}))
        users = ",".join(f"{name}:{role}" for name, role in {ADMIN_USER: "admin", **self.extra_users}.items())
        # Nothing of the caller's Airflow configuration leaks in (a test run's DAG bundles, connections).
        inherited = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_", "_AIRFLOW"))
        }
        return {
            **inherited,
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            # Only what is triggered runs: a scheduled example must not start on its own and compete
            # for the SQLite write lock (trigger() unpauses the DAG it triggers).
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS": "devstack.sqlite.CONNECT_ARGS",
            "PYTHONPATH": os.pathsep.join(filter(None, (str(REPO), inherited.get("PYTHONPATH")))),
            "AIRFLOW__CORE__FERNET_KEY": stack_secrets["fernet"],
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": users,
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.home / 'airflow.db'}",
            "AIRFLOW__API__BASE_URL": self.url,
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API_AUTH__JWT_SECRET": stack_secrets["jwt"],
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.home / "logs"),
            # Parse new DAG files quickly, so a fresh stack can run its first DAG within seconds.
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
            **self.extra_env,
        }

    def password_of(self, user: str) -> str:
        if user == ADMIN_USER:
            return self.admin_password
        return self._extra_passwords.setdefault(user, secrets.token_urlsafe(12))

    def token_of(self, user: str) -> str:
        """A JWT for ``user``, as ``POST /auth/token`` issues it."""
        login = requests.post(
            f"{self.url}/auth/token", json={"username": user, "password": self.password_of(user)}, timeout=30
        )
        login.raise_for_status()
        return str(login.json()["access_token"])

    def start(self, *, timeout: float = 240.0, on_wait: Any = None) -> None:
        """Migrate the database, start the four components, and wait until the API answers.

        :param on_wait: called about every second while waiting, with what is being waited for
            (e.g. to print a heartbeat).
        """
        env = self.env
        (self.home / "logs").mkdir(parents=True, exist_ok=True)
        with (self.home / "logs" / "db-migrate.log").open("wb") as log:
            migrate = subprocess.Popen(
                [sys.executable, "-m", "airflow", "db", "migrate"], env=env, stdout=log, stderr=subprocess.STDOUT
            )
            deadline = time.monotonic() + timeout
            try:
                while migrate.poll() is None:
                    if on_wait is not None:
                        on_wait("the metadata database migration")
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"airflow db migrate took over {timeout:.0f} s; its log: {log.name}")
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        migrate.wait(timeout=1.0)
            finally:  # interrupted (Ctrl-C, SIGTERM) or timed out: no migration is left running
                if migrate.poll() is None:
                    migrate.kill()
                    migrate.wait()
        if migrate.returncode != 0:
            raise RuntimeError(f"airflow db migrate failed ({migrate.returncode}); its log: {log.name}")
        for component in COMPONENTS:
            self._spawn(component, env)
        self._wait_until(self._api_is_up, timeout, "the Airflow API server to answer", on_wait=on_wait)

    def _spawn(self, component: str, env: dict[str, str]) -> None:
        command = [sys.executable, "-m", "airflow", component]
        if component == "api-server":
            command += ["--host", "127.0.0.1", "--port", str(self.port)]
        # The child keeps its own copy of the descriptor; this process's is closed at once.
        with (self.home / "logs" / f"{component}.log").open("ab") as log:
            self.processes[component] = subprocess.Popen(
                command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def restart(self, component: str, sig: signal.Signals = signal.SIGTERM, *, timeout: float = 30.0) -> int:
        """Stop one component with ``sig`` and start it again; return the new process id.

        The signal goes to the component's whole process group (a triggerer's trigger runner, a
        scheduler's LocalExecutor workers), as a crashed machine would lose them all at once;
        SIGKILL leaves the metadata database exactly as the crash found it.
        """
        process = self.processes[component]
        if process.poll() is None:
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # whatever of its group outlived it
        self._spawn(component, self.env)
        return self.processes[component].pid

    def stop(self) -> None:
        """Stop every component (and the workers they started); never leaves a process behind."""
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.processes.clear()

    def __enter__(self) -> LocalAirflow:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- the REST API ------------------------------------------------------------------------------

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call Airflow's public REST API (``/api/v2``) as the admin; return the JSON answer."""
        if self._token is None:
            self._token = self.token_of(ADMIN_USER)
        response = requests.request(
            method, f"{self.url}/api/v2{path}", headers={"Authorization": f"Bearer {self._token}"}, timeout=60, **kwargs
        )
        if not response.ok:
            raise RuntimeError(f"Airflow API {method} {path} answered {response.status_code}: {response.text[:500]}")
        return response.json() if response.content else None

    def create_connection(self, connection: dict[str, Any]) -> None:
        """Create (or replace) a connection in the metadata database, as a user would in the UI."""
        with contextlib.suppress(RuntimeError):
            self.api("DELETE", f"/connections/{connection['connection_id']}")
        self.api("POST", "/connections", json=connection)

    def wait_for_dag(self, dag_id: str, *, timeout: float = 120.0) -> None:
        """Wait until the dag-processor has parsed ``dag_id`` (and report import errors at once)."""

        def parsed() -> bool:
            errors = self.api("GET", "/importErrors")["import_errors"]
            if errors:
                raise RuntimeError(f"DAG import errors: {errors}")
            try:
                self.api("GET", f"/dags/{dag_id}")
            except RuntimeError:
                return False
            return True

        self._wait_until(parsed, timeout, f"the dag-processor to parse {dag_id}")

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None, logical_date: str | None = None) -> str:
        # The run exists before the DAG is unpaused: a scheduled DAG's scheduler then sees that date
        # taken, instead of creating its own run for it first (which would refuse this one).
        run = self.api("POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": logical_date, "conf": conf or {}})
        self.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False})
        return str(run["dag_run_id"])

    def run_state(self, dag_id: str, run_id: str) -> str:
        return str(self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")["state"])

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        return list(self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"])

    def wait_for_run(self, dag_id: str, run_id: str, *, timeout: float = 300.0, on_poll: Any = None) -> str:
        """Wait for the run to end; ``on_poll(task_instances)`` sees every intermediate state."""
        state = ""

        def finished() -> bool:
            nonlocal state
            if on_poll is not None:
                on_poll(self.task_instances(dag_id, run_id))
            state = self.run_state(dag_id, run_id)
            return state in TERMINAL_RUN_STATES

        self._wait_until(finished, timeout, f"run {run_id} of {dag_id} to end", interval=0.5)
        return state

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1, map_index: int = -1) -> str:
        answer = self.api(
            "GET",
            f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}",
            params={"map_index": map_index, "full_content": True},
        )
        content = answer.get("content") if isinstance(answer, dict) else answer
        return json.dumps(content) if not isinstance(content, str) else content

    def extra_links(self, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
        return dict(self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/links"))

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        entry = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}")
        return entry["value"]

    def component_logs(self) -> str:
        """Every component's log, for a failure message or a secret-leak check."""
        return "\n".join(path.read_text(errors="replace") for path in sorted((self.home / "logs").rglob("*.log")))

    # -- helpers -----------------------------------------------------------------------------------

    def _api_is_up(self) -> bool:
        self._check_components_alive()
        try:
            return requests.get(f"{self.url}/api/v2/version", timeout=5).status_code in (200, 401, 403)
        except requests.RequestException:
            return False

    def _check_components_alive(self) -> None:
        for component, process in self.processes.items():
            if process.poll() is not None:
                log = (self.home / "logs" / f"{component}.log").read_text(errors="replace")
                raise RuntimeError(f"Airflow {component} exited with {process.returncode}:\n{log[-3000:]}")

    def _wait_until(
        self, condition: Any, timeout: float, what: str, interval: float = 1.0, on_wait: Any = None
    ) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if on_wait is not None:
                on_wait(what)
            self._check_components_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"Timed out after {timeout:.0f} s waiting for {what}; logs in {self.home}/logs")
            time.sleep(interval)
