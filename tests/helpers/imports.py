"""What a piece of code imports, measured in a fresh interpreter (this one has imported everything)."""

from __future__ import annotations

import json
import subprocess
import sys


def modules_newly_imported(setup: str, code: str, watched: list[str]) -> list[str]:
    """Those of ``watched`` that running ``code`` imports, in a fresh interpreter after ``setup`` ran.

    ``setup`` is what the process imports anyway (Airflow's own modules): what it loads does not count.
    """
    probe = (
        "import json, sys\n"
        f"{setup}\n"
        "before = set(sys.modules)\n"
        f"{code}\n"
        f"print(json.dumps([m for m in {watched!r} if m in sys.modules and m not in before]))\n"
    )
    output = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return json.loads(output.strip().splitlines()[-1])
