"""The release configuration, checked by the tools that will read it: cibuildwheel's own
option and environment parser for every platform, the workflow's runner labels, and the
metadata PyPI shows. Needs the source tree; from an installed wheel alone it skips."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not (ROOT / "pyproject.toml").exists(),
                                reason="needs the source tree (pyproject.toml)")
# Images GitHub has retired: a job naming one queues forever.
RETIRED_RUNNERS = {"macos-11", "macos-12", "macos-13", "ubuntu-18.04", "ubuntu-20.04",
                   "windows-2019"}


def _pyproject():
    tomllib = pytest.importorskip("tomllib")
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


@pytest.mark.parametrize("platform", ["linux", "macos", "windows"])
def test_cibuildwheel_parses_and_evaluates_every_environment(platform, monkeypatch):
    pytest.importorskip("cibuildwheel")
    from cibuildwheel.options import CommandLineArguments, compute_options

    monkeypatch.chdir(ROOT)
    args = CommandLineArguments.defaults()
    args.platform = platform
    args.package_dir = ROOT
    options = compute_options(platform, args, env={})
    # The same call cibuildwheel makes per wheel: parses `environment` (raising on a
    # construct it does not support), then evaluates it; commands are recorded, not run.
    build = options._compute_build_options(identifier=None)
    commands = []
    env = build.environment.as_dictionary(
        prev_environment={"CNNX_LIBOMP": "/opt/libomp", "PATH": "/usr/bin"},
        executor=lambda cmd, env: commands.append(cmd) or "")
    assert "CNNX_ALLOW_SERIAL" not in env   # wheels are never serial
    if platform == "macos":
        assert env["MACOSX_DEPLOYMENT_TARGET"] == "12.0"
        assert env["CPPFLAGS"] == "-I/opt/libomp/include"
        assert env["LDFLAGS"] == "-L/opt/libomp/lib -Wl,-rpath,/opt/libomp/lib"


@pytest.mark.parametrize("platform", ["linux", "macos", "windows"])
def test_cibuildwheel_lists_the_wheels_it_would_build(platform):
    pytest.importorskip("cibuildwheel")
    done = subprocess.run(
        [sys.executable, "-m", "cibuildwheel", "--print-build-identifiers", "--platform",
         platform], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    ids = done.stdout.split()
    for version in ("cp310", "cp311", "cp312", "cp313", "cp314", "cp314t"):
        assert any(i.startswith(version + "-") for i in ids), (version, ids)
    assert not any("win32" in i or "i686" in i for i in ids)


def test_the_workflow_names_only_current_runners():
    text = (ROOT / ".github" / "workflows" / "wheels.yml").read_text()
    labels = set(re.findall(r"\b(?:ubuntu|macos|windows)-[\w.-]+", text))
    assert labels, "no runner labels found"
    assert not labels & RETIRED_RUNNERS, labels & RETIRED_RUNNERS
    assert "brew install libomp" not in (ROOT / "pyproject.toml").read_text()


def test_metadata_for_pypi():
    project = _pyproject()["project"]
    assert {"Homepage", "Source", "Issues"} <= set(project["urls"])
    classifiers = project["classifiers"]
    assert "Operating System :: OS Independent" not in classifiers
    for minor in range(10, 15):
        assert f"Programming Language :: Python :: 3.{minor}" in classifiers
    # PyPI renders the README without the repository: every link must be absolute.
    readme = (ROOT / project["readme"]).read_text()
    links = re.findall(r"\]\(([^)]+)\)", readme)
    relative = [link for link in links if not re.match(r"https?://|#", link)]
    assert not relative, relative
    home = project["urls"]["Source"]
    assert all(link.startswith(home) for link in links if "github.com" in link)
