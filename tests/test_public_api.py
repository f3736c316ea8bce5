"""The top-level package exposes the documented API lazily."""

import subprocess
import sys

import samaudio_jax


def test_every_documented_name_resolves_to_a_callable():
    for name in samaudio_jax.__all__:
        assert callable(getattr(samaudio_jax, name)), name


def test_importing_the_package_and_cli_does_not_import_jax():
    code = "import sys, samaudio_jax, samaudio_jax.cli.main; print('jax' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_unknown_name_is_an_attribute_error():
    try:
        samaudio_jax.not_a_thing  # noqa: B018
    except AttributeError as err:
        assert "not_a_thing" in str(err)
    else:
        raise AssertionError("expected AttributeError")
