"""Where job notebooks live: ``notebooks/jobs/`` and ``notebooks/reports/`` of the project."""

from __future__ import annotations

from pathlib import Path

from workbench.errors import JobRefusedError

#: The project's notebooks folder (beside the package in a checkout).
NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
FOLDERS = ("jobs", "reports")


def find_jobs(notebooks: Path | None = None) -> dict[str, Path]:
    """Every job by name (the notebook's stem), from ``jobs/`` then ``reports/``."""
    root = notebooks or NOTEBOOKS
    found: dict[str, Path] = {}
    for folder in FOLDERS:
        for path in sorted((root / folder).glob("*.ipynb")):
            found.setdefault(path.stem, path)
    return found


def job_notebook(name: str, notebooks: Path | None = None) -> Path:
    """The notebook of job ``name``; refuses an unknown name, listing the known ones."""
    jobs = find_jobs(notebooks)
    if name not in jobs:
        root = notebooks or NOTEBOOKS
        raise JobRefusedError(
            f"No job {name!r}: expected {root / 'jobs' / name}.ipynb (or under reports/). "
            f"Known jobs: {', '.join(jobs) or 'none'}."
        )
    return jobs[name]
