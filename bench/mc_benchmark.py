"""Monte Carlo render denoising side by side with Intel Open Image Denoise, same CPU, same run.
Writes bench/results/mc.md.

    python bench/mc_benchmark.py                                  # the Cornell box of ../shared/data/mc
    python bench/mc_benchmark.py --renders data/mc-test data/caustics-test    # plus tools/render_pairs.py scenes
    python bench/mc_benchmark.py --renders data/caustics-test --finetuned runs/mc-ft.safetensors
    python bench/mc_benchmark.py --renders data/mc-dev --models runs/v1/n2n-mc.safetensors --out bench/results/mc-dev.md
    python bench/mc_benchmark.py --renders data/mc-dev --models runs/r17-25000.safetensors --no-baselines --out /tmp/r17.md

Test cases: `../shared/data/mc/cbox/` (4 and 16 spp, albedo, normal, 13,312 spp reference) and,
with --renders, every scene of tools/render_pairs.py folders that has a reference (render
them with seeds the training scenes did not use); each folder is a column group. Scores: PSNR after the tone map
T(v) = (max(v, 0) / (1 + max(v, 0)))^(1/2.2) against the reference, RGB, peak 1, mean over
scenes per spp. Methods: the noisy input; OIDN (`pyoidn`, hdr=True, quality high) on colour
alone and with albedo + normal; the bundled n2n-mc / n2n-mc-aux when present (n2n-mc-aux
cleans its buffers with the prefilter its file names, as `restore denoise` does, and a row
"buffers as given" runs it without); a finetuned
model given with --finetuned; any other model files given with --models (a model before
retraining, say), each a row named by its file. A second table gives the relative error of the
linear energy in the brightest 1% of reference pixels (highlights and emitters that come back
dimmer score badly there while the tone-mapped PSNR hardly moves). A last table per render folder
lists each scene at its lowest spp under OIDN with buffers and n2n-mc-aux, furthest behind first,
with the scene's materials, and then under n2n-mc-aux and each model file given, so that a
finetune's or a retraining's change can be traced to its scenes too. --no-baselines scores only
the model files given (with the noisy input), a quick look at a training run's exports beside the
run, without the scene tables that need OIDN or n2n-mc-aux. Time per megapixel: each
method on the 4 spp Cornell box, median of 3 after a warm-up call, in this process (CPU, fp32
for ours, and the bundled models in bf16 too where the CPU has native bf16).

Needs the bench extra: `pip install -e '.[bench]'` (pyoidn).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import command_line, machine  # noqa: E402

from restore.api import InferenceOptions, Model, load, run_model  # noqa: E402
from restore.device import cpu_precisions  # noqa: E402
from restore.hdr import estimated_psnr_tone_mapped, luminance, psnr_tone_mapped  # noqa: E402
from restore.io.datasets import aux_path  # noqa: E402
from restore.io.images import read_image  # noqa: E402
from restore.zoo import bundled_models  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "mc.md"
CBOX = Path(__file__).resolve().parents[2] / "shared" / "data" / "mc" / "cbox"


@dataclass
class Case:
    group: str  # "cbox", or the name of the render folder
    name: str
    spp: int
    noisy: np.ndarray  # H x W x 3 linear
    second: np.ndarray  # an independent render of the same spp (B of the pair)
    albedo: np.ndarray
    normal: np.ndarray
    reference: np.ndarray
    materials: str = ""  # the scene's objects' BSDFs, from its manifest (render folders)


Denoiser = Callable[[Case], np.ndarray]


def image_tensor(pixels: np.ndarray) -> torch.Tensor:
    """H x W x C pixels as a 1 x C x H x W tensor."""
    return torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.float32)).permute(2, 0, 1)[None]


def pixels(path: Path) -> np.ndarray:
    return np.ascontiguousarray(read_image(path).pixels, dtype=np.float32)


def cbox_cases(folder: Path) -> list[Case]:
    reference, albedo, normal = (pixels(folder / f"{n}.exr") for n in ("reference", "albedo", "normal"))
    return [
        Case("cbox", "cbox", spp, *(pixels(folder / f"noisy_{spp}spp_{shot}.exr") for shot in "ab"), albedo, normal, reference)
        for spp in (4, 16)
    ]


def render_cases(folder: Path) -> list[Case]:
    """Scenes of a tools/render_pairs.py folder with a reference: NAME_{spp}spp or NAME (spp from the manifest)."""
    manifest = json.loads((folder / "manifest.json").read_text())["scenes"]
    cases = []
    for name, entry in sorted(manifest.items()):
        reference = folder / "reference" / f"{name}.exr"
        if not reference.is_file():
            continue
        noisy = folder / "a" / f"{name}.exr"
        cases.append(
            Case(
                folder.name,
                name,
                entry["spp"],
                pixels(noisy),
                pixels(folder / "b" / f"{name}.exr"),
                pixels(aux_path(noisy, "albedo")),
                pixels(aux_path(noisy, "normal")),
                pixels(reference),
                ", ".join(sorted(obj["bsdf"] for obj in entry.get("objects", []))),
            )
        )
    return cases


def provenance(renders: list[Path], models: list[Path]) -> list[str]:
    """The commands that made the bench's inputs: each render folder's (from its manifest) and each
    model file's given on the command line (the finetune's, --models')."""
    lines = []
    for folder in renders:
        commands = json.loads((folder / "manifest.json").read_text()).get("commands", [])
        lines += [f"    {command}" for command in commands] or [f"    ({folder}: made before manifests kept their command)"]
    for model in models:
        lines.append(f"    {load(model).info.training['command']}")
    return ["Inputs (test renders with seeds the training never used; the model files named):", "", *lines, ""] if lines else []


