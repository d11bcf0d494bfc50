"""Each plugin installs (non-editable: built wheels) into a fresh virtual environment with only
tokcore beside it, passes its own tests there, run from a copy of its tests folder outside the
repository so that nothing from the source tree is importable by accident (configs come as
package data, `tok-gaze:quick`), and `tokcore list` there shows its components and no other
plugin's."""

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = sorted(p.parent.name for p in (ROOT / "plugins").glob("*/pyproject.toml"))


def _uv() -> str:
    found = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    if not Path(found).exists():
        pytest.fail("the isolation tests need uv (pip install uv; it is in tokcore's test extra)")
    return found


def _find_links() -> list[str]:
    """Where pip finds local wheels (the CPU torch here), so uv installs the same builds."""
    links = os.environ.get("PIP_FIND_LINKS", "")
    if not links:
        proc = subprocess.run([sys.executable, "-m", "pip", "config", "get", "global.find-links"],
                              capture_output=True, text=True)
        links = proc.stdout.strip() if proc.returncode == 0 else ""
    return [arg for link in links.split() for arg in ("--find-links", link)]


@pytest.mark.isolation
@pytest.mark.parametrize("plugin", PLUGINS)
def test_plugin_alone_with_tokcore(plugin, tmp_path):
    import torch

    folder = ROOT / "plugins" / plugin
    dist = tomllib.loads((folder / "pyproject.toml").read_text())["project"]["name"]
    venv, uv = tmp_path / "venv", _uv()
    torch_pin = f"torch=={torch.__version__.split('+')[0]}"
    (tmp_path / "constraints.txt").write_text(torch_pin + "\n")

    def sh(*cmd, **kw):
        proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
        assert proc.returncode == 0, f"{' '.join(map(str, cmd))}\n{proc.stdout}\n{proc.stderr}"
        return proc

    sh(uv, "venv", "-q", "-p", sys.executable, venv)
    py = venv / "bin" / "python"
    # torch first, pinned, so that nothing later can pull another build
    sh(uv, "pip", "install", "-q", "--python", py, *_find_links(), torch_pin)
    # built from the working tree every time (uv would otherwise reuse a cached wheel whose
    # configs may be stale), installed non-editable with the plugin's test extra
    sh(uv, "pip", "install", "-q", "--python", py, *_find_links(), "-c", tmp_path / "constraints.txt",
       "--refresh-package", "tokcore", "--refresh-package", dist, ROOT, f"{folder}[test]")
    # the tests alone, outside the repository: the plugin and its configs come from the venv
    work = tmp_path / "work"
    shutil.copytree(folder / "tests", work / "tests", ignore=shutil.ignore_patterns("__pycache__"))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    sh(py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--import-mode=importlib", "--rootdir", work, "tests",
       cwd=work, env=env)
    where = sh(py, "-c", f"import {dist.replace('-', '_')} as m; print(m.__file__)", cwd=work).stdout.strip()
    assert Path(where).is_relative_to(venv), where  # the installed package, not the source tree
    rows = json.loads(sh(venv / "bin" / "tokcore", "list", "--json").stdout)
    providers = {r["distribution"] for r in rows}
    assert providers == {"tokcore", dist}, providers
    plugins = {p["distribution"]: p["status"] for p in json.loads(sh(venv / "bin" / "tokcore", "plugins", "--check", "--json").stdout)}
    assert plugins == {"tokcore": "ok", dist: "ok"}
