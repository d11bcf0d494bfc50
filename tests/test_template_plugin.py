"""A third party's plugin, made from plugins/_template outside the repo by running the
template README's own commands, installed with pip."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "plugins/_template"


def tokcore(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tokcore", *args], capture_output=True, text=True, cwd=cwd)


def pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "-q", "--disable-pip-version-check", *args], check=True,
                   capture_output=True)


def rename_commands(readme: Path) -> list[str]:
    """The shell lines of a README's first bash block that copy and rename the template
    (everything before its `pip install`)."""
    block = re.search(r"```bash\n(.*?)```", readme.read_text(), re.S).group(1)
    lines = []
    for line in block.splitlines():
        if line.startswith("pip install"):
            break
        lines.append(line)
    return lines


def make_plugin(tmp_path: Path) -> Path:
    """The template copied and renamed by running its README's commands as written, from a
    checkout that holds plugins/_template."""
    checkout = tmp_path / "checkout"
    shutil.copytree(TEMPLATE, checkout / "plugins/_template",
                    ignore=shutil.ignore_patterns("*.egg-info", "__pycache__", "build"))
    commands = rename_commands(TEMPLATE / "README.md")
    subprocess.run(["bash", "-euo", "pipefail", "-c", "\n".join(commands)], cwd=checkout, check=True,
                   capture_output=True)
    return tmp_path / "tok-mything"


def listed_losses() -> dict[str, str]:
    proc = tokcore("list", "losses", "--json")
    assert proc.returncode == 0, proc.stderr
    return {row["name"]: row["distribution"] for row in json.loads(proc.stdout)}


def test_the_guide_renames_the_template_with_the_readmes_commands():
    assert rename_commands(ROOT / "docs/writing-a-plugin.md") == rename_commands(TEMPLATE / "README.md")


def test_template_renamed_by_its_readme_installs_checks_lists_builds_and_uninstalls(tmp_path):
    plugin = make_plugin(tmp_path)
    left = [str(f.relative_to(plugin)) for f in plugin.rglob("*")
            if f.is_file() and re.search(r"tok[-_]example", f.read_text())]
    assert not left, f"the README's rename missed the old name in {left}"
    assert "charbonnier" not in listed_losses()
    pip("install", "--no-deps", "--no-build-isolation", str(plugin))
    try:
        assert listed_losses()["charbonnier"] == "tok-mything"
        check = tokcore("plugins", "--check", "--json")
        status = {p["distribution"]: (p["status"], p["errors"]) for p in json.loads(check.stdout)}
        assert status["tok-mything"] == ("ok", []), status["tok-mything"]
        assert check.returncode == 0, check.stdout
        cfg = tmp_path / "cfg.yaml"
        cfg.write_text("tokcore: 1\nrequires: ['tok-mything>=0.1']\nloss: {name: charbonnier, eps: 0.01}\n")
        proc = tokcore("config", "--config", str(cfg))
        assert proc.returncode == 0, proc.stderr
        assert "loss:\n  name: charbonnier\n  eps: 0.01\n  weight: 1.0\n" in proc.stdout
        built = subprocess.run([sys.executable, "-c", "import tokcore, tok_mything; l = tokcore.registry.build('loss', "
                                "{'name': 'charbonnier', 'eps': 0.01}); print(type(l).__module__, l.eps, "
                                "tok_mything.__version__)"],
                               capture_output=True, text=True, check=True)
        assert built.stdout == "tok_mything.losses 0.01 0.1.0\n"
        tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "tests"], cwd=plugin,
                               capture_output=True, text=True)
        assert tests.returncode == 0, tests.stdout
        assert "2 passed" in tests.stdout and "skipped" not in tests.stdout, tests.stdout  # the contract ran
    finally:
        pip("uninstall", "-y", "tok-mything")
    assert "charbonnier" not in listed_losses()
    gone = tokcore("config", "--config", str(cfg))
    assert gone.returncode == 2
    assert "requires: tok-mything is not installed: pip install 'tok-mything>=0.1'" in gone.stderr
