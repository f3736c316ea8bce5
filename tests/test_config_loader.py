"""Experiment files load, `--config.a.b=v` overrides are typed, and mistakes are named."""

import pathlib

import pytest

from samaudio_jax.cli.config_loader import apply_overrides, load_config

CONFIGS = pathlib.Path(__file__).resolve().parents[1] / "configs"


@pytest.mark.parametrize("name", ["tiny", "small", "base", "large", "demo"])
def test_every_experiment_file_loads_and_documents_its_run_command(name):
    path = CONFIGS / f"{name}.py"
    config = load_config(path)
    assert config.name == name
    assert "samaudio-jax" in path.read_text().split('"""')[1]
    assert config.model.dim % config.model.num_heads == 0


def test_overrides_are_coerced_to_the_fields_types():
    config = load_config(
        CONFIGS / "tiny.py",
        [
            "--config.model.dim=96",
            "--config.model.scan_layers=true",
            "--config.train.learning_rate=3e-4",
            "--config.data.snr_db=(-5, 5)",
            "--config.model.head=gated_mix",
        ],
    )
    assert config.model.dim == 96 and isinstance(config.model.dim, int)
    assert config.model.scan_layers is True
    assert config.train.learning_rate == pytest.approx(3e-4)
    assert tuple(config.data.snr_db) == (-5, 5)
    assert config.model.head == "gated_mix"


@pytest.mark.parametrize(
    "override, message",
    [
        ("--config.model.dimm=3", "no field 'model.dimm'"),
        ("--config.nosuch.dim=3", "no field 'nosuch'"),
        ("--config.model.dim=wide", "expected an integer"),
        ("--config.model.scan_layers=maybe", "expected a boolean"),
        ("--model.dim=3", "overrides look like"),
    ],
)
def test_bad_overrides_name_the_field(override, message):
    with pytest.raises(ValueError, match=message):
        apply_overrides(load_config(CONFIGS / "tiny.py"), [override])


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.py"):
        load_config(tmp_path / "nope.py")


@pytest.mark.parametrize("size", ["small", "base", "large"])
def test_sized_presets_are_one_file_and_differ_in_sizes_only(size):
    from samaudio_jax.config_checks import ConfigError

    old_path = load_config(CONFIGS / f"{size}.py").to_dict()
    assert load_config(f"{CONFIGS / 'sam.py'}:{size}").to_dict() == old_path
    other = load_config(f"{CONFIGS / 'sam.py'}:small").to_dict()
    differ = {
        (section, k)
        for section in old_path
        if isinstance(old_path[section], dict)
        for k in old_path[section]
        if old_path[section][k] != other[section][k]
    }
    sizes = {("model", "dim"), ("model", "num_layers"), ("model", "num_heads")}
    assert differ <= sizes and (old_path["name"] == size)
    with pytest.raises(ConfigError, match=r"sam.py:huge: expected a size in small, base, large"):
        load_config(f"{CONFIGS / 'sam.py'}:huge")
