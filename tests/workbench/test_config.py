"""RunConfig: TOML round trip, field checks with messages that say what is allowed."""

from __future__ import annotations

import pytest

from workbench.config import (
    FIELDS,
    RECURRENT_INITS,
    RunConfig,
    check_forget_bias,
    resolve_threads,
    validate_field,
)
from workbench.errors import ConfigError


def test_toml_round_trip_keeps_every_field(tmp_path):
    config = RunConfig(data=str(tmp_path / "d.h5"), inputs="/x", cell="gru", hidden=17,
                       layers=2, optimizer="sgd", lr=0.05, epochs=None, steps=123,
                       teacher_forcing=0.9, teacher_forcing_end=0.2, clip=1.5, patience=3,
                       seed=7, split_seed=9, probe_every=10, probe_samples=3,
                       val_fraction=0.25, threads=2, device="auto").validate()
    path = tmp_path / "run.toml"
    config.save(path)
    again = RunConfig.load(path)
    assert again == config
    assert "[training]" in path.read_text()


def test_off_values_are_absent_from_toml_and_come_back_as_none(tmp_path):
    config = RunConfig(data="d.h5").validate()
    text = config.to_toml()
    assert "clip" not in text and "patience" not in text
    again = RunConfig.from_toml(text, base_dir=tmp_path)
    assert again.clip is None and again.patience is None and again.probe_every is None


def test_relative_data_path_resolves_against_the_toml_folder(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "run.toml").write_text('[data]\npath = "x"\n'.replace("path", "data"))
    config = RunConfig.load(tmp_path / "sub" / "run.toml")
    assert config.data == str((tmp_path / "sub" / "x").resolve())


def test_steps_in_file_without_epochs_means_a_step_budget():
    config = RunConfig.from_dict({"data": {"data": "/d.h5"}, "training": {"steps": 50}})
    assert config.steps == 50 and config.epochs is None


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [("hidden", "64", 64), ("lr", "1e-3", 1e-3), ("clip", "off", None), ("cell", "LSTM", "lstm"),
     ("patience", None, None), ("epochs", 3.0, 3), ("device", "auto", "auto")],
)
def test_validate_field_coerces(name, value, expected):
    assert validate_field(name, value) == expected


@pytest.mark.parametrize(
    ("name", "value", "allowed"),
    [("hidden", 0, ">= 1"), ("lr", -1, "> 0"), ("optimizer", "rmsprop", "adam, sgd"),
     ("cell", "transformer", "lstm"), ("teacher_forcing", 1.5, "<= 1"),
     ("device", "tpu", "cpu, cuda, auto"), ("batch_size", "many", "an integer"),
     ("hidden", 2.5, "an integer"), ("seed", True, "an integer"), ("lr", "nan", "a number"),
     ("threads", -1, ">= 0"), ("val_fraction", 0.95, "<= 0.9")],
)
def test_invalid_values_name_field_value_and_what_is_allowed(name, value, allowed):
    with pytest.raises(ConfigError) as info:
        validate_field(name, value)
    message = str(info.value)
    assert name in message and repr(value) in message and allowed in message


def test_cross_field_rules_and_unknown_keys():
    with pytest.raises(ConfigError, match="epochs"):
        RunConfig(data="d", epochs=2, steps=3).validate()
    with pytest.raises(ConfigError, match="hiden"):
        RunConfig.from_dict({"data": "d", "hiden": 3})
    with pytest.raises(ConfigError, match="version"):
        RunConfig.from_dict({"data": "d", "version": 99})
    with pytest.raises(ConfigError, match="TOML"):
        RunConfig.from_toml("data = ")


def test_every_field_has_a_spec_and_replace_checks():
    assert set(FIELDS) <= set(RunConfig.__dataclass_fields__)
    config = RunConfig(data="d").replace(hidden="8")
    assert config.hidden == 8
    with pytest.raises(ConfigError):
        config.replace(hidden=-1)


def test_teacher_forcing_schedule_is_linear():
    config = RunConfig(data="d", teacher_forcing=1.0, teacher_forcing_end=0.0)
    assert config.teacher_forcing_at(1, 11) == 1.0
    assert config.teacher_forcing_at(6, 11) == pytest.approx(0.5)
    assert config.teacher_forcing_at(11, 11) == 0.0
    assert RunConfig(data="d", teacher_forcing=0.7).teacher_forcing_at(5, 10) == 0.7


def test_thread_policy_leaves_a_core_for_the_gui():
    assert resolve_threads(3, 64) == 3
    assert resolve_threads(0, 64, policy="cli", cpus=8) == 1
    assert resolve_threads(0, 256, policy="gui", cpus=2) == 1
    assert resolve_threads(0, 256, policy="cli", cpus=2) == 2


