"""Runs papermill in a child process, so a whole run can be timed out and its kernel killed.

The parent calls :func:`execute`; the child (``python -m workbench.jobs._process``) runs
papermill and, when a cell raises, writes papermill's ``PapermillExecutionError`` details
to a JSON file for the parent to record.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

#: Characters of a failing cell's source kept in the record.
SOURCE_EXCERPT = 500


@dataclass(frozen=True)
class Outcome:
    """How an execution ended: status (succeeded, failed, timed_out) and failure details."""

    status: str
    failed_cell: int | None = None
    failed_source: str | None = None
    error: str | None = None


def execute(
    notebook: Path, output: Path, parameters: dict[str, Any], *, env: dict[str, str], timeout: float
) -> Outcome:
    """Execute ``notebook`` into ``output`` with ``parameters``; stop it after ``timeout`` s."""
    failure = output.with_suffix(".failure.json")
    arguments = [str(notebook), str(output), json.dumps(parameters), str(failure)]
    child = subprocess.Popen(
        [sys.executable, "-m", __name__, *arguments],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        _, stderr = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_tree(child)
        return Outcome("timed_out", error=f"timed out after {timeout:g} s; the kernel was stopped")
    except BaseException:  # Ctrl+C or a shutdown while waiting: leave no kernel behind
        _kill_tree(child)
        raise
    if child.returncode == 0:
        return Outcome("succeeded")
    if failure.exists():
        return Outcome("failed", **json.loads(failure.read_text()))
    last = stderr.strip().splitlines()[-1] if stderr.strip() else f"exit status {child.returncode}"
    return Outcome("failed", error=f"papermill could not run the notebook: {last}")


def _kill_tree(child: subprocess.Popen) -> None:
    # The kernel runs in its own session (jupyter_client starts it so): kill it by pid too.
    try:
        parent = psutil.Process(child.pid)
        processes = [*parent.children(recursive=True), parent]
    except psutil.NoSuchProcess:
        processes = []
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    child.communicate()
    psutil.wait_procs(processes, timeout=10)


def _main(notebook: str, output: str, parameters: str, failure: str) -> int:
    import papermill
    from papermill.exceptions import PapermillExecutionError

    try:
        papermill.execute_notebook(
            notebook, output, parameters=json.loads(parameters), progress_bar=False
        )
    except PapermillExecutionError as exc:
        details = {
            "failed_cell": exc.cell_index,
            "failed_source": exc.source[:SOURCE_EXCERPT],
            "error": f"{exc.ename}: {exc.evalue}",
        }
        Path(failure).write_text(json.dumps(details))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_main(*sys.argv[1:]))
