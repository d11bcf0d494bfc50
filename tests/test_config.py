import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tokcore import ConfigError, config
from tokcore.cli import main
from tokcore.interfaces import Decoder
from tokcore.builtins.losses import ReconstructionLoss

CONFIGS = Path(__file__).parent / "configs"
BROKEN = sorted((CONFIGS / "broken").glob("*.yaml"))


class CharbonnierLocal(ReconstructionLoss):
    """A loss with other parameters than `reconstruction`, to test component replacement.

    Args:
        eps: smoothing.
    """

    def __init__(self, eps: float = 1e-3):
        super().__init__("l1")
        self.eps = eps


class NeedsInDim(Decoder):
    def __init__(self, in_dim: int):
        super().__init__()
        self.in_dim = in_dim

    def forward(self, z, **cond):
        return z

    def example_input(self, batch_size=2):
        raise AssertionError("not used")


@pytest.fixture
def local_components(core_only):
    core_only.register("loss", "charbonnier_local", CharbonnierLocal)
    core_only.register("decoder", "needs_in_dim", NeedsInDim)
    return core_only


def test_precedence_defaults_base_file_command_line(local_components):
    cfg = config.load(CONFIGS / "good/child.yaml", ["loss.weight=0.25", "seed=3"])
    assert cfg.data == {"tokcore": 1, "seed": 3, "loss": {"name": "reconstruction", "kind": "l1", "weight": 0.25}}
    raw = config.load(CONFIGS / "good/child.yaml", resolve=False)
    assert raw.data["seed"] == 2 and raw.data["loss"] == {"name": "reconstruction", "kind": "l1", "weight": 0.5}
    assert raw.where(("loss", "kind")).endswith("good/base.yaml")
    assert raw.where(("loss", "weight")).endswith("good/child.yaml")
    assert cfg.where(("seed",)) == config.COMMAND_LINE


def test_defaults_fill_what_the_config_leaves_out(local_components):
    cfg = config.load(CONFIGS / "good/base.yaml")
    assert cfg.data["loss"] == {"name": "reconstruction", "kind": "l1", "weight": 1.0}


def test_naming_another_component_replaces_the_mapping_instead_of_merging(local_components):
    cfg = config.load(CONFIGS / "good/swap.yaml")
    assert cfg.data["loss"] == {"name": "charbonnier_local", "eps": 1e-3}  # no 'kind' inherited
    over = config.load(CONFIGS / "good/base.yaml", ["loss.name=charbonnier_local", "loss.eps=0.5"])
    assert over.data["loss"] == {"name": "charbonnier_local", "eps": 0.5}


def test_overrides_are_yaml_scalars():
    ov = config.parse_overrides(["a.b=[8, 5, 5]", "c=true", "d=1e-3", "e=x=y", "f=", "g=007"]).data
    assert ov == {"a": {"b": [8, 5, 5]}, "c": True, "d": "1e-3", "e": "x=y", "f": None, "g": 7}
    with pytest.raises(ConfigError, match="'novalue' is not an override; write key.path=value"):
        config.parse_overrides(["novalue"])
    with pytest.raises(ConfigError, match="sets a key inside 'a'"):
        config.parse_overrides(["a=1", "a.b=2"])


def test_an_override_cannot_flatten_a_section(local_components):
    with pytest.raises(ConfigError, match="command line: 'loss' is a section; set one of its keys"):
        config.load(CONFIGS / "good/base.yaml", ["loss=3"])


def test_override_errors_point_at_the_command_line(local_components):
    with pytest.raises(ConfigError, match=r"^command line: loss.wieght: unknown parameter"):
        config.load(CONFIGS / "good/base.yaml", ["loss.wieght=3"])


@pytest.mark.parametrize("path", BROKEN, ids=[p.stem for p in BROKEN])
def test_broken_config_gives_its_one_line_error(path, local_components, capsys, monkeypatch):
    expected = path.read_text().splitlines()[0].removeprefix("# error: ")
    monkeypatch.chdir(CONFIGS)
    code = main(["config", "--config", str(path.relative_to(CONFIGS))])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert re.fullmatch("tokcore: error: " + expected + "\n", err), f"\n got: {err}want: {expected}"


def test_broken_config_through_the_real_command(tmp_path):
    env = {**os.environ, "TOKCORE_PLUGINS": "none"}
    proc = subprocess.run([sys.executable, "-m", "tokcore", "config", "--config", "broken/wrong_type.yaml"],
                          cwd=CONFIGS, env=env, capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr == ("tokcore: error: broken/wrong_type.yaml: loss.weight: expected float, "
                           "got str 'heavy'\n")
    debug = subprocess.run([sys.executable, "-m", "tokcore", "--debug", "config", "--config", "broken/wrong_type.yaml"],
                           cwd=CONFIGS, env=env, capture_output=True, text=True)
    assert debug.returncode == 2 and "Traceback" in debug.stderr


def test_config_command_prints_the_resolved_config(local_components, capsys):
    assert main(["config", "--config", str(CONFIGS / "good/child.yaml"), "loss.kind=smooth_l1"]) == 0
    out = capsys.readouterr().out
    assert out == "tokcore: 1\nseed: 2\nloss:\n  name: reconstruction\n  kind: smooth_l1\n  weight: 0.5\n"