def oidn(with_aux: bool) -> Denoiser:
    import pyoidn

    def run(case: Case) -> np.ndarray:
        if with_aux:
            return pyoidn.denoise(case.noisy, case.albedo, case.normal, hdr=True)
        return pyoidn.denoise(case.noisy, hdr=True)

    return run


def ours(model: Model, precision: str = "fp32", prefilter_aux: bool = True) -> Denoiser:
    """`model` as `restore denoise` runs it (its buffer prefilter first, unless `prefilter_aux` is False)."""
    options = InferenceOptions(device="cpu", precision=precision, prefilter_aux=prefilter_aux)

    def run(case: Case) -> np.ndarray:
        aux = np.concatenate([case.albedo, case.normal], axis=-1) if model.info.aux else None
        return run_model(model, case.noisy, options, aux=aux)

    return run


def bundled_rows(name: str, model: Model) -> dict[str, Denoiser]:
    """A bundled model's rows: as `restore denoise` runs it and, where it names a buffer prefilter,
    again on the buffers as given, so that a table shows what the prefilter adds."""
    rows = {name: ours(model)}
    if model.aux_prefilter is not None:
        rows[f"{name}, buffers as given"] = ours(model, prefilter_aux=False)
    return rows


def bundled_render_models() -> dict[str, Model]:
    """The bundled render denoisers the MC benches score, loaded: n2n-mc and n2n-mc-aux, where bundled."""
    return {name: load(name) for name in ("n2n-mc", "n2n-mc-aux") if name in bundled_models()}


HIGHLIGHTS = 0.01  # the brightest 1% of the reference's pixels (by luminance)


def compared_methods(files: dict[str, Path], baselines: bool = True) -> dict[str, Denoiser]:
    """A table's rows after the noisy input: with `baselines`, OIDN without and with buffers and the
    bundled render models (as `restore denoise` runs them, and again in bf16 where this CPU has it),
    then each model file under its label. Without, the files alone, so that a training run's exports
    can be scored while it runs."""
    methods: dict[str, Denoiser] = {}
    if baselines:
        methods |= {"OIDN (colour)": oidn(False), "OIDN (colour + albedo + normal)": oidn(True)}
        bundled = bundled_render_models()
        for name, model in bundled.items():
            methods |= bundled_rows(name, model)
        if "bf16" in cpu_precisions():  # what --precision bf16 gives (auto keeps fp32 for float renders)
            methods |= {f"{name}, bf16": ours(model, "bf16") for name, model in bundled.items()}
    return methods | {label: ours(load(path)) for label, path in files.items()}


