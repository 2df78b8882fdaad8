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


def _run_script_in(tmp_path):
    """A copy of ./run and pyproject.toml, as a fresh clone would have them (no .venv)."""
    import shutil

    for name in ("run", "pyproject.toml"):
        shutil.copy2(ROOT / name, tmp_path / name)
    return tmp_path / "run"


def test_setup_says_what_to_install_when_no_python_312_is_found(tmp_path):
    import subprocess

    script = _run_script_in(tmp_path)
    # Only the system's Python 3.11 on PATH, and no pyenv: as on a bare Debian 12.
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYENV_ROOT": str(tmp_path / "no-pyenv")}
    has_312 = subprocess.run(["bash", "-c", "ls /usr/bin/python3.1[2-9] /usr/local/bin/python3.1[2-9]"],
                             capture_output=True).returncode == 0
    result = subprocess.run(["bash", str(script), "setup"], env=env, capture_output=True, text=True, timeout=60)
    if has_312:  # this machine has a system 3.12+: the script must have found it instead
        assert "Creating .venv with /usr" in result.stdout
    else:
        assert result.returncode == 1
        assert "needs Python 3.12 or newer" in result.stderr and "apt-get install python3.12" in result.stderr
    assert "Traceback" not in result.stderr


def test_setup_is_skipped_when_nothing_changed(tmp_path):
    import subprocess

    script = _run_script_in(tmp_path)
    venv = tmp_path / ".venv" / "bin"
    venv.mkdir(parents=True)
    (venv / "python").symlink_to("/bin/true")
    digest = subprocess.run(["sha256sum", str(tmp_path / "pyproject.toml")], capture_output=True, text=True).stdout.split()[0]
    (tmp_path / ".venv" / ".installed").write_text(f"{digest} test\n")
    result = subprocess.run(["bash", str(script), "setup"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "Installing" not in result.stdout  # installed already: no work
    (tmp_path / "pyproject.toml").write_text((tmp_path / "pyproject.toml").read_text() + "\n# changed\n")
    result = subprocess.run(["bash", str(script), "setup"], capture_output=True, text=True, timeout=60)
    assert "Installing" in result.stdout  # a changed pyproject.toml installs again
