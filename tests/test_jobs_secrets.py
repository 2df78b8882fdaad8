"""Secrets never enter a job through its parameters, nor leave it through its outputs."""

from __future__ import annotations

import json

import pytest

from tests.conftest import ROOT
from workbench.config import Settings, load_settings
from workbench.jobs import JobRefusedError, JobRegistry, run_job
from workbench.jobs.secrets import (
    check_parameters,
    environment_secrets,
    find_leak,
    looks_secret_name,
    looks_secret_value,
    redact,
)

TEST_JOBS = ROOT / "tests" / "job_notebooks"
PLANTED = "PLANTED-job-secret-0123456789"


@pytest.mark.parametrize("name", ["api_key", "apiKey", "APIKey", "GITHUB_TOKEN", "db-password",
                                  "passphrase", "aws_secret_access_key", "credentials"])
def test_secret_names(name):
    assert looks_secret_name(name)


@pytest.mark.parametrize("name", ["symbols", "monkey", "keyring_service", "tokenizer",
                                  "timeframe", "PATH", "passive"])
def test_ordinary_names(name):
    assert not looks_secret_name(name)


@pytest.mark.parametrize("value", ["sk_live_4eC39HqLyjWDarjtT1zdp7dc", "d41d8cd98f00b204e9800998ecf8427e",
                                   "AKIAIOSFODNN7EXAMPLE9x2Lq", "ghp_e9fbea886d12e354ef6ce0d0c494658e17ae",
                                   "token=hUSMdB-91f-RdIcllg13hU81NwbrtTdXilnwmFw_"])
def test_secret_values(value):
    assert looks_secret_value(value)


@pytest.mark.parametrize("value", ["BTC/USDT,ETH/USDT,SOL/USDT,XRP/USDT", "2024-01-01T00:00:00+00:00",
                                   "20240101T000000000000Z", "binanceusdm2024perpetual", "short1",
                                   "/tmp/pytest-of-me/pytest-12/test_backfill0/data/reports",
                                   "123e4567-e89b-12d3-a456-426614174000"])
def test_ordinary_values(value):
    assert not looks_secret_value(value)


def test_environment_secrets_are_the_workbench_ones_and_any_secret_looking_variable():
    environ = {"WORKBENCH_API_SECRET": PLANTED, "GITHUB_TOKEN": "ghp_0123456789", "HOME": "/home/me",
               "SESSION_KEY": "short"}
    given = "-".join(("placeholder", "given", "in", "code"))  # a stand-in, built so no scanner mistakes it
    settings = Settings(api_key=given)
    assert environment_secrets(settings, environ) == {
        "WORKBENCH_API_SECRET": PLANTED, "GITHUB_TOKEN": "ghp_0123456789",
        "WORKBENCH_API_KEY": given,
    }


def test_secret_parameters_are_refused_and_redacted():
    secrets = {"WORKBENCH_API_SECRET": PLANTED}
    check_parameters({"symbols": "BTC/USDT", "days": 3}, secrets)
    for parameters, reason in [
        ({"api_key": "x"}, "by its name"),
        ({"label": PLANTED}, "holds the value of WORKBENCH_API_SECRET"),
        ({"label": "sk_live_4eC39HqLyjWDarjtT1zdp7dc"}, "a long random string"),
    ]:
        with pytest.raises(JobRefusedError, match=reason):
            check_parameters(parameters, secrets)
    assert redact({"label": PLANTED, "days": 3}, secrets) == {"label": "<withheld>", "days": 3}


def test_leaks_are_found_raw_and_escaped_and_named_by_variable():
    secrets = {"WORKBENCH_API_SECRET": 'a"b<c>d&e-0123'}
    assert find_leak(json.dumps({"text": 'x a"b<c>d&e-0123 y'}), secrets) == "WORKBENCH_API_SECRET"
    assert find_leak("<pre>a&quot;b&lt;c&gt;d&amp;e-0123</pre>", secrets) == "WORKBENCH_API_SECRET"
    assert find_leak("nothing here", secrets) is None


def test_a_planted_secret_in_a_parameter_is_refused_and_never_recorded(isolated_env, monkeypatch):
    monkeypatch.setenv("WORKBENCH_API_SECRET", PLANTED)
    with pytest.raises(JobRefusedError, match="WORKBENCH_API_SECRET") as refused:
        run_job("echo", {"label": PLANTED}, notebooks=TEST_JOBS)
    assert PLANTED not in str(refused.value)
    with JobRegistry(load_settings().store_url) as registry:
        assert PLANTED not in registry.runs().to_json(date_format="iso")
    assert not (isolated_env / "data" / "reports").exists()


@pytest.mark.slow
def test_a_planted_secret_never_reaches_an_output_and_a_notebook_that_prints_it_fails(
    isolated_env, monkeypatch
):
    monkeypatch.setenv("WORKBENCH_API_SECRET", PLANTED)
    clean = run_job("echo", {"label": "clean"}, notebooks=TEST_JOBS)
    leaky = run_job("echo", {"reveal": True}, notebooks=TEST_JOBS)

    assert clean.ok
    assert "clean" in clean.html.read_text()
    reports = isolated_env / "data" / "reports"
    for path in reports.rglob("*"):
        if path.is_file():
            assert PLANTED not in path.read_text()
    assert leaky.status == "failed"
    assert leaky.error == "the output holds the value of WORKBENCH_API_SECRET; nothing was written"
    assert leaky.notebook is leaky.html is None
    assert [p.parent for p in reports.rglob("*.ipynb")] == [clean.notebook.parent]
    with JobRegistry(load_settings().store_url) as registry:
        runs = registry.runs("echo")
    assert list(runs.status) == ["failed", "succeeded"]
    assert PLANTED not in runs.to_json(date_format="iso")
