"""The packages' lazy public faces: importing them loads no analysis library, every name resolves."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

PACKAGES = ("bbperf", "bbperf.pool", "bbperf.topology")


def test_importing_the_packages_loads_no_pandas() -> None:
    code = f"import sys; import {', '.join(PACKAGES)}; print('pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("package", PACKAGES)
def test_every_public_name_resolves_and_unknown_names_raise(package: str) -> None:
    module = importlib.import_module(package)
    for name in module.__all__:
        assert getattr(module, name) is not None, name
    assert dir(module) == sorted(module.__all__)
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        _ = module.no_such_name
