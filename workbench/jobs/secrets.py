"""Secrets hygiene for jobs: keys come from the environment, never from parameters or outputs.

Parameters are refused when their name looks like a secret (``api_key``, ``githubToken``) or
their value does (a long high-entropy string, or a secret the environment holds). Executed
notebooks and reports are scanned for the environment's secret values before they are
written; a hit is reported by the variable's name, never its value.
"""

from __future__ import annotations

import html
import json
import math
import os
import re
from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from workbench.config import SECRET_FIELDS
from workbench.errors import JobRefusedError

if TYPE_CHECKING:
    from workbench.config import Settings

SECRET_WORDS = frozenset(
    {"key", "keys", "apikey", "secret", "secrets", "token", "tokens", "password", "passwd",
     "passphrase", "credential", "credentials"}
)
#: Shorter environment values are not scanned for: they would match ordinary text.
MIN_SECRET_LENGTH = 8
#: A run of at least TOKEN_LENGTH letters and digits looks like a key when it is random:
#: entropy of at least ENTROPY_BITS per character, and the character class (lower, upper,
#: digit) switching at least SWITCH_SHARE of the time. Keys and hashes do; words with a
#: year in them ("binanceusdm2024perpetual"), paths and ISO dates do not.
TOKEN_LENGTH = 20
ENTROPY_BITS = 3.0
SWITCH_SHARE = 0.2

_TOKEN = re.compile(rf"[A-Za-z0-9+=]{{{TOKEN_LENGTH},}}")
_WORD = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")


def looks_secret_name(name: str) -> bool:
    """True when a word of ``name`` (split at ``_``, ``-``, ``.`` and camelCase) is a secret word."""
    return any(word.lower() in SECRET_WORDS for word in _WORD.findall(name))


def looks_secret_value(value: str) -> bool:
    """True when ``value`` holds a long random-looking run of letters and digits (a key,
    token or hash), e.g. ``sk_live_4eC39HqLyjWDarjtT1zdp7dc``."""
    return any(_random(token) for token in _TOKEN.findall(value))


def _random(token: str) -> bool:
    if not (any(ch.isalpha() for ch in token) and any(ch.isdigit() for ch in token)):
        return False
    counts = Counter(token).values()
    entropy = -sum(n / len(token) * math.log2(n / len(token)) for n in counts)
    classes = [ch.isdigit() + 2 * ch.isupper() for ch in token]
    switches = sum(a != b for a, b in zip(classes, classes[1:]))
    return entropy >= ENTROPY_BITS and switches >= SWITCH_SHARE * len(token)


def environment_secrets(
    settings: Settings | None = None, environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The secrets at hand, by the environment variable that holds them: the workbench's
    own (``WORKBENCH_API_KEY``, ... also when set on ``settings``) and any variable whose
    name looks secret (``GITHUB_TOKEN``)."""
    environ = os.environ if environ is None else environ
    found = {name: value for name, value in environ.items() if looks_secret_name(name)}
    for field in SECRET_FIELDS:
        variable = f"WORKBENCH_{field.upper()}"
        if variable in environ:
            found[variable] = environ[variable]
        elif settings is not None and getattr(settings, field) is not None:
            found[variable] = getattr(settings, field).get_secret_value()
    return {name: value for name, value in found.items() if len(value) >= MIN_SECRET_LENGTH}


def check_parameters(parameters: Mapping[str, Any], secrets: Mapping[str, str]) -> None:
    """Refuse parameters that carry, or look like they carry, a secret."""
    for name, value in parameters.items():
        reason = _secret_reason(name, value, secrets)
        if reason:
            raise JobRefusedError(
                f"Parameter {name!r} {reason}: keys come from the environment or the keyring "
                f"(WORKBENCH_API_KEY, ...), never from job parameters. Remove it."
            )


def redact(parameters: Mapping[str, Any], secrets: Mapping[str, str]) -> dict[str, Any]:
    """``parameters`` with every secret-looking value masked, safe to record or log."""
    return {
        name: "<withheld>" if _secret_reason(name, value, secrets) else value
        for name, value in parameters.items()
    }


def _secret_reason(name: str, value: Any, secrets: Mapping[str, str]) -> str | None:
    if looks_secret_name(name):
        return "looks like a secret by its name"
    if not isinstance(value, str):
        return None
    leaked = next((variable for variable, secret in secrets.items() if secret == value), None)
    if leaked:
        return f"holds the value of {leaked}"
    if looks_secret_value(value):
        return "looks like a key or token (a long random string)"
    return None


def find_leak(text: str, secrets: Mapping[str, str]) -> str | None:
    """The name of the first variable whose secret value appears in ``text`` (raw, or as
    JSON or HTML escapes it), or None."""
    for variable, secret in secrets.items():
        forms = {secret, json.dumps(secret)[1:-1], html.escape(secret)}
        if any(form in text for form in forms):
            return variable
    return None
