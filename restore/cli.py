"""The `restore` command line: a thin Typer layer over the library.

Every failure is one line on stderr and a non-zero exit (1: a file or model could not be
processed, 2: wrong usage); set RESTORE_DEBUG=1 to see tracebacks.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import shlex
import sys
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from restore import __version__
from restore.api import finetune_base, load, network_scale_for
from restore.device import TRAINING_PRECISIONS
from restore.engines.batch import (
    FileResult,
    PlanError,
    check_targets,
    expand_inputs,
    manifest_writer,
    parse_shard,
    plan_outputs,
    run_job,
    take_shard,
)
from restore.engines.cluster import run_on_ray
from restore.evaluation import evaluate_folder
from restore.io.images import MAX_PIXELS, ImageError
from restore.modelfile import ModelFileError, read_info
from restore.pipeline import DenoiserFor, ModelChoice, RunOptions, UpscalerFor
from restore.training.distributed import leader_process
from restore.training.loop import LOSSES, TrainConfig
from restore.training.loop import train as run_training
from restore.training.sources import parse_zoom
from restore.zoo import bundled_models

try:  # recent typer vendors click (its exceptions are what the parser raises); older typer uses click itself
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover - depends on the installed typer
    from click import exceptions as click_errors  # type: ignore[no-redef]

app = typer.Typer(
    help="Restore degraded images: denoise, upscale, and train or finetune the networks that do it.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
err = Console(stderr=True, highlight=False, markup=False, soft_wrap=True)  # file names may hold [brackets]
# Tables in a pipe or a log get a wide page instead of the 80 columns rich assumes there.
out = Console(highlight=False, markup=False, soft_wrap=True, width=None if sys.stdout.isatty() else 200)


def _show_version(value: bool) -> None:
    if value:
        out.print(f"restore {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_show_version, is_eager=True, help="Print the version.")] = False,
) -> None:
    """Restore degraded images: denoise, upscale, and train or finetune the networks that do it."""


class UsageError(Exception):
    """Wrong arguments: exit code 2."""


class Precision(str, Enum):
    auto = "auto"
    fp32 = "fp32"
    fp16 = "fp16"
    bf16 = "bf16"


class BitDepth(str, Enum):
    u8 = "u8"
    u16 = "u16"
    f16 = "f16"
    f32 = "f32"


def _parse_amount(text: str, option: str, units: dict[str, int], example: str) -> int:
    """A positive whole amount with an optional unit suffix ('2G', '1.5M', '4096'), else a usage error."""
    t = text.strip().upper()
    try:
        amount = int(float(t[:-1]) * units[t[-1]]) if t and t[-1] in units else int(t)
    except (ValueError, OverflowError):
        raise UsageError(f"{option} '{text}': expected an amount like {example}") from None
    if amount <= 0:
        raise UsageError(f"{option} '{text}': must be positive")
    return amount


def _parse_memory(text: str | None) -> int | None:
    """'2G', '512M', '1.5GB' or bytes -> bytes (binary units)."""
    if text is None:
        return None
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    return _parse_amount(text.strip().upper().removesuffix("B").removesuffix("I"), "--max-memory", units, "2G or 512M")


def _parse_pixels(text: str | None) -> int:
    """'400M' -> 400,000,000 pixels (K, M, G are powers of 1000); None -> the default limit."""
    if text is None:
        return MAX_PIXELS
    return _parse_amount(text, "--max-pixels", {"K": 10**3, "M": 10**6, "G": 10**9}, "400M or 250000000")


def _process(
    inputs: list[str],
    output: str | None,
    model_for: ModelChoice,
    tag: str,
    options: RunOptions,
    folder_run: FolderRun,
) -> None:
    """Plan every job and check every output first, then restore file after file.

    `model_for` gives the model for an image read (and whether its albedo / normal buffers exist).
    """
    if folder_run.engine not in ("local", "ray"):
        raise UsageError("--engine is local or ray")
    if folder_run.workers < 0 or folder_run.gpus_per_worker < 0:
        raise UsageError("--workers and --gpus-per-worker must not be negative")
    if folder_run.skip_existing and options.overwrite:
        raise UsageError("--skip-existing keeps existing outputs and --overwrite replaces them: give one")
    index, count = parse_shard(folder_run.shard)
    found = expand_inputs(inputs, folder_run.recursive)
    planned = take_shard(plan_outputs(found.files, output, tag), index, count)
    jobs, skipped = check_targets(planned, options.overwrite, folder_run.skip_existing)
    quiet = folder_run.quiet
    if found.passed_over and not quiet:
        names = ", ".join(p.name for p in found.passed_over[:3]) + (", ..." if len(found.passed_over) > 3 else "")
        err.print(
            f"passing over {len(found.passed_over)} file(s) named like outputs or buffers ({names}); name them to restore them"
        )
    failures = 0
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    # Bars only on a terminal: in a log they would print nothing useful.
    with (
        manifest_writer(folder_run.manifest) as record,
        Progress(*columns, console=err, disable=quiet or not err.is_terminal, transient=True) as progress,
    ):
        for job in skipped:
            record(FileResult(job, "skipped"))
        if skipped and not quiet:
            progress.console.print(f"skipping {len(skipped)} of {len(planned)} whose output exists")
        files_bar = progress.add_task("files", total=len(jobs))
        tiles_bar = progress.add_task("tiles", total=None)

        def on_tile(done: int, total: int) -> None:
            progress.update(tiles_bar, completed=done, total=total)

        def local_results() -> Iterator[FileResult]:
            for job in jobs:
                progress.update(tiles_bar, completed=0, total=None, description=f"{job.source.name}")
                yield run_job(job, model_for, options, on_tile)

        if folder_run.engine == "ray":
            results = run_on_ray(jobs, model_for, options, folder_run.workers, folder_run.gpus_per_worker)
        else:
            results = local_results()
        for result in results:
            record(result)
            progress.advance(files_bar)
            if result.status == "failed":
                failures += 1
                print_error(result.error)
            elif not quiet:
                w, h = result.size
                level = f", noise {result.noise_level:.1f}" if result.noise_level is not None else ""
                prefilter = f", buffers cleaned by {result.aux_prefilter}" if result.aux_prefilter else ""
                progress.console.print(
                    f"{result.job.source} -> {result.job.target}  "
                    f"({w}x{h}, {result.model}{prefilter}{level}, {result.seconds:.1f} s)"
                )
                for note in result.notes:
                    progress.console.print(f"warning: '{result.job.source}': {note}")
    if failures:
        if len(jobs) > 1:
            print(f"{len(jobs) - failures} of {len(jobs)} written; {failures} failed", file=sys.stderr, flush=True)
        raise typer.Exit(1)


@dataclass(frozen=True)
class FolderRun:
    """The options of a folder run that decide which files are done, not how each is restored."""

    recursive: bool = False
    quiet: bool = False
    skip_existing: bool = False
    shard: str | None = None
    manifest: str | None = None
    engine: str = "local"  # or "ray": restore.engines.cluster
    workers: int = 0  # Ray workers (0: one per CPU or per gpus_per_worker GPUs)
    gpus_per_worker: float = 0.0


InputsArg = Annotated[list[str], typer.Argument(help="Image files, folders or glob patterns.", show_default=False)]
OutputOpt = Annotated[str | None, typer.Option("-o", "--output", help="Output file (one input) or folder.")]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto, cpu, cuda or mps.")]
PrecisionOpt = Annotated[Precision, typer.Option("--precision", help="auto picks the fastest measured on this device.")]
TileOpt = Annotated[int | None, typer.Option("--tile", help="Tile core size in input pixels (default: from --max-memory).")]
MemoryOpt = Annotated[str | None, typer.Option("--max-memory", help="Memory budget for one tile, e.g. 2G.")]
BitDepthOpt = Annotated[BitDepth | None, typer.Option("--bit-depth", help="Output sample type (default: the input's).")]
RecursiveOpt = Annotated[bool, typer.Option("--recursive", "-r", help="Descend into sub-folders, keeping their structure.")]
MIN_TILE = 16
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace existing output files.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Print only errors.")]
SkipExistingOpt = Annotated[
    bool, typer.Option("--skip-existing", help="Keep outputs that exist (a rerun of a killed run does only the rest).")
]
ShardOpt = Annotated[
    str | None, typer.Option("--shard", help="Do shard I/N of the inputs [default: RANK/WORLD_SIZE when set, else all].")
]
EngineOpt = Annotated[
    str, typer.Option("--engine", help="local, or ray: spread the files over a Ray cluster (pip install 'restore-images[ray]').")
]
WorkersOpt = Annotated[int, typer.Option("--workers", help="Ray workers, each holding its models [default: one per CPU].")]
GpusOpt = Annotated[float, typer.Option("--gpus-per-worker", help="GPUs for each Ray worker (e.g. 1 or 0.5).")]
ManifestOpt = Annotated[
    str | None, typer.Option("--manifest", help="Append one JSON line per input (status, model, seconds, error) to FILE.")
]
RepairOpt = Annotated[bool, typer.Option("--repair-nonfinite", help="Replace NaN / Inf input values by their neighbours' mean.")]
EnsembleOpt = Annotated[bool, typer.Option("--ensemble", help="Average the 8 flips and rotations (8x slower, a little better).")]


MaxPixelsOpt = Annotated[
    str | None, typer.Option("--max-pixels", help="Refuse images claiming more pixels, e.g. 400M [default: 179M].")
]


# The options every restoring command shares, written once: how each image is run (RunOptions)
# and which files a folder run does (FolderRun). (name, typer option, default)
RUN_OPTIONS = (
    ("device", DeviceOpt, "auto"),
    ("precision", PrecisionOpt, Precision.auto),
    ("tile", TileOpt, None),
    ("max_memory", MemoryOpt, None),
    ("max_pixels", MaxPixelsOpt, None),
    ("bit_depth", BitDepthOpt, None),
    ("overwrite", OverwriteOpt, False),
    ("ensemble", EnsembleOpt, False),
    ("repair_nonfinite", RepairOpt, False),
)
FOLDER_RUN_OPTIONS = (
    ("recursive", RecursiveOpt, False),
    ("skip_existing", SkipExistingOpt, False),
    ("shard", ShardOpt, None),
    ("manifest", ManifestOpt, None),
    ("engine", EngineOpt, "local"),
    ("workers", WorkersOpt, 0),
    ("gpus_per_worker", GpusOpt, 0.0),
    ("quiet", QuietOpt, False),
)


def with_run_options(command: Callable[..., None]) -> Callable[..., None]:
    """Give `command` the shared options (RUN_OPTIONS, FOLDER_RUN_OPTIONS) as typer options, handed
    to it parsed: `options` (a RunOptions) and `folder_run` (a FolderRun)."""

    def parameters(group: tuple[tuple[str, Any, Any], ...]) -> list[inspect.Parameter]:
        return [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=d, annotation=o) for n, o, d in group]

    run, folder = parameters(RUN_OPTIONS), parameters(FOLDER_RUN_OPTIONS)
    own = [p for p in inspect.signature(command, eval_str=True).parameters.values() if p.name not in ("options", "folder_run")]

    @functools.wraps(command)
    def with_options(**values: Any) -> None:
        options = _options(**{p.name: values.pop(p.name) for p in run})
        folder_run = FolderRun(**{p.name: values.pop(p.name) for p in folder})
        command(**values, options=options, folder_run=folder_run)

    with_options.__signature__ = inspect.Signature([*own, *run, *folder])  # type: ignore[attr-defined]
    return with_options


def _options(
    device: str,
    precision: Precision,
    tile: int | None,
    max_memory: str | None,
    max_pixels: str | None,
    bit_depth: BitDepth | None,
    overwrite: bool,
    ensemble: bool,
    repair_nonfinite: bool,
) -> RunOptions:
    if tile is not None and tile < MIN_TILE:
        # A tile's work is its core plus the network's margin on every side (160 px for the
        # U-Net): a 1-pixel core ran for 20 minutes on a small photo.
        raise UsageError(f"--tile must be at least {MIN_TILE} pixels (smaller tiles are almost all overlap)")
    return RunOptions(
        device=device,
        precision=precision.value,
        tile=tile,
        max_memory=_parse_memory(max_memory),
        ensemble=ensemble,
        bit_depth=bit_depth.value if bit_depth else None,
        overwrite=overwrite,
        repair_nonfinite=repair_nonfinite,
        max_pixels=_parse_pixels(max_pixels),
    )


@app.command()
@with_run_options
def denoise(
    inputs: InputsArg,
    output: OutputOpt = None,
    model: Annotated[
        str | None,
        typer.Option("--model", "-m", help="Bundled model name or .safetensors path [default: by image, see above]."),
    ] = None,
    strength: Annotated[
        float,
        typer.Option("--strength", help="Level-conditioned models: below 1 keeps grain, above removes more, 0 changes nothing."),
    ] = 1.0,
    albedo: Annotated[
        Path | None, typer.Option("--albedo", help="Albedo buffer of a render (default: IN.albedo.EXT, else the EXR's layer).")
    ] = None,
    normal: Annotated[
        Path | None, typer.Option("--normal", help="Normal buffer of a render (default: IN.normal.EXT, else the EXR's layer).")
    ] = None,
    clean_buffers: Annotated[
        bool,
        typer.Option(
            "--clean-buffers",
            help="The buffers are noise-free (e.g. rendered apart at high spp): skip the model's buffer prefilter.",
        ),
    ] = False,
    keep_converged: Annotated[
        bool,
        typer.Option(
            "--keep-converged/--no-keep-converged",
            help="Renders: hand converged pixels (emitters, skies in view) through as they are.",
        ),
    ] = True,
    *,
    options: RunOptions,
    folder_run: FolderRun,
) -> None:
    """Denoise images. Writes IN.denoised.EXT unless -o is given.

    Default model: n2n-mc for HDR renders (EXR, PFM, float TIFF), n2n-mc-aux when NAME.albedo.EXT and
    NAME.normal.EXT (or --albedo / --normal, or a multilayer EXR's albedo and normal layers) come with them,
    n2n-gray-level for gray images, else n2n-photo-level.
    """
    buffers = {name: path for name, path in (("albedo", albedo), ("normal", normal)) if path is not None}
    options = _with(options, strength=strength, aux_files=buffers, prefilter_aux=not clean_buffers, keep_converged=keep_converged)
    if options.aux_files and len(expand_inputs(inputs, folder_run.recursive).files) > 1:
        raise UsageError("--albedo / --normal go with one image; for several, put NAME.albedo.EXT beside each")

    _process(inputs, output, DenoiserFor(model), ".denoised", options, folder_run)


@app.command()
@with_run_options
def upscale(
    inputs: InputsArg,
    output: OutputOpt = None,
    x2: Annotated[bool, typer.Option("--x2", help="Upscale x2 (the default).")] = False,
    x3: Annotated[bool, typer.Option("--x3", help="Upscale x3.")] = False,
    x4: Annotated[bool, typer.Option("--x4", help="Upscale x4.")] = False,
    scale: Annotated[int | None, typer.Option("--scale", help="Upscale factor (2, 3 or 4).")] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Bundled model name or .safetensors path.")] = None,
    outscale: Annotated[
        float | None,
        typer.Option("--outscale", help="Resize the result to this factor of the input (e.g. 1.5); picks the network scale."),
    ] = None,
    *,
    options: RunOptions,
    folder_run: FolderRun,
) -> None:
    """Upscale images x2, x3 or x4 with EDSR. Writes IN.xN.EXT unless -o is given."""
    chosen = [s for s, flag in ((2, x2), (3, x3), (4, x4)) if flag] + ([scale] if scale is not None else [])
    if len(set(chosen)) > 1:
        raise UsageError("give one scale: --x2, --x3, --x4 or --scale N")
    if scale is not None and scale < 2:
        raise UsageError(f"--scale {scale}: an upscaler's factor is 2 or more")
    options = _with(options, outscale=outscale)
    factor = chosen[0] if chosen else network_scale_for(outscale)
    tag = f".x{outscale:g}" if outscale is not None else f".x{factor}"

    _process(inputs, output, UpscalerFor(factor, model), tag, options, folder_run)


def _with(options: RunOptions, **changes: Any) -> RunOptions:
    """`options` with `changes`; a value the options refuse is a usage error, named as its flag."""
    try:
        return replace(options, **changes)
    except ValueError as error:
        raise UsageError(f"--{error}") from None


@app.command()
def models() -> None:
    """List the bundled models."""
    table = Table("name", "task", "noise", "trained", "summary", box=None, pad_edge=False)
    for name, entry in sorted(bundled_models().items()):
        info = read_info(entry.file)
        steps = info.training.get("total_steps", info.training.get("steps"))
        table.add_row(name, entry.task, info.noise, f"{steps} steps" if steps else "", entry.summary)
    out.print(table)


@app.command()
def info(model: Annotated[str, typer.Argument(help="Model file or bundled model name.")]) -> None:
    """Print a model file's metadata (a bundled name is looked up and sha256-checked)."""
    loaded = load(model)
    parameters = sum(p.numel() for p in loaded.network.parameters())
    out.print_json(json.dumps({"file": loaded.source, "parameters": parameters, **asdict(loaded.info)}))


def _train_config(**values: object) -> TrainConfig:
    """The run's settings; a value the library rejects (a step count below 1, say) is wrong usage."""
    try:
        return TrainConfig(**{k: v for k, v in values.items() if v is not None})
    except ValueError as err:
        raise UsageError(str(err)) from None


StepsOpt = Annotated[int, typer.Option("--steps", help="Training steps (batches).")]
MinutesOpt = Annotated[float, typer.Option("--minutes", help="Also stop after this many minutes (0: no limit).")]
BatchOpt = Annotated[int, typer.Option("--batch", help="Crops per batch.")]
PatchOpt = Annotated[int, typer.Option("--patch", help="Input crop side in pixels.")]
ZoomOpt = Annotated[
    str,
    typer.Option(
        "--zoom",
        help="Scale each clean crop by a factor drawn from 1 to Z, or from A to B (A-B), before the noise "
        "(above 1 magnify, below 1 shrink).",
    ),
]
LrOpt = Annotated[float, typer.Option("--lr", help="Adam learning rate.")]
LrWarmupOpt = Annotated[int, typer.Option("--lr-warmup", help="Ramp the learning rate up over the first N steps (0: none).")]
RunDirOpt = Annotated[str | None, typer.Option("--run-dir", help="Checkpoint folder (default: OUT with .run).")]
KeepOpt = Annotated[
    str, typer.Option("--keep", help="Export the best-validated weights (the starting ones included) or the last.")
]
OneWayOpt = Annotated[
    bool,
    typer.Option(
        "--one-way",
        help="A is always the input and B the target: B shots with more samples (renders) are less noisy targets.",
    ),
]
EmaOpt = Annotated[
    float,
    typer.Option("--ema", help="Validate and export a moving average of the weights, decay per step e.g. 0.999 (0: off)."),
]
TrainPrecisionOpt = Annotated[
    str, typer.Option("--precision", help="auto (bf16 where a timed step shows it clearly faster), fp32 or bf16.")
]


@app.command()
def train(
    data: Annotated[
        str | None, typer.Argument(help="Folder of clean training images (or of the MNIST IDX files).", show_default=False)
    ] = None,
    output: Annotated[str, typer.Option("-o", "--output", help="Model file to write (.safetensors).")] = "",
    pairs: Annotated[
        tuple[str, str] | None,
        typer.Option("--pairs", help="Train on noisy pairs instead: folders A and B (e.g. renders), no clean data."),
    ] = None,
    task: Annotated[str, typer.Option("--task", help="denoise or upscale.")] = "denoise",
    arch: Annotated[
        str | None,
        typer.Option("--arch", help="Variant from restore.archs.VARIANTS [default: n2n_unet, or the --init model's]."),
    ] = None,
    init: Annotated[
        str | None, typer.Option("--init", help="Start from this model (x3 from x2); with --arch, copy its matching weights.")
    ] = None,
    init_also: Annotated[
        list[str] | None,
        typer.Option(
            "--init-also",
            help="With --arch and --init: a further model whose matching weights fill what --init's left fresh (repeatable).",
        ),
    ] = None,
    noise: Annotated[
        str,
        typer.Option(
            "--noise",
            help=(
                "Noise or corruption: gaussian:0-50, gaussian8:0-50 (as an 8-bit file), poisson:30, poisson-gaussian:30,5,"
                " erase:0.5, blur:2, block:10, mix:A|B."
            ),
        ),
    ] = "gaussian:0-50",
    clean_targets: Annotated[bool, typer.Option("--clean-targets", help="Train on clean targets (the control).")] = False,
    one_way: OneWayOpt = False,
    scale: Annotated[int, typer.Option("--scale", help="Upscale factor for --task upscale.")] = 2,
    loss: Annotated[
        str, typer.Option("--loss", help="l1, l2, l0 (annealed from L2 to L0), or for renders hdr or tonemapped.")
    ] = "l2",
    demodulate: Annotated[
        bool,
        typer.Option(
            "--demodulate",
            help="Renders: the network sees radiance / albedo and its output is multiplied back (--arch n2n_unet_aux).",
        ),
    ] = False,
    turn_normals: Annotated[
        bool,
        typer.Option(
            "--turn-normals",
            help="Renders: turn each crop's normal buffer by a random rotation, so that the network takes normals in "
            "any frame (world or camera space).",
        ),
    ] = False,
    log_radiance: Annotated[
        bool,
        typer.Option(
            "--log-radiance",
            help="Renders: the network sees and returns log radiance, so that emitters and highlights keep their energy.",
        ),
    ] = False,
    prefilter_buffers: Annotated[
        bool,
        typer.Option(
            "--prefilter-buffers",
            help="Renders, with --init naming a buffer prefilter: clean the pairs' albedo and normal with it first, "
            "as restore denoise does (restore finetune always does).",
        ),
    ] = False,
    steps: StepsOpt = 1000,
    minutes: MinutesOpt = 0.0,
    batch: BatchOpt = 16,
    patch: PatchOpt = 64,
    zoom: ZoomOpt = "1",
    zoom_aliased: Annotated[
        float,
        typer.Option(
            "--zoom-aliased",
            help="The share (0-1) of shrunk crops resampled without antialiasing, so that the network keeps aliased detail.",
        ),
    ] = 0.0,
    level_jitter: Annotated[
        float,
        typer.Option(
            "--level-jitter",
            help="With --denoiser-only: tell the denoiser each crop's level times a factor from e^-J to e^J, "
            "as an estimated level is off.",
        ),
    ] = 0.0,
    level_overstate: Annotated[
        float,
        typer.Option(
            "--level-overstate",
            help="With --denoiser-only: tell the denoiser each crop's level plus an amount drawn from 0 to this "
            "(sigma, 0-255), so that a level means 'at most'.",
        ),
    ] = 0.0,
    source_scale: Annotated[
        list[float] | None,
        typer.Option(
            "--source-scale",
            help="Shrink each training photo by this factor (0-1) before cropping; 0.5 makes a 4:2:0 JPEG's colour "
            "as sharp as its brightness. Repeat it to train on every photo at each factor (e.g. 1 and 0.5).",
        ),
    ] = None,
    lossless_targets: Annotated[
        bool,
        typer.Option(
            "--lossless-targets",
            help="Photo noise: Noise2Noise targets saved without JPEG, so that the network does not learn JPEG's smoothing.",
        ),
    ] = False,
    balance_levels: Annotated[
        bool,
        typer.Option(
            "--balance-levels",
            help="Weigh each crop's loss by 1 / its noise level (a render pair's relative to its brightness): "
            "nearly clean crops count as much as noisy ones.",
        ),
    ] = False,
    estimator_only: Annotated[
        bool,
        typer.Option(
            "--estimator-only",
            help="Train only a level model's noise-level estimator (--init a level model); its denoiser is kept.",
        ),
    ] = False,
    estimator_by_denoising: Annotated[
        bool,
        typer.Option(
            "--estimator-by-denoising",
            help="With --estimator-only: learn the level the kept denoiser restores best at (its loss), not the drawn level.",
        ),
    ] = False,
    clean_read_cap: Annotated[
        float,
        typer.Option(
            "--clean-read-cap",
            help="With --estimator-by-denoising: crops drawn below this sigma (0-255) learn only not to be read above it.",
        ),
    ] = 0.0,
    denoiser_only: Annotated[
        bool,
        typer.Option(
            "--denoiser-only",
            help="Train only a level model's denoiser (--init a level model); its noise-level estimator is kept.",
        ),
    ] = False,
    lr: LrOpt = 3e-4,
    lr_warmup: LrWarmupOpt = 0,
    lr_halve_every: Annotated[int, typer.Option("--lr-halve-every", help="Halve the learning rate every N steps.")] = 0,
    val_count: Annotated[int, typer.Option("--val-count", help="Images held out for validation.")] = 8,
    val_every: Annotated[int, typer.Option("--val-every", help="Validate every N steps.")] = 100,
    val_pairs: Annotated[
        str,
        typer.Option(
            "--val-pairs",
            help="Validate on every other pair of a folder of NAME_noisy / NAME_clean real pairs (full size) instead.",
        ),
    ] = "",
    keep: KeepOpt = "last",
    ema: EmaOpt = 0.0,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    device: DeviceOpt = "auto",
    precision: TrainPrecisionOpt = "auto",
    run_dir: RunDirOpt = None,
    name: Annotated[str | None, typer.Option("--name", help="Model name stored in the file.")] = None,
    description: Annotated[str, typer.Option("--description")] = "",
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Train a network from clean images and a noise model (noisy targets by default), an upscaler, or from noisy pairs."""
    if (data is None) == (pairs is None):
        raise UsageError("give a DATA folder of clean images, or --pairs A B")
    if not output:
        raise UsageError("missing -o / --output: the model file to write")
    if task not in ("denoise", "upscale"):
        raise UsageError("--task is denoise or upscale")
    _check_training_options(loss, precision, keep)
    try:
        zoom_from, zoom_to = parse_zoom(zoom)
    except ValueError as err:
        raise UsageError(str(err)) from None
    config = _train_config(
        out=output, task=task, data=data or "", pairs=list(pairs or []), one_way=one_way, variant=arch or "",
        init=init or "", init_also=list(init_also or []), noise=noise, clean_targets=clean_targets,
        lossless_targets=lossless_targets,
        scale=scale, patch=patch, zoom=zoom_to, zoom_from=zoom_from, zoom_aliased=zoom_aliased,
        source_scales=tuple(source_scale or [1.0]), level_jitter=level_jitter, level_overstate=level_overstate,
        batch=batch, steps=steps,
        minutes=minutes, lr=lr, lr_warmup=lr_warmup, lr_halve_every=lr_halve_every, loss=loss, demodulate=demodulate,
        turn_normals=turn_normals, prefilter_buffers=prefilter_buffers,
        log_radiance=log_radiance, balance_levels=balance_levels, estimator_only=estimator_only,
        estimator_by_denoising=estimator_by_denoising, clean_read_cap=clean_read_cap, denoiser_only=denoiser_only,
        val_count=val_count, val_every=val_every, val_pairs=val_pairs, checkpoint_every=val_every,
        keep_best=keep == "best", ema=ema, seed=seed, device=device, precision=precision, run_dir=run_dir, name=name,
        description=description, overwrite=overwrite,
    )  # fmt: skip
    _run_training(config, quiet)


@app.command()
def finetune(
    folder_a: Annotated[str, typer.Argument(help="Folder of noisy shots.")],
    folder_b: Annotated[str, typer.Argument(help="Folder of second, independent noisy shots (same file names).")],
    output: Annotated[str, typer.Option("-o", "--output", help="Model file to write (.safetensors).")],
    base: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="Model to start from [default: with --loss hdr or tonemapped n2n-mc-aux where every render has its albedo "
            "and normal (beside it or as layers of its EXR), else n2n-mc; n2n-photo-level for other losses].",
        ),
    ] = None,
    loss: Annotated[
        str, typer.Option("--loss", help="l2, l1, l0 (annealed from L2 to L0), or for renders hdr or tonemapped.")
    ] = "l2",
    steps: StepsOpt = 500,
    minutes: MinutesOpt = 0.0,
    batch: BatchOpt = 8,
    patch: PatchOpt = 64,
    lr: LrOpt = 1e-4,
    lr_warmup: LrWarmupOpt = 200,
    val_count: Annotated[int, typer.Option("--val-count", help="Pairs held out for validation.")] = 2,
    val_every: Annotated[int, typer.Option("--val-every", help="Validate every N steps.")] = 50,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    device: DeviceOpt = "auto",
    precision: TrainPrecisionOpt = "auto",
    run_dir: RunDirOpt = None,
    keep: KeepOpt = "best",
    ema: EmaOpt = 0.0,
    one_way: OneWayOpt = False,
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Adapt a denoiser to your camera or renderer from pairs of noisy shots (Noise2Noise, no clean images)."""
    _check_training_options(loss, precision, keep)
    if base is None:
        base = finetune_base(loss, (folder_a, folder_b))
    base_path = str(load(base).source)
    config = _train_config(
        out=output, task="denoise", pairs=[folder_a, folder_b], one_way=one_way, init=base_path, loss=loss, steps=steps,
        minutes=minutes, batch=batch, patch=patch, lr=lr, lr_warmup=lr_warmup, val_count=val_count, val_every=val_every,
        checkpoint_every=val_every, seed=seed, device=device, precision=precision, run_dir=run_dir,
        keep_best=keep == "best", ema=ema, overwrite=overwrite, prefilter_buffers=True,
    )  # fmt: skip
    _run_training(config, quiet)


def _check_training_options(loss: str, precision: str, keep: str) -> None:
    """Usage errors for the options train and finetune share, before any data is read."""
    if keep not in ("best", "last"):
        raise UsageError("--keep is best or last")
    if loss not in LOSSES:
        raise UsageError(f"--loss is one of {', '.join(LOSSES)}")
    if precision not in TRAINING_PRECISIONS:
        raise UsageError(f"--precision is one of {', '.join(TRAINING_PRECISIONS)}")


def _run_training(config: TrainConfig, quiet: bool) -> None:
    if Path(config.out).suffix != ".safetensors":
        raise UsageError("-o must name a .safetensors file")
    config.command = shlex.join(["restore", *sys.argv[1:]])
    trained = run_training(config, console=err, show_progress=not quiet)
    if not leader_process():
        return
    t = trained.training
    summary = f"{t['steps']} steps in {t['wall_seconds']:.0f} s on {t['device']}"
    validation = f"validation PSNR {t['val_psnr']:.2f} dB"
    if "exported_step" in t:
        start = t["val_curve"][0][1]
        validation += f" (the best validation, step {t['exported_step']}; {start:.2f} dB at the start)"
    out.print(f"wrote {config.out}: {summary}, {validation}")


@app.command(name="import")
def import_command(
    community_model: Annotated[str, typer.Argument(help="A community model file: .safetensors, .pth, .pt, .ckpt.")],
    output: Annotated[str, typer.Option("-o", "--output", help="Restore model file to write (.safetensors).")],
    name: Annotated[str, typer.Option("--name", help="Model name stored in the file [default: the file's stem].")] = "",
    overwrite: OverwriteOpt = False,
) -> None:
    """Import ESRGAN, SwinIR, DRUNet, SCUNet and other networks spandrel knows (pip install 'restore-images[spandrel]')."""
    if Path(output).suffix != ".safetensors":
        raise UsageError("-o must name a .safetensors file")
    try:
        from restore.interop.importer import import_model
    except ImportError:
        raise UsageError("restore import needs spandrel: pip install 'restore-images[spandrel]'") from None
    info = import_model(community_model, output, name=name, overwrite=overwrite)
    c = info.config
    tiling = f"tiles with a {c['receptive_margin']} px margin" if c["tileable"] else "runs whole (no tiling)"
    out.print(f"wrote {output}: {c['arch']} x{c['scale']}, {c['in_channels']} -> {c['out_channels']} channels, {tiling}")


@app.command(name="export")
def export_model(
    model: Annotated[str, typer.Argument(help="Model name or file.")],
    onnx_file: Annotated[str, typer.Option("--onnx", help="ONNX file to write.")],
    scale: Annotated[int | None, typer.Option("--scale", help="The scale of a multi-scale upscaler to export.")] = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """Export a model as ONNX: dynamic batch, height and width; pad to the grid it prints, outside."""
    try:
        from restore.interop.export import export_onnx
    except ImportError:
        raise UsageError("restore export needs ONNX: pip install 'restore-images[onnx]'") from None
    metadata = export_onnx(model, onnx_file, scale=scale, overwrite=overwrite)
    multiple = metadata["restore.size_multiple"]
    grid = f"; pad height and width to multiples of {multiple} (mirror the bottom and right edges)" if multiple != "1" else ""
    out.print(f"wrote {onnx_file}: {metadata['restore.name']}, x{metadata['restore.scale']}{grid}")


@app.command(name="eval")
def evaluate(
    model: Annotated[str, typer.Argument(help="Model name or file.")],
    folder: Annotated[str, typer.Argument(help="Folder of clean test images (or of real pairs, with --pairs).")],
    noise: Annotated[str | None, typer.Option("--noise", help="Evaluate denoising under this noise, e.g. gaussian:25.")] = None,
    scale: Annotated[int | None, typer.Option("--scale", help="Evaluate x2/x3/x4 super-resolution.")] = None,
    pairs: Annotated[
        bool, typer.Option("--pairs", help="Evaluate denoising on real pairs NAME_noisy.EXT / NAME_clean.EXT.")
    ] = False,
    limit: Annotated[int, typer.Option("--limit", help="Use at most N images (0: all).")] = 0,
    ensemble: EnsembleOpt = False,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = Precision.fp32,
    save: Annotated[
        str | None, typer.Option("--save", help="Folder for side-by-side crops of the least- and most-improved images.")
    ] = None,
    quiet: QuietOpt = False,
) -> None:
    """PSNR / SSIM of a model on a folder, next to the baseline (the noisy input, or bicubic)."""
    if sum((noise is not None, scale is not None, pairs)) != 1:
        raise UsageError("give exactly one of --noise SPEC, --pairs or --scale N")
    if limit < 0:
        raise UsageError("--limit must be 0 (every image) or a positive number of images")
    report = evaluate_folder(
        model,
        folder,
        noise=noise,
        scale=scale,
        pairs=pairs,
        limit=limit,
        device=device,
        precision=precision.value,
        ensemble=ensemble,
        console=None if quiet else err,
        save=save,
    )
    table = Table("", "PSNR (dB)", "SSIM", box=None, pad_edge=False)
    for row in report.rows:
        table.add_row(row.label, f"{row.psnr:.2f}", f"{row.ssim:.4f}")
    out.print(f"{report.title} ({report.images} images; {report.protocol})")
    out.print(table)
    worst = min(report.gains, key=report.gains.__getitem__)
    improved = sum(gain > 0 for gain in report.gains.values())
    out.print(f"better than the baseline on {improved} of {report.images}; least gain {report.gains[worst]:+.2f} dB ({worst})")


def print_error(message: str) -> None:
    """One plain line on stderr (no markup, no wrapping), whatever the message holds."""
    print(f"error: {' '.join(message.split())}", file=sys.stderr, flush=True)


def main() -> None:
    """Console-script entry point: run the app, turning every error into one line."""
    try:
        # Not standalone: click's own usage errors come here too, to be one line like ours.
        code = app(standalone_mode=False)
    except click_errors.NoArgsIsHelpError as e:
        print(e.format_message())  # `restore` alone: the help, on stdout as before
        sys.exit(2)
    except click_errors.UsageError as e:
        where = e.ctx.command_path if e.ctx is not None else "restore"
        print_error(f"{e.format_message()} (see '{where} --help')")
        sys.exit(2)
    except click_errors.ClickException as e:
        print_error(e.format_message())
        sys.exit(e.exit_code)
    except typer.Abort:  # end of input at a prompt
        err.print("interrupted")
        sys.exit(130)
    except (UsageError, PlanError) as e:
        print_error(str(e))
        sys.exit(2)
    except (ImageError, ModelFileError, ValueError, FileNotFoundError, OSError) as e:
        if os.environ.get("RESTORE_DEBUG"):
            raise
        print_error(str(e))
        sys.exit(1)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except Exception as e:  # noqa: BLE001 - the promise is one line, never a traceback
        if os.environ.get("RESTORE_DEBUG"):
            raise
        print_error(f"{type(e).__name__}: {e} (RESTORE_DEBUG=1 shows the traceback)")
        sys.exit(1)
    if isinstance(code, int) and code:  # typer.Exit(N) returns N outside standalone mode
        sys.exit(code)
