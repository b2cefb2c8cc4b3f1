"""The built wheel carries the bundled models and works from outside the source tree."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_the_wheel_ships_the_models_and_runs_from_a_fresh_venv(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), str(REPO)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    wheel = next(dist.glob("restore_images-*.whl"))  # the distribution name; the package is `restore`
    names = zipfile.ZipFile(wheel).namelist()
    registered = [p.name for p in (REPO / "models").glob("*.safetensors")]
    assert registered and all(f"restore/models/{name}" in names for name in registered)
    assert "restore/models/registry.json" in names
    assert "restore/py.typed" in names  # type checkers read the package's own hints

    # A fresh venv with only the wheel installed; torch and the other dependencies are borrowed
    # from the test environment through a .pth line (whose own .pth files, including the editable
    # install of this checkout, are not processed).
    venv = tmp_path / "fresh"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q", str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (Path(site) / "borrowed_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = subprocess.run(
        [str(python), "-c", "import restore; print(restore.__file__)"], cwd=elsewhere, check=True, capture_output=True, text=True
    ).stdout
    assert where.startswith(str(venv))
    listing = subprocess.run(
        [str(venv / "bin" / "restore"), "models"], cwd=elsewhere, capture_output=True, text=True, timeout=120
    )
    assert listing.returncode == 0, listing.stderr
    for name in ("n2n-gaussian", "edsr-x2", "mnist-dae"):
        assert name in listing.stdout
