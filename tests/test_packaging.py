"""The wheel built from the source tree holds every module and data file (profiles from devices/ as
noisesim/profiles, shipped checkpoints, SST-2, RTE and CoLA), no symlink, and once installed finds its profiles."""

import json
import os
import shutil
import site
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def source_files() -> list[str]:
    """The files a checkout has: tracked ones, and new ones git does not ignore."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs a git checkout to know the source files")
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                         capture_output=True, check=True, timeout=60).stdout.decode()
    return sorted(f for f in out.split("\0") if f and os.path.lexists(REPO / f))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> tuple[Path, str, list[str]]:
    """(wheel file, build log, source files), built from a copy of the source tree without network or isolation."""
    root = tmp_path_factory.mktemp("packaging")
    src, dist = root / "src", root / "dist"
    files = source_files()
    for name in files:
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, src / name, follow_symlinks=False)
    code = "import sys, setuptools.build_meta as b; print(b.build_wheel(sys.argv[1]))"
    env = {**os.environ, "PIP_NO_INDEX": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    built = subprocess.run([sys.executable, "-c", code, str(dist)], cwd=src, capture_output=True, text=True,
                           timeout=300, env=env)
    assert built.returncode == 0, built.stderr[-3000:]
    return dist / built.stdout.split()[-1], built.stdout + built.stderr, files


def test_wheel_holds_modules_profiles_checkpoints_and_data(wheel):
    path, log, files = wheel
    with zipfile.ZipFile(path) as zf:
        infos = {i.filename: i for i in zf.infolist()}
        profiles = [f for f in files if f.startswith("devices/") and f.endswith(".yaml")]
        assert {Path(f).stem for f in profiles} >= {"ideal", "gaussian", "pcm", "pcm-ideal-periphery", "rram", "fefet"}
        for f in profiles:
            assert zf.read(f"noisesim/profiles/{Path(f).name}") == (REPO / f).read_bytes()
        assert "noisesim/profiles/__init__.py" in infos
        shipped = [f for f in files if f.startswith("noisesim/shipped/")]
        assert {Path(f).parent.name for f in shipped} >= {"sst2-grasp", "sst2-stoch"}
        for name in ("sst2-grasp", "sst2-stoch"):
            for part in ("adapter.safetensors", "config.json"):
                file = f"noisesim/shipped/{name}/{part}"
                assert zf.read(file) == (REPO / file).read_bytes()
        data = [f for f in files if f.startswith(("noisesim/data/sst2/", "noisesim/data/rte/", "noisesim/data/cola/"))]
        for task in ("sst2", "rte", "cola"):  # every bundled task: both splits and its README (provenance)
            assert {f"noisesim/data/{task}/{name}" for name in ("dev.tsv", "train.tsv", "README.md")} <= set(data)
            for name in ("dev.tsv", "train.tsv"):
                assert zf.read(f"noisesim/data/{task}/{name}") == (REPO / f"noisesim/data/{task}/{name}").read_bytes()
        modules = [f for f in files if f.startswith("noisesim/") and f.endswith(".py")]
        assert len(modules) >= 30
        missing = [f for f in [*modules, *shipped, *data] if f not in infos]
        assert not missing, f"not in the wheel (list the package in pyproject [tool.setuptools]): {missing}"
        links = [n for n, i in infos.items() if stat.S_ISLNK(i.external_attr >> 16)]
        assert not links
        outside = [n for n in infos if not n.startswith(("noisesim/", "noisesim-"))]
        assert not outside and not any(n.startswith("noisesim/devices/profiles") for n in infos)
    assert "absent from the `packages` configuration" not in log


def test_installed_wheel_finds_its_profiles(wheel, tmp_path):
    """Installed into a fresh venv (its dependencies seen through a .pth), run from outside the repository."""
    pytest.importorskip("pip")
    path, _, _ = wheel
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(venv)], check=True,
                   timeout=120)
    python = venv / "bin" / "python"
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True, timeout=60).stdout.strip()
    Path(purelib, "deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index",
                    str(path)], check=True, timeout=300, capture_output=True)
    code = ("import json, noisesim, noisesim.data as data, noisesim.devices as d; print(json.dumps({'init': noisesim"
            ".__file__, 'known': {n: str(p) for n, p in d.known_profiles().items()}, 'pcm': repr(d.load_profile("
            "'pcm')), 'dev': data.bundled_path('sst2-dev').is_file(), 'rows': {n: len(data.load_table(n)) for n in"
            " ('rte-dev', 'cola-dev')}}))")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    ran = subprocess.run([python, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                         env={**env, "HF_HUB_OFFLINE": "1", "NOISESIM_HOME": str(tmp_path / "home")})
    assert ran.returncode == 0, ran.stderr[-3000:]
    got = json.loads(ran.stdout.splitlines()[-1])
    folder = Path(purelib) / "noisesim"
    assert Path(got["init"]) == folder / "__init__.py"
    assert sorted(got["known"]) == ["cycle-to-cycle", "device-to-device", "drift", "fefet", "gaussian", "ideal", "pcm",
                                    "pcm-ideal-periphery", "rram"]
    assert all(Path(p).parent == folder / "profiles" for p in got["known"].values())
    assert got["pcm"] == "Profile('pcm': programming, drift)" and got["dev"] is True
    assert got["rows"] == {"rte-dev": 277, "cola-dev": 516}  # read from the installed package