def highlight_energy_error(output: np.ndarray, reference: np.ndarray) -> float:
    """Signed relative error of the linear energy (RGB sum) in the brightest 1% of the reference's
    pixels: -0.1 means highlights and emitters come back 10% dimmer. The tone-mapped PSNR hardly
    sees it, since T squeezes bright values together."""
    luma = luminance(image_tensor(reference))[0, 0].numpy()
    bright = luma >= np.quantile(luma, 1 - HIGHLIGHTS)
    wanted = float(reference[bright].sum())
    return float(output[bright].sum()) / wanted - 1 if wanted > 0 else 0.0


def seconds_per_megapixel(methods: dict[str, Denoiser], case: Case, rounds: int = 3) -> dict[str, float]:
    """Each method's median time per megapixel over `rounds` calls on `case`, after a warm-up call
    each, the methods taking turns: load that arrives on the machine midway slows them alike, where
    timing one method's calls and then the next's would charge it to whichever ran then."""
    for denoise in methods.values():
        denoise(case)
    times: dict[str, list[float]] = {label: [] for label in methods}
    for _ in range(rounds):
        for label, denoise in methods.items():
            start = time.perf_counter()
            denoise(case)
            times[label].append(time.perf_counter() - start)
    megapixels = case.noisy.shape[0] * case.noisy.shape[1] / 1e6
    return {label: statistics.median(seconds) / megapixels for label, seconds in times.items()}


