"""The architecture written in `.importlinter` holds: `lint-imports` passes, and the plugin
contracts name every plugin and every part of core a plugin may not import."""

import configparser
import importlib.util
import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import tokcore

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / ".importlinter"
PLUGIN_ALLOWED = {"api", "nn", "testing", "errors"}  # besides the top-level `tokcore`


def contracts() -> configparser.ConfigParser:
    parser = configparser.ConfigParser()
    parser.read(CONFIG, encoding="utf-8")
    return parser


def lines(value: str) -> list[str]:
    return [v.strip() for v in value.splitlines() if v.strip()]


def lint_imports(*contract_ids: str) -> subprocess.CompletedProcess:
    # the lint-imports of this interpreter's environment (.venv/bin), else the one on PATH
    exe = Path(sys.executable).parent / "lint-imports"
    if not exe.exists():
        exe = Path(shutil.which("lint-imports") or "")
    if not exe.name:
        pytest.skip("import-linter is not installed (pip install -e '.[test]')")
    roots = lines(contracts()["importlinter"]["root_packages"])
    missing = [r for r in roots if importlib.util.find_spec(r) is None]
    if missing:
        pytest.skip(f"not installed here: {', '.join(missing)}")
    args = [str(exe), str(CONFIG), "--no-cache", "--no-logo"]
    for c in contract_ids:
        args += ["--contract", c]
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True)


def test_lint_imports_passes():
    proc = lint_imports()
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_plugins_keep_to_the_api_and_to_themselves():
    proc = lint_imports("plugins-independent", "plugins-use-the-api")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_plugin_contracts_name_every_plugin():
    on_disk = sorted(p.name for p in (ROOT / "plugins").glob("tok_*") if (p / "pyproject.toml").is_file())
    c = contracts()
    assert lines(c["importlinter:contract:plugins-independent"]["modules"]) == on_disk
    assert lines(c["importlinter:contract:plugins-use-the-api"]["source_modules"]) == on_disk
    assert set(lines(c["importlinter"]["root_packages"])) == {"tokcore", *on_disk}


def test_plugins_are_forbidden_every_part_of_core_outside_the_api():
    children = {m.name for m in pkgutil.iter_modules(tokcore.__path__)}
    assert PLUGIN_ALLOWED <= children
    forbidden = lines(contracts()["importlinter:contract:plugins-use-the-api"]["forbidden_modules"])
    assert sorted(forbidden) == sorted(f"tokcore.{m}" for m in children - PLUGIN_ALLOWED)
