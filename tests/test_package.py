"""Package-level promises: light import, public API documented."""

from __future__ import annotations

import inspect
import subprocess
import sys

import lmhub


def test_import_does_not_pull_transformers() -> None:
    code = "import sys, lmhub; lmhub.list_families(); print('transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_public_api_is_documented() -> None:
    for name in lmhub.__all__:
        obj = getattr(lmhub, name)
        if inspect.isfunction(obj) or inspect.isclass(obj):
            assert inspect.getdoc(obj), f"lmhub.{name} has no docstring"


def test_errors_share_one_base() -> None:
    from lmhub import errors

    classes = [
        c for _, c in inspect.getmembers(errors, inspect.isclass) if c.__module__ == errors.__name__
    ]
    assert all(issubclass(c, lmhub.LmhubError) for c in classes)
