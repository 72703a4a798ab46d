"""An auth manager that can say "this user may read these DAGs only", for the permission tests.

SimpleAuthManager grants by role alone (or by team, which needs multi-team deployments): this adds,
per user, the DAGs they may see, read from ``WAVESPEED_TEST_DAG_SCOPES`` (``{"user": ["dag_id"]}``).
Anything outside a scope is refused exactly where Airflow asks the auth manager about a DAG, so a
view guarded by Airflow's own ``requires_access_dag`` is refused too.
"""

from __future__ import annotations

import json
import os
from typing import Any

from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

SCOPES_VARIABLE = "WAVESPEED_TEST_DAG_SCOPES"


class DagScopedAuthManager(SimpleAuthManager):
    def is_authorized_dag(self, *, method: Any, user: Any, access_entity: Any = None, details: Any = None) -> bool:
        scope = json.loads(os.environ.get(SCOPES_VARIABLE) or "{}").get(user.get_name())
        if scope is not None and (details is None or details.id not in scope):
            return False
        return super().is_authorized_dag(method=method, user=user, access_entity=access_entity, details=details)
