"""Add or update a bundled model in models/registry.json (name, file, sha256, task, summary).

    python tools/register_model.py models/n2n-gaussian.safetensors "Blind colour Gaussian denoiser"

The name, task and description come from the model file's own metadata.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from restore.modelfile import read_info
from restore.zoo import REGISTRY_NAME, sha256_of


def register(path: Path, summary: str) -> None:
    info = read_info(path)
    registry_path = path.parent / REGISTRY_NAME
    registry = json.loads(registry_path.read_text()) if registry_path.exists() else {}
    registry[info.name] = {"file": path.name, "sha256": sha256_of(path), "task": info.task, "summary": summary}
    registry_path.write_text(json.dumps(dict(sorted(registry.items())), indent=2) + "\n")
    print(f"registered {info.name}: {path.name} {registry[info.name]['sha256'][:12]}...")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python tools/register_model.py MODEL.safetensors SUMMARY")
    register(Path(sys.argv[1]), sys.argv[2])
