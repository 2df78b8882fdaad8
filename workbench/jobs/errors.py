"""The job runner's refusal: raised before a notebook runs, so nothing is written."""

from __future__ import annotations

from workbench.errors import WorkbenchError


class JobRefusedError(WorkbenchError):
    """A job run was refused: unknown job, bad or secret parameters, or already running."""
