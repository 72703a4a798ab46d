"""``[core] hostname_callable`` for the distributed topology: each process's own hostname.

On one machine every Airflow process would report the same hostname; the harness names each by
its component (``celery-worker-1``, ``triggerer-2``) so that Airflow's own records (a task
instance's hostname, a triggerer job's) tell which process holds what, as on separate machines.
"""

from __future__ import annotations

import os
import socket


def component_hostname() -> str:
    return os.environ.get("WAVESPEED_STACK_HOSTNAME") or socket.getfqdn()
