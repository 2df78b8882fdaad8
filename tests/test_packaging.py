"""The package's promises about itself: pins mirrored, the two commands, CI calling the tests."""

from __future__ import annotations

import re
import tomllib

from tests.conftest import ROOT


def pinned(requirements: list[str]) -> dict[str, str]:
    pins = {}
    for requirement in requirements:
        name, _, version = requirement.partition("==")
        assert version, f"{requirement} is not pinned with =="
        pins[re.sub(r"\[.*\]", "", name).lower()] = version
    return pins


def test_environment_yml_carries_the_same_pins():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    expected = pinned(project["dependencies"] + project["optional-dependencies"]["test"])
    listed = re.findall(r"^\s+- ([A-Za-z0-9_.\-\[\]]+==\S+)$", (ROOT / "environment.yml").read_text(), re.M)
    assert pinned(listed) == expected
    assert "python=3.12" in (ROOT / "environment.yml").read_text()


def test_readme_opens_with_the_two_commands_and_ci_runs_the_second():
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"^```(?:bash|sh)\n(.+?)\n```", readme, re.M | re.S)[:2]
    assert commands == ["./run dashboard", "./run tests"]
    ci = (ROOT / ".ci" / "run").read_text()
    assert ci.strip().splitlines()[-1] == "./run tests"