# -- the recurrent initialisation (issue 11) ---------------------------------------------


def test_recurrent_init_settings_round_trip_through_toml(tmp_path):
    config = RunConfig(data=str(tmp_path / "d.h5"), cell="lstm", recurrent_init="orthogonal",
                       recurrent_radius=0.5, forget_bias=1.0).validate()
    path = tmp_path / "run.toml"
    config.save(path)
    text = path.read_text()
    model_section = text.split("[model]")[1].split("[training]")[0]
    assert 'recurrent_init = "orthogonal"' in model_section
    assert "recurrent_radius = 0.5" in model_section and "forget_bias = 1.0" in model_section
    again = RunConfig.load(path)
    assert again == config
    assert (again.recurrent_init, again.recurrent_radius, again.forget_bias) == ("orthogonal", 0.5, 1.0)


def test_a_config_without_the_init_settings_loads_as_default(tmp_path):
    """A TOML (or a run's recorded config dict) written before these settings existed."""
    old = ('version = 1\n[data]\ndata = "d.h5"\n[model]\ncell = "gru"\nhidden = 8\n'
           "[training]\nsteps = 10\n")
    config = RunConfig.from_toml(old, base_dir=tmp_path)
    assert (config.recurrent_init, config.recurrent_radius, config.forget_bias) == ("default", None, None)
    recorded = RunConfig(data="/d.h5", cell="gru").validate().to_dict()
    for name in ("recurrent_init", "recurrent_radius", "forget_bias"):
        recorded["model"].pop(name, None)
    assert RunConfig.from_dict(recorded) == RunConfig(data="/d.h5", cell="gru").validate()


def test_off_init_settings_are_absent_from_toml_and_off_is_accepted():
    text = RunConfig(data="d.h5").validate().to_toml()
    assert "recurrent_radius" not in text and "forget_bias" not in text
    assert 'recurrent_init = "default"' in text
    config = RunConfig.from_toml('data = "/d.h5"\n[model]\nrecurrent_radius = "off"\n'
                                 'forget_bias = "off"\nrecurrent_init = "Identity"\n')
    assert (config.recurrent_init, config.recurrent_radius, config.forget_bias) == ("identity", None, None)


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [("recurrent_init", "Orthogonal", "orthogonal"), ("recurrent_init", "default", "default"),
     ("recurrent_radius", "1.5", 1.5), ("recurrent_radius", 2, 2.0), ("recurrent_radius", "off", None),
     ("forget_bias", "-1", -1.0), ("forget_bias", 0, 0.0), ("forget_bias", None, None)],
)
def test_init_settings_coerce(name, value, expected):
    assert validate_field(name, value) == expected


@pytest.mark.parametrize(
    ("name", "value", "allowed"),
    [("recurrent_init", "xavier", "one of default, orthogonal, identity"),
     ("recurrent_init", None, "one of default, orthogonal, identity"),
     ("recurrent_radius", 0, '> 0 and <= 100, or "off"'),
     ("recurrent_radius", -0.5, "> 0"), ("recurrent_radius", "inf", "a number"),
     ("recurrent_radius", 1000.0, "<= 100"), ("forget_bias", "nan", "a number"),
     ("forget_bias", "big", "a number >= -100 and <= 100"), ("forget_bias", True, "a number")],
)
def test_invalid_init_settings_name_field_value_and_what_is_allowed(name, value, allowed):
    with pytest.raises(ConfigError) as info:
        validate_field(name, value)
    message = str(info.value)
    assert name in message and repr(value) in message and allowed in message


@pytest.mark.parametrize("cell", ["rnn-tanh", "rnn-relu", "rnn-sigmoid", "gru"])
def test_forget_bias_is_refused_for_cells_without_a_forget_gate(cell):
    with pytest.raises(ConfigError) as info:
        RunConfig(data="d", cell=cell, forget_bias=1.0).validate()
    assert str(info.value).startswith(f"forget_bias = 1.0 is not allowed with cell = {cell!r}")
    with pytest.raises(ConfigError, match=f"cell = {cell!r}"):
        RunConfig.from_toml(f'data = "/d"\n[model]\ncell = "{cell}"\nforget_bias = 2.0\n')
    with pytest.raises(ConfigError, match="forget_bias = 0.5"):
        check_forget_bias(cell, 0.5)
    check_forget_bias(cell, None)  # off is fine for any cell
    assert RunConfig(data="d", cell="lstm", forget_bias=1.0).validate().forget_bias == 1.0


def test_recurrent_init_choices_are_the_models_own():
    from models.init import recurrent_init_names

    assert recurrent_init_names == RECURRENT_INITS
    assert FIELDS["recurrent_init"].choices == recurrent_init_names
