"""Test fixture: a solver that starts a grandchild in its own session, then hangs."""

import os
import subprocess
import time
from pathlib import Path

from wdmoe_opt.harness import Custom


def solve(instance):
    child = subprocess.Popen(["sleep", "600"], start_new_session=True)
    note = os.environ.get("WDMOE_TEST_ESCAPE_PID_FILE")
    if note:
        Path(note).write_text(str(child.pid))
    time.sleep(600)


SOLVER = Custom(name="fix-escape", problem="p3", function=solve)
