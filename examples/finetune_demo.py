"""`restore finetune` on a noise the bundled model never saw, scored against clean images.

A stand-in for "your camera": photos with spatially correlated noise (white Gaussian noise
filtered by a Gaussian kernel, as a camera's demosaicking and processing leave it), stored as
8-bit PNGs. The blind Gaussian model n2n-gaussian was trained on white noise only. The script

1. makes two independent noisy shots (a/, b/) of each training photo, and one noisy shot of
   held-out test photos (their clean versions are used only for scoring);
2. runs `restore finetune a/ b/ --from n2n-gaussian` for a few minutes (no clean image is read);
3. scores n2n-gaussian and the finetuned model on the held-out photos (PSNR against clean),
   and writes examples/results/finetune-demo.md.

    .venv/bin/python examples/finetune_demo.py                       # CBSD68, correlated:25,1, 5 minutes
    .venv/bin/python examples/finetune_demo.py --minutes 1 --count 12  # a quick look
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import torch

import restore
from restore.io.datasets import image_files
from restore.io.images import Image, read_image, write_image
from restore.metrics import psnr
from restore.noise import parse_noise

REPO = Path(__file__).resolve().parents[1]


def as_tensor(path: Path) -> torch.Tensor:
    return torch.from_numpy(read_image(path).pixels).permute(2, 0, 1)[None]


def save_u8(path: Path, image: torch.Tensor) -> None:
    """Clip and store as an 8-bit PNG, as a camera's file holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_image(path, Image(image[0].permute(1, 2, 0).clamp(0, 1).numpy(), None, "u8", "srgb"), overwrite=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, default=REPO.parent / "shared" / "data" / "test" / "CBSD68")
    parser.add_argument("--noise", default="correlated:25,1", help="the camera's noise (restore noise spec)")
    parser.add_argument("--count", type=int, default=0, help="photos to use (0: all)")
    parser.add_argument("--test", type=int, default=8, help="the last N photos are held out for scoring")
    parser.add_argument("--minutes", type=float, default=5.0, help="finetuning time")
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "finetune-demo", help="scratch folder")
    parser.add_argument("--out", type=Path, default=REPO / "examples" / "results" / "finetune-demo.md")
    args = parser.parse_args()
    noise = parse_noise(args.noise)
    files = image_files(args.photos)[: args.count or None]
    train_files, test_files = files[: -args.test], files[-args.test :]

    for index, path in enumerate(files):
        generator = torch.Generator().manual_seed(index)
        clean = as_tensor(path)
        if path in train_files:
            save_u8(args.work / "a" / f"{path.stem}.png", noise.apply(clean, generator))
            save_u8(args.work / "b" / f"{path.stem}.png", noise.apply(clean, generator))
        else:
            save_u8(args.work / "test" / f"{path.stem}.png", noise.apply(clean, generator))

    model_file = args.work / "my-camera.safetensors"
    work = os.path.relpath(args.work)  # shown as typed from the current folder
    command = [
        "restore", "finetune", f"{work}/a", f"{work}/b", "-o", f"{work}/my-camera.safetensors",
        "--from", "n2n-gaussian", "--minutes", f"{args.minutes:g}", "--steps", "100000",
        "--val-count", "4", "--val-every", "100", "--run-dir", f"{work}/run",
    ]  # fmt: skip
    (args.work / "run").mkdir(parents=True, exist_ok=True)
    for stale in (args.work / "run").glob("*"):
        stale.unlink()  # a fresh run each time, not a resume
    print("$ " + shlex.join(command), flush=True)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "restore", *command[1:], "--quiet"], check=True)
    minutes = (time.perf_counter() - started) / 60

    base, tuned = restore.load("n2n-gaussian"), restore.load(model_file)
    rows = {"noisy input": [], "n2n-gaussian": [], "finetuned": []}
    for path in test_files:
        clean = as_tensor(path) * 255
        noisy = as_tensor(args.work / "test" / f"{path.stem}.png")
        rows["noisy input"].append(psnr(noisy * 255, clean))
        for label, model in (("n2n-gaussian", base), ("finetuned", tuned)):
            out = (restore.denoise(noisy, model, device="cpu", precision="fp32") * 255).clamp(0, 255).round()
            rows[label].append(psnr(out, clean))
    steps, exported = tuned.info.training["steps"], tuned.info.training["exported_step"]
    lines = [
        "# Finetuning on a noise the bundled model never saw",
        "",
        "Command: `.venv/bin/python examples/finetune_demo.py"
        + "".join(f" {a}" for a in sys.argv[1:])
        + "` (makes the data, runs the finetune below, scores).",
        "",
        f"Camera stand-in: `{noise}` noise on {args.photos.name} photos, stored as 8-bit PNGs. "
        f"{len(train_files)} photos as noisy pairs (no clean image read by finetune), the last "
        f"{len(test_files)} held out and scored against their clean versions (RGB PSNR, mean over images).",
        "",
        f"    {shlex.join(command)}",
        "",
        f"Finetuning: {steps} steps in {minutes:.1f} minutes on the CPU ({torch.get_num_threads()} threads); "
        f"the file holds the weights of step {exported}, the best on the held-out pairs' validation.",
        "",
        "| held-out photos | PSNR (dB) |",
        "|---|---|",
        *[f"| {label} | {sum(v) / len(v):.2f} |" for label, v in rows.items()],
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
