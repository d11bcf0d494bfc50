"""A third party's plugin, made from plugins/_template outside the repo, installed with pip."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def tokcore(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tokcore", *args], capture_output=True, text=True, cwd=cwd)


def pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "-q", "--disable-pip-version-check", *args], check=True,
                   capture_output=True)


def make_plugin(dest: Path) -> Path:
    """The template copied and renamed the way its README says."""
    shutil.copytree(ROOT / "plugins/_template", dest, ignore=shutil.ignore_patterns("*.egg-info", "__pycache__", "build"))
    for f in dest.rglob("*"):
        if f.is_file():
            text = f.read_text()
            f.write_text(text.replace("tok_example", "tok_oot_demo").replace("tok-example", "tok-oot-demo")
                         .replace("charbonnier = ", "oot_charbonnier = ").replace('"charbonnier"', '"oot_charbonnier"'))
    (dest / "tok_example").rename(dest / "tok_oot_demo")
    return dest


def listed_losses() -> dict[str, str]:
    proc = tokcore("list", "losses", "--json")
    assert proc.returncode == 0, proc.stderr
    return {row["name"]: row["distribution"] for row in json.loads(proc.stdout)}


def test_out_of_tree_plugin_installs_lists_builds_and_uninstalls(tmp_path):
    plugin = make_plugin(tmp_path / "tok-oot-demo")
    assert "oot_charbonnier" not in listed_losses()
    pip("install", "--no-deps", "--no-build-isolation", str(plugin))
    try:
        assert listed_losses()["oot_charbonnier"] == "tok-oot-demo"
        cfg = tmp_path / "cfg.yaml"
        cfg.write_text("tokcore: 1\nrequires: ['tok-oot-demo>=0.1']\nloss: {name: oot_charbonnier, eps: 0.01}\n")
        proc = tokcore("config", "--config", str(cfg))
        assert proc.returncode == 0, proc.stderr
        assert "loss:\n  name: oot_charbonnier\n  eps: 0.01\n  weight: 1.0\n" in proc.stdout
        built = subprocess.run([sys.executable, "-c", "import tokcore; l = tokcore.registry.build('loss', "
                                "{'name': 'oot_charbonnier', 'eps': 0.01}); print(type(l).__module__, l.eps)"],
                               capture_output=True, text=True, check=True)
        assert built.stdout == "tok_oot_demo.losses 0.01\n"
        tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "tests"], cwd=plugin,
                               capture_output=True, text=True)
        assert tests.returncode == 0, tests.stdout
        assert "2 passed" in tests.stdout
    finally:
        pip("uninstall", "-y", "tok-oot-demo")
    assert "oot_charbonnier" not in listed_losses()
    gone = tokcore("config", "--config", str(cfg))
    assert gone.returncode == 2
    assert "requires: tok-oot-demo is not installed: pip install 'tok-oot-demo>=0.1'" in gone.stderr
