"""Publishing a run's outputs: the executed notebook and its HTML report without code,
written only after both are scanned clean of the environment's secrets."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import nbformat
from nbconvert import HTMLExporter

from workbench.jobs.secrets import find_leak


class SecretLeakError(Exception):
    """An output holds a secret's value; ``variable`` names where the secret came from."""

    def __init__(self, variable: str) -> None:
        super().__init__(variable)
        self.variable = variable


def publish(executed: Path, run_dir: Path, secrets: Mapping[str, str]) -> tuple[Path, Path]:
    """Write ``executed`` and its HTML rendering into ``run_dir``; raise SecretLeakError
    (writing nothing) when either holds a secret."""
    notebook = nbformat.read(executed, as_version=4)
    text = nbformat.writes(notebook)
    exporter = HTMLExporter(exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True)
    html, _ = exporter.from_notebook_node(notebook)
    for output in (text, html):
        leaked = find_leak(output, secrets)
        if leaked:
            raise SecretLeakError(leaked)
    run_dir.mkdir(parents=True)
    paths = run_dir / executed.name, run_dir / f"{executed.stem}.html"
    paths[0].write_text(text, encoding="utf-8")
    paths[1].write_text(html, encoding="utf-8")
    return paths