def scene_by_scene(
    cases: list[Case], scores: dict[tuple[str, str, int], list[float]], comparisons: list[tuple[str, str]]
) -> list[str]:
    """For each (theirs, ours) pair of methods, a table per render folder at its lowest spp: each
    scene's PSNR under both and their difference, largest first, so that a mean's gap (to OIDN, or a
    model file's from the bundled one) can be traced to the scenes behind it."""
    scored = {label for label, _, _ in scores}
    comparisons = [(theirs, ours) for theirs, ours in comparisons if {theirs, ours} <= scored]
    folders = sorted({c.group for c in cases if c.group != "cbox"})
    if not comparisons or not folders:
        return []
    lines = ["", "## Scene by scene"]
    for theirs, ours in comparisons:
        lines += ["", f"{theirs} and {ours}, PSNR (dB) as in the first table, per scene."]
        for folder in folders:
            spp = min(c.spp for c in cases if c.group == folder)
            group = [c for c in cases if (c.group, c.spp) == (folder, spp)]  # in the order the scores were taken
            rows = zip(group, scores[(theirs, folder, spp)], scores[(ours, folder, spp)], strict=True)
            lines += ["", f"{folder}, {spp} spp:", "", f"| scene | objects | {theirs} | {ours} | behind by |"]
            lines.append("|---|---|---|---|---|")
            for case, their, our in sorted(rows, key=lambda row: row[2] - row[1]):
                lines.append(f"| {case.name} | {case.materials} | {their:.2f} | {our:.2f} | {their - our:+.2f} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cbox", type=Path, default=CBOX)
    parser.add_argument("--renders", type=Path, nargs="*", default=[], help="tools/render_pairs.py folders of test scenes")
    parser.add_argument("--finetuned", type=Path, help="a model finetuned on the test scenes' family")
    parser.add_argument("--models", type=Path, nargs="*", default=[], help="more model files to score, each a row")
    parser.add_argument(
        "--no-baselines",
        action="store_true",
        help="score only the --models / --finetuned files: a quick look at a training run's exports",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    cases = cbox_cases(args.cbox) + [case for folder in args.renders for case in render_cases(folder)]
    files = {f"finetuned ({args.finetuned.stem})": args.finetuned} if args.finetuned else {}
    files |= {str(path): path for path in args.models}
    methods = compared_methods(files, baselines=not args.no_baselines)

    groups = sorted({(c.group, c.spp) for c in cases})
    scores: dict[tuple[str, str, int], list[float]] = {}
    estimates: dict[tuple[str, str, int], list[float]] = {}  # what a finetune's validation would see
    highlights: dict[tuple[str, str, int], list[float]] = {}
    for case in cases:
        first, second = (image_tensor(x) for x in (case.noisy, case.second))
        outputs = {"noisy input": case.noisy} | {label: denoise(case) for label, denoise in methods.items()}
        reference = image_tensor(case.reference)
        for label, output in outputs.items():
            out = image_tensor(output)
            scores.setdefault((label, case.group, case.spp), []).append(psnr_tone_mapped(out, reference))
            estimates.setdefault((label, case.group, case.spp), []).append(estimated_psnr_tone_mapped(out, first, second))
            error = highlight_energy_error(np.asarray(output, dtype=np.float32), case.reference)
            highlights.setdefault((label, case.group, case.spp), []).append(error)
        print(f"{case.name} {case.spp} spp done", flush=True)

    timing_case = next(c for c in cases if c.name == "cbox" and c.spp == 4)
    speed = seconds_per_megapixel(methods, timing_case)
    counts = {g: sum(1 for c in cases if (c.group, c.spp) == g) for g in groups}
    header = "| method | " + " | ".join(f"{g} {spp} spp ({counts[(g, spp)]})" for g, spp in groups) + " | s / MP |"
    lines = [
        "# Monte Carlo denoising beside Intel Open Image Denoise",
        "",
        f"Command: {command_line(__file__)}",
        "",
        "PSNR (dB) after the tone map T(v) = (v / (1 + v))^(1/2.2) against the high-spp reference, RGB, mean over",
        "scenes (count in brackets). s / MP: seconds per megapixel on the 4 spp Cornell box, median of 3 after a",
        "warm-up call, the methods taking turns.",
        f"CPU: {machine()}.",
        "",
        *provenance(args.renders, [*([args.finetuned] if args.finetuned else []), *args.models]),
    ]
    labels = ["noisy input", *methods]

    def table(cell: Callable[[str, str, int], str], with_speed: bool = False) -> list[str]:
        """A table's rows: one per method, one cell per (scene group, spp), then the speed if asked."""
        rows = [header if with_speed else header.removesuffix(" s / MP |"), "|---" * (len(groups) + 1 + with_speed) + "|"]
        for label in labels:
            cells = [cell(label, g, spp) for g, spp in groups]
            cells += [f"{speed[label]:.2f}" if label in speed else ""] if with_speed else []
            rows.append(f"| {label} | " + " | ".join(cells) + " |")
        return rows

    def highlight_cell(label: str, group: str, spp: int) -> str:
        errors = highlights[(label, group, spp)]
        return f"{100 * statistics.mean(map(abs, errors)):.1f} / {100 * statistics.mean(errors):+.1f}"

    lines += table(lambda label, g, spp: f"{statistics.mean(scores[(label, g, spp)]):.2f}", with_speed=True)
    lines += [
        "",
        "## Highlights and emitters",
        "",
        "Relative error of the linear energy (RGB sum) in the brightest 1% of each reference's pixels",
        "(`highlight_energy_error`): mean of its absolute value over scenes / mean of its signed value, in percent;",
        "a negative signed mean is highlights returned dimmer.",
        "",
        *table(highlight_cell),
        "",
        "## What a finetune's validation sees",
        "",
        "`restore finetune` has no reference: it scores held-out pairs by the tone-mapped PSNR estimated from",
        "the second render B (restore.hdr.estimated_psnr_tone_mapped: linear errors weighted by T's squared slope,",
        "B's variance taken off as MSE(A, B) / 2, averaged over 8 x 8 tiles with the extreme 10% at each end dropped,",
        "and read as no less than its own standard error over those tiles).",
        "The same estimate on the scenes above (compare with the table above):",
        "",
        *table(lambda label, g, spp: f"{statistics.mean(estimates[(label, g, spp)]):.2f}"),
    ]
    comparisons = [("OIDN (colour + albedo + normal)", "n2n-mc-aux")] + [("n2n-mc-aux", label) for label in files]
    lines += scene_by_scene(cases, scores, comparisons)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
