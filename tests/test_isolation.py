"""Each plugin installs into a fresh virtual environment with only tokcore beside it, passes
its own tests there, and `tokcore list` there shows its components and no other plugin's."""

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
    sh(uv, "pip", "install", "-q", "--python", py, *_find_links(), "-c", tmp_path / "constraints.txt",
       ROOT, f"{folder}[test]")  # the plugin's test extra: whatever its own tests need
    sh(py, "-m", "pytest", "-q", "tests", cwd=folder)
    rows = json.loads(sh(venv / "bin" / "tokcore", "list", "--json").stdout)
    providers = {r["distribution"] for r in rows}
    assert providers == {"tokcore", dist}, providers
    plugins = {p["distribution"]: p["status"] for p in json.loads(sh(venv / "bin" / "tokcore", "plugins", "--check", "--json").stdout)}
    assert plugins == {"tokcore": "ok", dist: "ok"}
