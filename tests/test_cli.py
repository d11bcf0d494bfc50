import json
import os
import subprocess
import sys

import pytest

from tokcore import registry
from tokcore.cli import main


def run(*args, env=None):
    return subprocess.run([sys.executable, "-X", "importtime", "-m", "tokcore", *args],
                          capture_output=True, text=True, env={**os.environ, **(env or {})})


@pytest.mark.parametrize("args", [["list"], ["list", "quantizers"], ["list", "loss", "r*", "--json"], ["plugins"]])
def test_listing_never_imports_torch(args):
    proc = run(*args)
    assert proc.returncode == 0, proc.stderr
    imported = {line.split("|")[-1].strip().split(".")[0] for line in proc.stderr.splitlines() if "|" in line}
    assert "torch" not in imported and "numpy" not in imported


def test_import_tokcore_and_list_in_process_stay_light():
    code = ("import sys, tokcore; tokcore.registry.list('quantizer'); tokcore.registry.plugins(); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_list_shows_kind_name_and_provider(capsys):
    assert main(["list", "losses"]) == 0
    out = capsys.readouterr().out
    assert "loss  reconstruction  tokcore 0.1.0" in out
    assert main(["list", "loss", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {"kind": "loss", "name": "reconstruction", "distribution": "tokcore", "version": "0.1.0",
            "target": "tokcore.builtins.losses:ReconstructionLoss"} in rows


def test_plugins_check_reports_each_distribution(capsys, fake_dist):
    with registry.scope(fresh=True):
        assert main(["plugins", "--check", "--json"]) == 0
        report = {p["distribution"]: p for p in json.loads(capsys.readouterr().out)}
        assert report["tokcore"]["status"] == "ok"
        assert report["tokcore"]["components"]["loss"] == ["reconstruction"]
    fake_dist("tok-broken", {"tokcore.losses": {"boom": "tok_broken_mod:Boom"}},
              modules={"tok_broken_mod": "raise ImportError('needs libfoo')"})
    with registry.scope(fresh=True):
        assert main(["plugins", "--check"]) == 1
        out = capsys.readouterr().out
        assert "tok-broken" in out and "failed" in out and "needs libfoo" in out
        assert main(["plugins"]) == 0  # without --check nothing is imported, so nothing fails


def test_info_shows_description_and_parameters(capsys):
    assert main(["info", "losses", "reconstruction"]) == 0
    out = capsys.readouterr().out
    assert "loss 'reconstruction' from tokcore 0.1.0 (tokcore.builtins.losses:ReconstructionLoss)" in out
    assert "kind: 'l1' | 'l2' | 'smooth_l1', default 'l2'" in out
    assert "weight: float, default 1.0\n      factor on the loss." in out


def test_info_train_shows_every_setting_with_type_default_and_doc(capsys):
    from dataclasses import fields

    from tokcore.config.spec import TrainSettings

    assert main(["info", "train"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("settings 'train:' of a config (tokcore.config.spec.TrainSettings)\n\n"
                          "Settings of the shared training loop")
    assert "  steps: int, default 1000\n      optimizer steps to run.\n" in out
    assert "  schedule: 'cosine' | 'constant', default 'cosine'\n" in out
    assert "  betas: list[float], default [0.9, 0.99]\n" in out
    for f in fields(TrainSettings):  # every field is there, and documented
        assert f"\n  {f.name}: " in out, f.name
        assert out.split(f"\n  {f.name}: ", 1)[1].split("\n", 2)[1].startswith("      "), f"{f.name} has no doc"
    assert main(["info", "train", "steps"]) == 2
    assert "'train' is a config section" in capsys.readouterr().err


def test_usage_errors_are_one_line_and_exit_2(capsys):
    assert main(["list", "quantizr"]) == 2
    assert capsys.readouterr().err == "tokcore: error: unknown component kind 'quantizr'; did you mean 'quantizer'?\n"
    assert main(["frobnicate"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("tokcore: error: argument COMMAND: invalid choice: 'frobnicate'")
    assert main(["info", "loss"]) == 2
    assert "the following arguments are required: name" in capsys.readouterr().err



def test_a_pattern_that_matches_nothing_says_so_and_exits_2(capsys):
    # exit 2 as for `tokcore info` of an unknown name: a script notices the typo; --json stays valid JSON
    assert main(["list", "quantizers", "zz*"]) == 2
    cap = capsys.readouterr()
    assert cap.out == ""
    assert cap.err == "tokcore: error: no quantizers match 'zz*'; quantizers: cosmos_fsq, fsq, identity, lfq, rfsq, rvq, vq\n"
    assert main(["list", "quantizers", "fqs", "--json"]) == 2
    cap = capsys.readouterr()
    assert json.loads(cap.out) == []
    assert cap.err.startswith("tokcore: error: no quantizers match 'fqs' (did you mean 'fsq'?); quantizers: cosmos_fsq, fsq, ")
    assert main(["list", "quantizers", "f*"]) == 0 and "fsq" in capsys.readouterr().out


HOOKS = """
import tokcore

def configure(parser):
    parser.add_argument("--who", default="world")

def hello(args):
    print(f"hello {args.who}")

def crash(args):
    raise RuntimeError("disk on fire")

@tokcore.hookimpl
def tokcore_register_commands(register):
    register("hello", "say hello", configure, hello)
    register("crash", "fail at run time", lambda p: None, crash)
"""


def test_plugins_add_commands_through_hooks(fake_dist, capsys):
    fake_dist("tok-hello", {"tokcore.plugins": {"hello": "tok_hello_hooks"}}, modules={"tok_hello_hooks": HOOKS})
    fake_dist("tok-badhook", {"tokcore.plugins": {"bad": "tok_bad_hooks"}}, modules={"tok_bad_hooks": "raise SyntaxError('x')"})
    with registry.scope(fresh=True):
        assert main(["list"]) == 0  # built-in commands never import hook modules
        assert "tok_hello_hooks" not in sys.modules
        capsys.readouterr()
        assert main(["hello", "--who", "tokcore"]) == 0
        captured = capsys.readouterr()
        assert captured.out == "hello tokcore\n"
        assert "plugin tok-badhook: tok_bad_hooks failed to import: SyntaxError" in captured.err
        assert main(["crash"]) == 1  # a runtime failure: exit 1, one line, no traceback
        err = capsys.readouterr().err.splitlines()[-1]
        assert err == "tokcore: RuntimeError: disk on fire (run with --debug for the traceback)"


def test_every_builtin_command_is_registered_with_its_function():
    from tokcore import cli

    runs = {name: run for name, (_, _, run) in cli.BUILTIN.items()}
    assert runs == {name[len("cmd_"):]: f for name, f in vars(cli).items() if name.startswith("cmd_")}
