import sys
import tomllib
from pathlib import Path

import pytest

import tokcore
from tokcore import ConfigError, PluginLoadError, RegistryError, registry
from tokcore.registry.catalog import FIRST_PARTY
from tokcore.builtins.losses import ReconstructionLoss

ROOT = Path(__file__).resolve().parents[1]


def test_kinds_accept_singular_and_plural():
    assert tokcore.registry.kinds() == ("encoder", "quantizer", "decoder", "loss", "trainer", "dataset", "modality",
                                       "baseline", "importer")
    assert registry.normalize_kind("quantizers") == "quantizer"
    assert registry.normalize_kind("losses") == "loss"
    assert registry.normalize_kind("Modalities") == "modality"
    with pytest.raises(RegistryError, match="unknown component kind 'quantizr'; did you mean 'quantizer'"):
        registry.normalize_kind("quantizr")


def test_builtins_come_through_entry_points_with_their_provider():
    assert "reconstruction" in registry.list("loss")
    assert registry.list("losses", "recon*") == ["reconstruction"]
    assert registry.list("loss", "zzz*") == []
    assert registry.get("loss", "reconstruction") is ReconstructionLoss
    p = registry.provider("loss", "reconstruction")
    assert (p.dist, p.version) == ("tokcore", tokcore.__version__)


def test_build_validates_parameters_against_the_signature():
    loss = registry.build("loss", {"name": "reconstruction", "kind": "l1"})
    assert (loss.kind, loss.weight) == ("l1", 1.0)
    with pytest.raises(ConfigError, match=r"^wieght: unknown parameter for loss 'reconstruction'; did you mean 'weight'\?$"):
        registry.build("loss", {"name": "reconstruction", "wieght": 2})
    with pytest.raises(ConfigError, match=r"^weight: expected float, got str 'heavy'$"):
        registry.build("loss", {"name": "reconstruction", "weight": "heavy"})
    with pytest.raises(ConfigError, match=r"^kind: expected 'l1' \| 'l2' \| 'smooth_l1', got str 'l3'$"):
        registry.build("loss", {"name": "reconstruction", "kind": "l3"})


def test_missing_required_parameter(tokcore_registry):
    class NeedsDim(ReconstructionLoss):
        def __init__(self, dim: int, kind: str = "l2"):
            super().__init__(kind)

    tokcore_registry.register("loss", "needs_dim", NeedsDim)
    with pytest.raises(ConfigError, match=r"^dim: missing required parameter 'dim' \(int\) of loss 'needs_dim'$"):
        registry.build("loss", {"name": "needs_dim"})
    assert registry.build("loss", {"name": "needs_dim", "dim": 3}).kind == "l2"


def test_scope_is_temporary(tokcore_registry):
    tokcore_registry.register("loss", "tmp_loss", ReconstructionLoss)
    assert "tmp_loss" in registry.list("loss")
    assert registry.provider("loss", "tmp_loss").dist == registry.LOCAL_DIST
    with registry.scope() as inner:
        assert "tmp_loss" in inner.list("loss")
    assert registry.current() is tokcore_registry


def test_scope_fixture_left_nothing_behind():
    assert "tmp_loss" not in registry.list("loss")


def test_unknown_name_suggests_the_closest_with_its_provider():
    with pytest.raises(RegistryError, match=r"unknown loss 'reconstructon'; did you mean 'reconstruction' \(tokcore \d"):
        registry.get("loss", "reconstructon")
    with pytest.raises(RegistryError, match=r"unknown loss 'zzz'; available: .*reconstruction.*\(tokcore list losses\)"):
        registry.get("loss", "zzz")


def test_not_installed_first_party_plugin_gets_the_pip_command(core_only):
    with pytest.raises(RegistryError, match="^modality 'gaze' is provided by tok-gaze, which is not installed: pip install tok-gaze$"):
        registry.get("modality", "gaze")


def test_catalog_of_first_party_components_matches_the_plugins():
    declared = {}
    for pyproject in ROOT.glob("plugins/tok_*/pyproject.toml"):
        meta = tomllib.loads(pyproject.read_text())["project"]
        for group, entries in meta.get("entry-points", {}).items():
            if group.startswith("tokcore.") and group != registry.HOOK_GROUP:
                kind = next(k for k in registry.KINDS if registry.group_of(k) == group)
                declared.update({(kind, name): meta["name"] for name in entries})
    assert declared == FIRST_PARTY


