"""A config is a path or PLUGIN:NAME, a config shipped inside an installed plugin (or tokcore)."""

import importlib.metadata as md

import pytest

from tokcore import ConfigError, config
from tokcore.cli import main
from tokcore.config import sources


def test_a_packaged_config_loads_and_errors_name_it_plugin_colon_name():
    cfg = config.load("tokcore:walks-fsq", resolve=False)
    assert cfg.data["model"]["quantizer"] == {"name": "fsq", "levels": [8, 5, 5, 5]}
    assert cfg.path == "tokcore:walks-fsq" and cfg.where(("model", "encoder")) == "tokcore:walks-fsq"
    # derived values stated once (anchors) arrive as plain values
    assert cfg.data["model"]["encoder"]["out_dim"] == cfg.data["model"]["decoder"]["in_dim"] == 4
    assert config.load("tokcore:walks-fsq.yaml", resolve=False).data == cfg.data  # a .yaml suffix is allowed


def test_a_base_beside_a_packaged_config_is_named_as_packaged():
    if "tok-gaze" not in sources.available():
        pytest.skip("tok-gaze is not installed")
    cfg = config.load("tok-gaze:egom2p", resolve=False)
    assert cfg.where(("modality", "fov")) == "tok-gaze:quick" and cfg.where(("train", "steps")) == "tok-gaze:egom2p"


def test_an_existing_path_wins_over_plugin_colon_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tokcore:walks-fsq").write_text("tokcore: 1\nseed: 7\n")
    assert config.load("tokcore:walks-fsq", resolve=False).data == {"tokcore": 1, "seed": 7}
    assert sources.run_name("tokcore:walks-fsq") == "tokcore:walks-fsq"


def test_base_entries_may_name_a_packaged_config(tmp_path):
    child = tmp_path / "child.yaml"
    child.write_text("_base_: tokcore:walks-fsq\ntrain: {steps: 5}\n")
    cfg = config.load(child, resolve=False)
    assert cfg.data["train"]["steps"] == 5 and cfg.data["data"]["path"] == "walks.npy"
    assert cfg.where(("data", "path")) == "tokcore:walks-fsq" and cfg.where(("train", "steps")) == str(child)
    child.write_text("_base_: tokcore:walks\n")
    with pytest.raises(ConfigError) as err:
        config.load(child)
    assert str(err.value) == (f"{child}: _base_: tokcore:walks: tokcore has no config 'walks' "
                              "(its configs: reconstruction, titok-quick, titok-video-quick, titok-video-v1, walks-fsq)")


@pytest.mark.parametrize("spec, message", [
    ("tokcor:walks-fsq", "tokcor:walks-fsq: no installed plugin 'tokcor'; did you mean 'tokcore'? "
                         "(tokcore plugins lists them)"),
    ("tok-nothing-alike:quick", "tok-nothing-alike:quick: no installed plugin 'tok-nothing-alike' "
                                "(tokcore plugins lists them)"),
    ("tokcore:walks-fsk", "tokcore:walks-fsk: tokcore has no config 'walks-fsk'; did you mean 'walks-fsq'? "
                          "(its configs: reconstruction, titok-quick, titok-video-quick, titok-video-v1, walks-fsq)"),
    ("PyYAML:quick", "pyyaml:quick: 'PyYAML' is installed but is not a tokcore plugin (tokcore plugins lists them)"),
    ("no/such/file.yaml", "no/such/file.yaml: no such config file; check the path"),
])
def test_errors_are_one_line_with_the_fix(spec, message, capsys):
    with pytest.raises(ConfigError) as err:
        config.load(spec)
    assert str(err.value) == message
    assert main(["config", "--config", spec]) == 2
    assert capsys.readouterr().err == f"tokcore: error: {message}\n"


def test_a_first_party_plugin_that_is_not_installed_says_how_to_install_it(monkeypatch):
    real = md.distribution

    def distribution(name):
        if sources.canonical(name) == "tok-rgb":
            raise md.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(sources.md, "distribution", distribution)
    with pytest.raises(ConfigError) as err:
        config.load("tok_rgb:quick")
    assert str(err.value) == "tok-rgb:quick: tok-rgb is not installed: pip install tok-rgb"


def test_run_directory_names():
    assert sources.run_name("tok-gaze:quick") == "tok-gaze-quick"
    assert sources.run_name("Tok_Gaze:quick.yaml") == "tok-gaze-quick"
    assert sources.run_name("some/where/quick.yaml") == "quick"


def test_every_shipped_config_has_a_one_line_header_and_resolves():
    shipped = sources.available()
    assert shipped["tokcore"] == ["reconstruction", "titok-quick", "titok-video-quick", "titok-video-v1", "walks-fsq"]
    for dist, names in shipped.items():
        for name in names:
            source = sources.packaged(dist, name)
            lines = source.path.read_text(encoding="utf-8").splitlines()
            assert lines[0].startswith("# ") and not lines[1].startswith("#"), f"{source.label}: one header line"
            assert "cfgs/" not in source.path.read_text(encoding="utf-8"), source.label
            config.load(source.label)  # every component known, every parameter valid
