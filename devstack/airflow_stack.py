"""A real Airflow 3 on loopback, in one of two topologies.

:data:`EMBEDDED` (the default, the demo's): api-server, scheduler, triggerer and dag-processor over
SQLite, tasks run by the scheduler's LocalExecutor. :data:`DISTRIBUTED` (what production runs):
the metadata database on PostgreSQL, CeleryExecutor with Redis as broker, two Celery workers and
two triggerers, each a process of its own with a hostname of its own. See docs/topology.md.

The demo and the end-to-end tests both run the provider in this, not in mocks: the task is
submitted by a worker, deferred, completed by a triggerer, and read back through Airflow's REST
API, exactly as in a deployment.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
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
from packaging.version import Version

REPO = Path(__file__).resolve().parent.parent
# Why the harness cannot run on the installed Airflow (None: it can): it drives Airflow 3's
# api-server (the /api/v2 REST API, the /execution API its workers call), which 2.11 does not have.
# Read from the distribution rather than version_compat: importing Airflow would initialise its
# settings (and write an airflow.cfg) in the harness's own process, which runs no Airflow code.
HARNESS_UNAVAILABLE = (
    f"the harness drives Airflow 3's api-server (/api/v2, /execution); Airflow {version('apache-airflow')} has none"
    if Version(version("apache-airflow")).major < 3
    else None
)
ADMIN_USER = "admin"
TERMINAL_RUN_STATES = frozenset({"success", "failed"})
POSTGRES = ("127.0.0.1", 5432)
REDIS = ("127.0.0.1", 6379)
# What starts each service on this project's machines (they normally run before a session starts).
START_POSTGRES = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
# A freshly migrated SQLite database of the installed Airflow, copied by each later embedded stack
# instead of migrating again (the slowest step of the demo's start). It lives in the environment, so
# another Airflow gets a template of its own, and holds nothing of a stack's: no connection, no key.
SQLITE_TEMPLATE = Path(sys.prefix) / "wavespeed-devstack" / f"airflow-{version('apache-airflow')}-migrated.db"
START_REDIS = (
    'redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no '
    "--dir /var/lib/redis --logfile /var/log/redis/ci.log"
)


@dataclass(frozen=True)
class Topology:
    """Which processes run Airflow, and on what database and executor."""

    name: str
    executor: str
    database: str
    """``sqlite`` (a file in AIRFLOW_HOME) or ``postgresql`` (a database of its own per stack)."""
    triggerers: int
    celery_workers: int = 0
    celery_concurrency: int = 3


EMBEDDED = Topology("embedded", executor="LocalExecutor", database="sqlite", triggerers=1)
DISTRIBUTED = Topology("distributed", executor="CeleryExecutor", database="postgresql", triggerers=2, celery_workers=2)

# High-availability settings of the distributed topology, values a production deployment can use
# (docs/topology.md says why each): a dead triggerer's triggers move to a live one after three missed
# heartbeats, and a dead worker's running tasks fail into their retries after a minute without one.
HA_SETTINGS = {
    "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "5",
    "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "15",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "60",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "10",
    # A task a dead worker had taken off the queue but not started is queued again after this.
    "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "180",
    "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": "60",
    # A worker's call to the Execution API waits up to 30 s for its answer (5 s by default): a busy
    # api-server answering late must not fail a task whose retry then finds it already running.
    "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "30",
}


def missing_services() -> str | None:
    """Why the distributed topology cannot start here (PostgreSQL or Redis unreachable), or None."""
    missing = []
    for name, address, command in (("PostgreSQL", POSTGRES, START_POSTGRES), ("Redis", REDIS, START_REDIS)):
        try:
            socket.create_connection(address, timeout=2).close()
        except OSError:
            missing.append(f"{name} is not reachable at {address[0]}:{address[1]}; start it with: {command}")
    return "; ".join(missing) or None


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
    :param topology: :data:`EMBEDDED` (SQLite, LocalExecutor) or :data:`DISTRIBUTED`.
    """

    home: Path
    dags_folder: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    topology: Topology = EMBEDDED
    port: int = field(default_factory=free_port)
    run_key: str = field(default_factory=lambda: secrets.token_hex(6))
    """Names this stack's own PostgreSQL database and Redis keys, so parallel stacks never meet."""
    admin_password: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    extra_users: dict[str, str] = field(default_factory=dict)
    _extra_passwords: dict[str, str] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _token: str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def components(self) -> list[str]:
        """Every process's name: ``triggerer``, or ``triggerer-1``, ``celery-worker-2``, ... when several."""
        triggerers = (
            ["triggerer"]
            if self.topology.triggerers == 1
            else [f"triggerer-{n}" for n in range(1, self.topology.triggerers + 1)]
        )
        workers = [f"celery-worker-{n}" for n in range(1, self.topology.celery_workers + 1)]
        return ["api-server", "scheduler", "dag-processor", *triggerers, *workers]

    @property
    def database_url(self) -> str:
        if self.topology.database == "postgresql":
            return f"postgresql+psycopg2://postgres@{POSTGRES[0]}:{POSTGRES[1]}/wavespeed_{self.run_key}"
        return f"sqlite:///{self.home / 'airflow.db'}"

    @property
    def redis_key_prefix(self) -> str:
        return f"wavespeed-{self.run_key}:"

    def _topology_env(self) -> dict[str, str]:
        if self.topology.database == "sqlite":
            database = {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS": "devstack.sqlite.CONNECT_ARGS"}
        else:
            database = {}
        if self.topology.executor != "CeleryExecutor":
            return {**database, "AIRFLOW__CORE__EXECUTOR": self.topology.executor}
        return {
            **database,
            **HA_SETTINGS,
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "devstack.hostname.component_hostname",
            "AIRFLOW__CELERY__BROKER_URL": f"redis://{REDIS[0]}:{REDIS[1]}/0",
            # Every key this stack's broker writes starts with its own prefix (kombu's Redis transport).
            "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__GLOBAL_KEYPREFIX": self.redis_key_prefix,
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{self.database_url}",
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(self.topology.celery_concurrency),
        }

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
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            # Only what is triggered runs: a scheduled example must not start on its own and compete
            # for the SQLite write lock (trigger() unpauses the DAG it triggers).
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "PYTHONPATH": os.pathsep.join(filter(None, (str(REPO), inherited.get("PYTHONPATH")))),
            "AIRFLOW__CORE__FERNET_KEY": stack_secrets["fernet"],
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": users,
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.database_url,
            "AIRFLOW__API__BASE_URL": self.url,
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.port),
            # One api-server worker on every line (Airflow 3.0 defaults to four, 3.1+ to one).
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API_AUTH__JWT_SECRET": stack_secrets["jwt"],
            # Airflow 3.0 signs its tokens with no issuer unless one is set, which PyJWT now refuses.
            "AIRFLOW__API_AUTH__JWT_ISSUER": "wavespeed-devstack",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.home / "logs"),
            # Parse new DAG files quickly, so a fresh stack can run its first DAG within seconds.
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
            **self._topology_env(),
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

    def start(self, *, timeout: float = 480.0, on_wait: Any = None, on_api_up: Any = None) -> None:
        """Create and migrate the database, start every component, and wait until the API answers.

        The api-server starts first, alone, so that it answers (and the UI can be opened) as soon as
        it can on a machine of few cores; the other components start once it does.

        :param on_wait: called about every second while waiting, with what is being waited for
            (e.g. to print a heartbeat).
        :param on_api_up: called once the REST API answers, before the other components start.
        """
        env = self.env
        (self.home / "logs").mkdir(parents=True, exist_ok=True)
        if self.topology.database == "postgresql":
            self._postgres(f"CREATE DATABASE wavespeed_{self.run_key}")
            self._migrate(env, timeout, on_wait)
        elif SQLITE_TEMPLATE.is_file():
            shutil.copyfile(SQLITE_TEMPLATE, self.home / "airflow.db")
        else:
            self._migrate(env, timeout, on_wait)
            SQLITE_TEMPLATE.parent.mkdir(parents=True, exist_ok=True)
            partial = SQLITE_TEMPLATE.with_suffix(f".{self.run_key}.partial")
            shutil.copyfile(self.home / "airflow.db", partial)
            partial.replace(SQLITE_TEMPLATE)
        api_server, *others = self.components
        self._spawn(api_server, env)
        self._wait_until(self._api_is_up, timeout, "the Airflow API server to answer", on_wait=on_wait)
        if on_api_up is not None:
            on_api_up()
        for component in others:
            self._spawn(component, env)
        # The Execution API builds its versioned routes on its first request; that costs seconds of
        # CPU, which the first task's first call must not pay against its timeout.
        self._wait_until(self._execution_api_is_up, timeout, "the Airflow Execution API to answer", on_wait=on_wait)

    def _migrate(self, env: dict[str, str], timeout: float, on_wait: Any) -> None:
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

    def _spawn(self, component: str, env: dict[str, str]) -> None:
        command = [sys.executable, "-m", "airflow"]
        if component == "api-server":
            command += [component, "--host", "127.0.0.1", "--port", str(self.port)]
        elif component.startswith("celery-worker"):
            # The log folder is shared, so the API server reads task logs from it; one log server per
            # machine would be what a deployment runs, and two here would fight over one port.
            command += ["celery", "worker", "--celery-hostname", f"{component}@127.0.0.1", "--skip-serve-logs"]
        elif component.startswith("triggerer") and self.topology.triggerers > 1:
            command += ["triggerer", "--skip-serve-logs"]
        else:
            command += [component]
        # Each process names itself by its component (Airflow's task and triggerer records show it).
        env = {**env, "WAVESPEED_STACK_HOSTNAME": component}
        # The child keeps its own copy of the descriptor; this process's is closed at once.
        with (self.home / "logs" / f"{component}.log").open("ab") as log:
            self.processes[component] = subprocess.Popen(
                command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def kill(self, component: str) -> None:
        """SIGKILL one component's whole process group and leave it dead (a machine lost for good)."""
        process = self.processes.pop(component)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def _postgres(self, statement: str) -> None:
        import psycopg2

        connection = psycopg2.connect(host=POSTGRES[0], port=POSTGRES[1], user="postgres", dbname="postgres")
        try:
            connection.autocommit = True  # CREATE/DROP DATABASE cannot run inside a transaction
            with connection.cursor() as cursor:
                cursor.execute(statement)
        finally:
            connection.close()

    def _drop_external_state(self) -> None:
        """Drop this stack's PostgreSQL database and Redis keys (nothing of a run outlives it)."""
        if self.topology.database == "postgresql":
            self._postgres(f"DROP DATABASE IF EXISTS wavespeed_{self.run_key} WITH (FORCE)")
        if self.topology.executor == "CeleryExecutor":
            import redis

            client = redis.Redis(host=REDIS[0], port=REDIS[1], db=0)
            try:
                for key in client.scan_iter(match=f"{self.redis_key_prefix}*", count=500):
                    client.delete(key)
            finally:
                client.close()

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
        """Stop every component (and the workers they started); never leaves a process or database behind."""
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
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # whatever of its group outlived it
        self.processes.clear()
        self._drop_external_state()

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

    def component_log(self, component: str) -> str:
        """One component's log (``scheduler``, ``triggerer``, ...), as far as it is written."""
        return (self.home / "logs" / f"{component}.log").read_text(errors="replace")

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

    def _execution_api_is_up(self) -> bool:
        try:
            return requests.get(f"{self.url}/execution/health", timeout=60).status_code == 200
        except requests.RequestException:
            return False

    def _check_components_alive(self) -> None:
        for component, process in self.processes.items():
            if process.poll() is not None:
                log = self.component_log(component)
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