def test_listing_imports_nothing_and_a_broken_plugin_is_isolated(fake_dist):
    fake_dist("tok-broken", {"tokcore.losses": {"boom": "tok_broken_mod:Boom"}},
              modules={"tok_broken_mod": "raise RuntimeError('exploded on import')"})
    with registry.scope(fresh=True):
        assert "boom" in registry.list("loss")
        assert "tok_broken_mod" not in sys.modules
        with pytest.raises(PluginLoadError, match=r"loss 'boom' from tok-broken 0.1.0 failed to import .*"
                                                  r"RuntimeError: exploded on import.*TOKCORE_DISABLE_PLUGINS=tok-broken"):
            registry.get("loss", "boom")
        assert registry.get("loss", "reconstruction") is ReconstructionLoss  # the rest still works


def test_a_class_that_is_not_the_interface_is_rejected(fake_dist):
    fake_dist("tok-wrong", {"tokcore.losses": {"wrong": "tok_wrong_mod:NotALoss"}},
              modules={"tok_wrong_mod": "class NotALoss:\n    pass\n"})
    with registry.scope(fresh=True):
        with pytest.raises(PluginLoadError, match=r"tok_wrong_mod:NotALoss is not a subclass of tokcore.Loss"):
            registry.get("loss", "wrong")


def test_same_name_from_two_distributions_is_reported_and_qualified(fake_dist):
    fake_dist("tok-clash", {"tokcore.losses": {"reconstruction": "tokcore.builtins.losses:ReconstructionLoss"}})
    with registry.scope(fresh=True):
        names = registry.list("loss")
        assert "tokcore:reconstruction" in names and "tok-clash:reconstruction" in names
        assert "reconstruction" not in names
        with pytest.raises(RegistryError, match=r"loss 'reconstruction' is provided by both tokcore .* and tok-clash "
                                                r"0.1.0; write 'tokcore:reconstruction' or 'tok-clash:reconstruction'"):
            registry.get("loss", "reconstruction")
        assert registry.provider("loss", "tok-clash:reconstruction").dist == "tok-clash"
        built = registry.build("loss", {"name": "tokcore:reconstruction", "kind": "l1"})
        assert built.kind == "l1"


def test_incompatible_plugin_is_disabled_with_the_reason(fake_dist):
    fake_dist("tok-old", {"tokcore.losses": {"old_loss": "tokcore.builtins.losses:ReconstructionLoss"}},
              requires=["tokcore<0.1", "numpy"])
    with registry.scope(fresh=True):
        old = next(p for p in registry.plugins() if p.dist == "tok-old")
        assert old.status == "incompatible"
        assert "tok-old 0.1.0 requires tokcore<0.1, but tokcore 0.1.0 is installed: pip install -U tok-old" in old.reason
        assert "old_loss" not in registry.list("loss")
        with pytest.raises(RegistryError, match="old_loss' is provided by tok-old 0.1.0, which is incompatible"):
            registry.get("loss", "old_loss")


def test_environment_switches_load_only_some_plugins(fake_dist, monkeypatch):
    fake_dist("tok-a", {"tokcore.losses": {"loss_a": "tokcore.builtins.losses:ReconstructionLoss"}})
    fake_dist("tok-b", {"tokcore.losses": {"loss_b": "tokcore.builtins.losses:ReconstructionLoss"}})
    monkeypatch.setenv("TOKCORE_PLUGINS", "tok-a")
    with registry.scope(fresh=True):
        assert {"loss_a", "reconstruction"} <= set(registry.list("loss")) and "loss_b" not in registry.list("loss")
    monkeypatch.setenv("TOKCORE_PLUGINS", "none")
    with registry.scope(fresh=True):
        assert registry.list("loss") == ["reconstruction"]
        assert {p.dist: p.status for p in registry.plugins()}["tok-a"] == "disabled"
    monkeypatch.delenv("TOKCORE_PLUGINS")
    monkeypatch.setenv("TOKCORE_DISABLE_PLUGINS", "tok_b")  # names are normalized
    with registry.scope(fresh=True):
        assert "loss_a" in registry.list("loss") and "loss_b" not in registry.list("loss")


def test_did_you_mean_prefers_a_swap_of_neighbouring_letters():
    from tokcore.registry.names import did_you_mean, edit_distance

    assert edit_distance("fqs", "fsq") == 1 and edit_distance("fqs", "lfq") == 2
    quantizers = registry.list("quantizer")
    assert did_you_mean("fqs", quantizers) == "fsq"  # difflib alone says 'lfq'
    assert did_you_mean("rqv", quantizers) == "rvq" and did_you_mean("vqq", quantizers) == "vq"
    assert did_you_mean("idenity", quantizers) == "identity" and did_you_mean("zz", quantizers) is None
    with pytest.raises(RegistryError, match=r"^unknown quantizer 'fqs'; did you mean 'fsq' \(tokcore "):
        registry.get("quantizer", "fqs")
    with pytest.raises(RegistryError, match=r"did you mean 'quantizer'\?$"):
        registry.normalize_kind("qunatizers")
