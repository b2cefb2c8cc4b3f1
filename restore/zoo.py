"""The bundled models: a registry from name to file and sha256, checked on every load.

In a source checkout the files live in the repository's top-level `models/` folder; a built
wheel installs that folder as `restore/models`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from restore.modelfile import ModelFileError

_PACKAGE = Path(__file__).resolve().parent
REGISTRY_NAME = "registry.json"


@dataclass(frozen=True)
class BundledModel:
    name: str
    file: Path
    sha256: str
    task: str
    summary: str

    @property
    def ident(self) -> str:
        """Name and the start of the registered sha256: a key that changes when the file is retrained."""
        return f"{self.name}@{self.sha256[:12]}"


def models_dir() -> Path:
    """The folder holding the bundled model files (installed copy first, then the checkout's)."""
    for candidate in (_PACKAGE / "models", _PACKAGE.parent / "models"):
        if (candidate / REGISTRY_NAME).is_file():
            return candidate
    raise ModelFileError("the bundled models are missing: reinstall restore")


@cache
def bundled_models() -> dict[str, BundledModel]:
    """Name -> bundled model, from models/registry.json."""
    folder = models_dir()
    entries = json.loads((folder / REGISTRY_NAME).read_text())
    return {name: BundledModel(name, folder / e["file"], e["sha256"], e["task"], e["summary"]) for name, e in entries.items()}


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def bundled_path(name: str) -> Path:
    """The verified file of a bundled model; ModelFileError when unknown, missing or altered."""
    models = bundled_models()
    if name not in models:
        raise ModelFileError(f"unknown model '{name}' (bundled: {', '.join(sorted(models))}; or give a .safetensors path)")
    entry = models[name]
    if not entry.file.is_file():
        raise ModelFileError(f"bundled model '{name}' is missing its file {entry.file.name}: reinstall restore")
    if sha256_of(entry.file) != entry.sha256:
        raise ModelFileError(f"bundled model '{name}' failed its sha256 check: {entry.file} is damaged")
    return entry.file
