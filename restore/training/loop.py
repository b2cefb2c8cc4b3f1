"""One training loop behind `restore train` and `restore finetune`.

Adam on random augmented crops, L1 / L2 / HDR loss, a fixed validation set scored in PSNR,
checkpoints (safetensors, never pickles) that a killed run resumes from, a rich progress bar,
and export to a model file with its metadata. The same code runs on a CPU or a CUDA GPU.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from collections.abc import Set as AbstractSet
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from safetensors import safe_open
from safetensors.torch import save_file

from restore.api import InferenceOptions, load, run_model
from restore.archs import Restorer, build, create
from restore.archs.unet import LevelUNet, with_level_map
from restore.device import MEMORY_FORMATS, resolve_device, training_memory_format, training_precision
from restore.hdr import (
    HDR_LOSSES,
    estimated_psnr_tone_mapped,
    input_transform_named,
    is_demodulated,
    is_hdr,
    is_log,
    network_input,
    tone_map,
    tone_map_slope,
)
from restore.io.datasets import (
    AUX_BUFFERS,
    image_files,
    is_mnist_folder,
    load_images,
    load_mnist,
    load_render,
    match_pairs,
    real_pairs,
    split_real_pairs,
)
from restore.metrics import noisy_reference_psnr, psnr
from restore.modelfile import ModelInfo, load_model_file, save_model_file
from restore.noise import parse_noise, with_lossless_targets
from restore.resize import center_crop, downscale
from restore.training.distributed import Ranks, joined
from restore.training.sources import (
    DigitSource,
    DownscaleSource,
    MultiScaleSource,
    NoisySource,
    PairSource,
    PooledDigitSource,
    crop_levels,
    relative_crop_levels,
    shrink,
)

CHECKPOINT = "checkpoint.safetensors"


class BatchSource(Protocol):
    def batch(self, size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]: ...


@dataclass
class TrainConfig:
    """Everything a run needs; stored in its checkpoint so that a resume can check it."""

    out: str  # model file to export
    task: str = "denoise"  # "denoise" or "upscale"
    data: str = ""  # folder of clean images, or of the MNIST IDX files
    pairs: list[str] = field(default_factory=list)  # finetune: [folder A, folder B]
    # Pairs whose B shots have more samples (renders): A is always the input and B the target. A
    # noisy target of lower variance keeps the expected loss's minimum where it was (the mean of
    # the shot) but makes each step's gradient less noisy; the swap would feed the network B too.
    one_way: bool = False
    variant: str = ""  # registered architecture variant; default n2n_unet, or with init the file's own network
    init: str = ""  # start from this model file (finetune; x3/x4 from x2; with variant: its matching weights)
    # With variant: further model files whose matching weights fill what `init` left fresh, in
    # order (MDSR's x3 and x4 upsamplers from edsr-x3 and edsr-x4, its shared body from edsr-x2).
    init_also: list[str] = field(default_factory=list)
    noise: str = "gaussian:0-50"  # noise model for `data` (denoise)
    clean_targets: bool = False  # the control: clean targets instead of Noise2Noise's noisy ones
    # Photo noise's Noise2Noise targets saved without JPEG, the inputs compressed as drawn
    # (restore.noise.PhotoNoise.lossless_targets): a JPEG target carries JPEG's smoothing, which
    # the network learns to apply to every photo (the edges of a nearly clean one most of all).
    lossless_targets: bool = False
    scale: int = 2  # upscale factor (upscale)
    patch: int = 64  # input patch side (the LR patch for upscaling)
    # Denoising from clean photos: magnify each crop by a factor drawn log-uniformly from 1 to
    # this before the noise is added (1: crops as they are). A camera's 12-50 MP photo holds far
    # less detail per pixel than the small training photos (the PolyU crops' finest Haar detail
    # is a fifth of CBSD400's), and a network that learned from dense texture keeps real noise
    # it takes for detail. Below 1 the crops are shrunk instead (antialiased): denser texture,
    # and less of CBSD400's own grain and JPEG artefacts, which a Noise2Noise target carries as
    # if they were detail and a network told a low level cannot reproduce. With `zoom_from`, the
    # factors are drawn from zoom_from to zoom instead (a range on both sides of 1: both kinds of crop).
    zoom: float = 1.0
    zoom_from: float = 1.0
    # The share of shrunk crops (zoom factor below 1) resampled without antialiasing, their
    # finest detail folded back as aliasing: the network learns to keep such detail, which it
    # otherwise smooths away (Kodak24 halved by decimation at sigma 2: -4.25 dB on kodim24,
    # against -0.85 at full size: python bench/aliased_detail.py n2n-photo-level).
    zoom_aliased: float = 0.0
    # Resize each clean training photo by this factor once, before any crop or zoom (antialiased).
    # Every CBSD400 photo is a 4:2:0 JPEG, its colour stored at half its brightness's resolution:
    # a network trained on them learns that all fine colour detail is noise and bleaches it from
    # PNGs and camera output that have it (kodim24's tiled roof at sigma 2: Cb error 2.43 against
    # the input's 1.53, and +3.1 dB instead of -0.85 once its colour is subsampled too). At 0.5
    # the colour is as sharp as the brightness. Several factors: every photo at each of them, as
    # many crops from each; (1.0, 0.5) keeps the photos as they are beside the sharp-coloured
    # ones, since at 0.5 alone the denoiser also takes more luma texture for noise (the fur pair of
    # bench/pair_errors.py: -0.37 dB after 19,000 steps at 0.5; from step 21,000, +0.08 after 3,000 at both;
    # models/README.md, n2n-photo-level).
    source_scales: tuple[float, ...] = (1.0,)
    batch: int = 16
    steps: int = 1000
    minutes: float = 0.0  # stop after this wall time as well (0: no limit)
    lr: float = 3e-4
    lr_halve_every: int = 0  # halve the learning rate every N steps (0: constant)
    lr_warmup: int = 0  # ramp the learning rate up linearly over the first N steps
    loss: str = "l2"  # "l1", "l2", "l0" (annealed), or for renders "hdr" or "tonemapped"
    # Weigh each crop's loss by 1 / (its noise level + 2/255) (see `level_weights`): with
    # levels drawn from 0 to 50, a plain mean is decided by the noisiest crops, whose errors are
    # tens of times larger, and the network learns least about the nearly clean photos users have.
    # Render pairs under the HDR losses are weighed by their relative level the same way
    # (`relative_crop_levels`, `RELATIVE_LEVEL_FLOOR`): 1-1024 spp are as wide a range.
    balance_levels: bool = False
    # Train only a level model's estimator (restore.archs.unet.LevelUNet), at the run's own rate,
    # the denoiser not run: the estimator can learn from larger crops, and a denoiser that
    # already denoises well when told the true level stays exactly as it is.
    estimator_only: bool = False
    # With estimator_only: learn from the kept denoiser's loss when told the estimator's reading
    # instead of from the level the noise was drawn at: the level that denoiser restores best at,
    # which is not always the drawn one (a texture that looks like noise is better told a little
    # more). The level loss is left out: its log-scale L1 pulls every crop back to the drawn level
    # with a force that does not shrink near it, and would outweigh the image loss's gentle pull.
    estimator_by_denoising: bool = False
    # With estimator_by_denoising: a crop whose noise was drawn below this level (sigma, 0-255)
    # learns only not to be read above it (LevelUNet.over_read_loss), not from the denoising loss,
    # which alone made the estimator read every such crop high. Learned by denoising alone, the
    # estimators read clean textured photos at 2.3-2.7 where their own level is 0.3: a denoiser told
    # so removes their texture (kodim18 40.1 dB against itself), and on the training mix nothing
    # stops it, as JPEG blocks in a nearly clean input are removed best by reading it higher.
    clean_read_cap: float = 0.0
    # The converse: a level model's denoiser alone, its estimator kept as it is (and its level loss
    # not computed), so that a validation on real pairs, which runs the estimator, moves with the
    # denoiser only; a jointly trained estimator swings it by 0.4 dB from one validation to the next.
    denoiser_only: bool = False
    # With denoiser_only: tell the denoiser each crop's level times a factor drawn log-uniformly
    # from e^-J to e^J, as the estimator's reading is off at inference. A denoiser told only exact
    # levels learns to trust them: told 3 on a sigma 2 photo, it wipes the texture the noise
    # map calls noise (kodim13: +0.99 dB told 2, -0.87 told 3; the estimator reads 2.9-3.7).
    # Measured once (models/README.md, n2n-photo-level): J = 0.5 made that loss larger (-1.33),
    # the denoiser learning to read the level itself rather than to forgive a high one.
    level_jitter: float = 0.0
    # With denoiser_only: tell the denoiser each crop's level plus an amount drawn uniformly from 0
    # to this (sigma, 0-255), so that "told L" comes to mean "at most L" and it keeps what does not
    # look like noise. The estimators read clean textured photos at 2.3-2.7 where their own level
    # is 0.3 (python bench/told_levels.py MODEL --sigma 0), eight times over, beyond any factor.
    level_overstate: float = 0.0
    demodulate: bool = False  # HDR input divided by the albedo buffer (restore.hdr), for renders with buffers
    # Renders with a normal buffer: turn each crop's normals by a random rotation, so that the
    # network takes them in any frame (bench/mc_normal_frames.py: trained on world space alone,
    # n2n-mc-aux lost up to 0.7 dB with normals in a random frame, where OIDN lost nothing).
    turn_normals: bool = False
    log_radiance: bool = False  # HDR input and output as log radiance (restore.hdr), so that emitters keep their energy
    # Pairs of renders for a start that names a buffer prefilter (n2n-mc-aux): their albedo and
    # normal go through it first, as `restore denoise` cleans a render's buffers before the network
    # sees them, so that the network learns from the buffers it will be given (restore finetune
    # sets it; the training sets of tools/prefilter_buffers.py went through it already).
    prefilter_buffers: bool = False
    val_count: int = 8  # images (or pairs) held out for validation
    val_every: int = 100
    # Score validation on the selection half of a folder of real NAME_noisy / NAME_clean pairs
    # (see `split_real_pairs`), full size, instead of synthetic noise on held-out crops: a blind
    # photo denoiser's synthetic score stays flat while its real-noise score moves by 0.5 dB.
    val_pairs: str = ""
    checkpoint_every: int = 100
    # Export the best-validated weights, the starting ones included, instead of the last: a
    # finetune on a few pairs can overfit their noise, and should never hand back a worse model.
    keep_best: bool = False
    # Validate and export an exponential moving average of the weights (Polyak averaging) with
    # this decay per step, e.g. 0.999 (0: the weights themselves). Noise2Noise steps on noisy
    # targets move the weights enough that a blind photo model's real-pair score swings by
    # 0.3-0.5 dB between checkpoints; the average keeps what the steps agree on.
    ema: float = 0.0
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"  # autocast precision: "auto" (bf16 where measured faster), "fp32" or "bf16"
    run_dir: str = ""  # checkpoints go here (default: next to `out`)
    name: str = ""
    description: str = ""
    command: str = ""  # the command line that started the run, recorded in the model file
    overwrite: bool = False  # replace an existing model file at `out`

    def __post_init__(self) -> None:
        if not self.variant and not self.init:
            self.variant = "n2n_unet"
        # Checked here, before any data is read: a zero batch would divide by zero minutes into
        # the run, and a negative step count would finish at once with success.
        for name in ("steps", "batch", "patch", "val_count", "val_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        for name in ("minutes", "lr_halve_every", "lr_warmup"):
            if getattr(self, name) < 0:
                raise ValueError(f"--{name.replace('_', '-')} must not be negative, got {getattr(self, name)}")
        if not (self.zoom > 0 and self.zoom_from > 0):
            raise ValueError(f"--zoom must be positive, got {self.zoom_from}-{self.zoom}")
        if not 0 <= self.zoom_aliased <= 1:
            raise ValueError(f"--zoom-aliased is a share from 0 to 1, got {self.zoom_aliased}")
        if self.zoom_aliased and min(self.zoom, self.zoom_from) >= 1:
            raise ValueError("--zoom-aliased resamples shrunk crops: give a --zoom range that reaches below 1")
        if (self.zoom, self.zoom_from) != (1, 1) and (self.task != "denoise" or self.pairs):
            raise ValueError("--zoom scales clean photos for denoising; it does nothing for upscalers or noisy pairs")
        if not self.source_scales or not all(0 < factor <= 1 for factor in self.source_scales):
            raise ValueError(f"--source-scale shrinks the training photos: factors above 0, at most 1, got {self.source_scales}")
        if self.source_scales != (1.0,) and (self.task != "denoise" or self.pairs):
            raise ValueError("--source-scale shrinks clean photos for denoising; it does nothing for upscalers or noisy pairs")
        if not 0 <= self.ema < 1:
            raise ValueError(f"--ema must be at least 0 and below 1, got {self.ema}")
        if not self.lr > 0:
            raise ValueError(f"--lr must be positive, got {self.lr}")
        if self.estimator_only and (self.task != "denoise" or self.balance_levels or self.clean_targets):
            raise ValueError("--estimator-only trains a denoiser's level estimator alone: no --balance-levels or clean targets")
        if self.estimator_by_denoising and not self.estimator_only:
            raise ValueError("--estimator-by-denoising is a way of training the estimator alone: add --estimator-only")
        for name in ("clean_read_cap", "level_overstate"):  # levels on the 0-255 scale
            if not 0 <= getattr(self, name) <= 50:
                raise ValueError(f"--{name.replace('_', '-')} is a sigma from 0 to 50, got {getattr(self, name)}")
        if self.clean_read_cap and not self.estimator_by_denoising:
            raise ValueError("--clean-read-cap bounds what an estimator learned by denoising reads: add --estimator-by-denoising")
        if not 0 <= self.level_jitter <= 2:
            raise ValueError(f"--level-jitter is a log factor from 0 to 2, got {self.level_jitter}")
        if self.level_jitter and not self.denoiser_only:
            raise ValueError("--level-jitter tells a level model's denoiser a level that is off: add --denoiser-only")
        if self.level_overstate and not self.denoiser_only:
            raise ValueError("--level-overstate tells a level model's denoiser a level that is high: add --denoiser-only")
        if self.estimator_only and self.denoiser_only:
            raise ValueError("--estimator-only and --denoiser-only each keep what the other trains: give one")
        if self.balance_levels and (self.task != "denoise" or self.loss not in ("l1", "l2", *HDR_LOSSES)):
            raise ValueError("--balance-levels weighs a denoiser's L1, L2 or HDR loss by each crop's noise level")
        if self.balance_levels and self.loss in HDR_LOSSES and not self.pairs:
            raise ValueError("--balance-levels with an HDR loss reads each crop's level off its pair: train on --pairs A B")
        if self.lossless_targets and (self.task != "denoise" or self.pairs or self.clean_targets):
            raise ValueError("--lossless-targets changes the noisy targets drawn from clean photos (--noise photo:...)")
        if self.one_way and not self.pairs:
            raise ValueError("--one-way fixes which shot of a pair is the input: train on --pairs A B")
        if self.turn_normals and not self.pairs:
            raise ValueError("--turn-normals turns the normal buffers of render pairs: train on --pairs A B")
        if self.init_also and not (self.init and self.variant):
            raise ValueError("--init-also fills a new network (--arch) from further files after --init's")
        if self.task == "upscale" and self.scale < 2:
            raise ValueError(f"--scale must be 2 or more for an upscaler, got {self.scale}")


HDR_MAX_GRAD_NORM = 10.0
"""Gradient-norm cap for HDR training. A low-spp target holds fireflies (one caustic sample can be
1000x its pixel's mean): on the Mitsuba pairs the gradient norm is typically 3-18, but a crop with
a firefly gives 70-200, which would swamp Adam's moment estimates for many steps."""


def _targets(config: TrainConfig) -> str:
    """What a run's model file says it learned from."""
    if config.task != "denoise":
        return "HR"
    if config.clean_targets:
        return "clean"
    return "noisy (Noise2Noise), photo targets without JPEG" if config.lossless_targets else "noisy (Noise2Noise)"


def per_crop_mean(error: torch.Tensor) -> torch.Tensor:
    """Each crop's mean over its channels and pixels: N x ... -> N."""
    return error.flatten(1).mean(dim=1)


def hdr_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Noise2Noise's relative L2 for HDR per crop: (f(x) - y)^2 / (f(x) + 0.01)^2, denominator gradient stopped.

    The denominator uses max(f(x), 0): radiance is never negative, and an output near -0.01 (an
    untrained network's) would otherwise divide by zero and blow the loss up a millionfold.
    """
    return per_crop_mean((output - target) ** 2 / (output.detach().clamp_min(0) + 0.01) ** 2)


TONE_MAPPED_HDR_SHARE = 0.01
"""The share of `hdr_loss` in `tone_mapped_loss`: what keeps the highlights' energy, which T flattens."""


def tone_mapped_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The error the Monte Carlo protocol's tone-mapped PSNR sees, to first order, per crop:
    (f(x) - y)^2 weighted by T'(f(x))^2, plus `TONE_MAPPED_HDR_SHARE` of `hdr_loss`.

    The relative L2 weighs a pixel's relative error the same at every brightness; T weighs it
    most in the midtones (about 0.1-1 exposed) and far less in deep shadows and highlights, where
    n2n-mc-aux beats OIDN while trailing it in the midtones. The weight depends on the output
    alone (gradient stopped), so with noisy targets the minimiser is still their mean.
    """
    weight = tone_map_slope(output.detach().clamp_min(0)).square()
    return per_crop_mean(weight * (output - target) ** 2) + TONE_MAPPED_HDR_SHARE * hdr_loss(output, target)


def annealed_l0_loss(output: torch.Tensor, target: torch.Tensor, progress: float) -> torch.Tensor:
    """Noise2Noise's L0 approximation (|f(x) - y| + 1e-8)^gamma per crop, gamma annealed linearly from 2 to 0.

    Its minimiser tends to the mode of the targets: the loss for impulse-like noise, where a few
    pixels are replaced by outliers and the mean (L2) or median (L1) would be pulled off.
    """
    gamma = 2.0 * (1.0 - min(max(progress, 0.0), 1.0))
    return per_crop_mean(((output - target).abs() + 1e-8).pow(gamma))


def learning_rate(config: TrainConfig, step: int) -> float:
    """The learning rate of step `step` (from 0): a linear warm-up, then halvings on schedule.

    The warm-up is for finetuning: Adam's first updates move every weight by about the learning
    rate whatever its gradient (its moment estimates start at zero), which knocks a trained
    network off its optimum before the gradients' statistics are known.
    """
    lr = config.lr * 0.5 ** (step // config.lr_halve_every) if config.lr_halve_every else config.lr
    return lr * min(1.0, (step + 1) / config.lr_warmup) if config.lr_warmup else lr


LEVEL_BALANCE_FLOOR = 2 / 255
"""Below about two grey levels a crop's level says little (8-bit rounding, the clean photos' own
grain): the floor keeps a clean crop from outweighing the others without limit."""


RELATIVE_LEVEL_FLOOR = 0.02
"""The floor for render crops' relative levels (`relative_crop_levels`): a pair at 1024 spp reads
about 0.05, and a converged crop (an emitter, a sky) reads near 0 and would otherwise outweigh
the others without limit."""


def level_weights(levels: torch.Tensor, floor: float = LEVEL_BALANCE_FLOOR) -> torch.Tensor:
    """Each crop's loss weight, 1 / (its noise level + `floor`), scaled to a mean of 1.

    A denoiser's squared error grows about as fast as the noise level, so these weights bring
    every level's error to a common scale: the loss then follows the mean PSNR over levels
    rather than the mean squared error, which the noisiest crops decide.
    """
    weights = 1 / (levels + floor)
    return weights / weights.mean()


Loss = Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]
"""(output, target, progress in [0, 1] through the run) -> each crop's loss (N values). The loop
weighs the crops (`level_weights`) or not, and takes the mean: one place reduces every loss."""

LOSSES: dict[str, Loss] = {
    "l1": lambda output, target, progress: per_crop_mean((output - target).abs()),
    "l2": lambda output, target, progress: per_crop_mean((output - target).square()),
    "l0": annealed_l0_loss,
    "hdr": lambda output, target, progress: hdr_loss(output, target),
    "tonemapped": lambda output, target, progress: tone_mapped_loss(output, target),
}


@dataclass
class Data:
    source: BatchSource
    validation: list[tuple[torch.Tensor, torch.Tensor]]  # (input, reference) pairs, 1 x C x H x W
    description: str
    # True when the references are themselves noisy shots (finetune pairs): validation then
    # estimates the PSNR against the unseen clean image (see `validate`).
    noisy_references: bool = False


BufferMap = Callable[[torch.Tensor], torch.Tensor]
"""What a render's buffers go through before training: C x H x W in, the same shape out."""


def _stacked_pair(
    path_a: Path, path_b: Path, aux: Sequence[str], channels: int | None, clean_buffers: BufferMap | None = None
) -> torch.Tensor:
    """One scene's two shots (with their buffers, through `clean_buffers` if given) stacked: 2 x C x H x W."""
    a, b = load_render(path_a, aux, channels), load_render(path_b, aux, channels)
    if a.shape != b.shape:
        raise ValueError(f"size mismatch: '{path_a.name}' is {tuple(a.shape)} in A and {tuple(b.shape)} in B")
    colour = slice(0, a.shape[0] - 3 * len(aux))
    if clean_buffers is not None and aux:
        for shot in (a, b):
            shot[colour.stop :] = clean_buffers(shot[colour.stop :])
    if torch.equal(a[colour], b[colour]) and a[colour].amin() < a[colour].amax():
        # The same file twice: the network would learn to change nothing. (A constant pair,
        # such as a render whose camera sees no light, is identical with no mistake made.)
        raise ValueError(f"'{path_a.name}' is identical in A and B: a pair needs two independent noisy shots")
    return torch.stack([a, b])


def prepare_data(
    config: TrainConfig,
    channels: int | None = None,
    scales: Sequence[int] = (),
    aux: Sequence[str] = (),
    val_crop: int = 256,
    level_channel: bool = False,
    clean_buffers: BufferMap | None = None,
) -> Data:
    """Build the training source and the fixed validation set from the config.

    Photos are converted to the network's `channels` (gray networks train on colour photos made
    gray). An upscaler with several `scales` trains and validates on all of them. Pairs of
    renders carry their `aux` buffers (NAME.albedo.EXT ... beside each shot) as extra channels,
    through `clean_buffers` where given. With `level_channel`, noisy training inputs end with the
    map of their noise level.
    """
    if config.pairs:
        if config.turn_normals and "normal" not in aux:
            raise ValueError("--turn-normals turns a normal buffer: train a network that takes one (--arch n2n_unet_aux)")
        pairs = match_pairs(*config.pairs)
        if len(pairs) <= config.val_count:
            raise ValueError(f"{len(pairs)} pairs: need more than --val-count {config.val_count}")
        # Colour and buffers from one read of each shot (a multilayer EXR holds both), each
        # scene's two shots stacked as they are read: the training source keeps these stacks.
        loaded = [_stacked_pair(a, b, aux, channels, clean_buffers) for a, b in pairs]
        train, val = loaded[: len(loaded) - config.val_count], loaded[len(loaded) - config.val_count :]
        validation = [(center_crop(a, val_crop)[None], center_crop(b, val_crop)[None]) for a, b in val]
        described = f"{len(train)} noisy pairs from {config.pairs[0]} and {config.pairs[1]}"
        normal_channels = None
        if config.turn_normals:
            start = loaded[0].shape[1] - 3 * len(aux) + 3 * list(aux).index("normal")
            normal_channels = slice(start, start + 3)
        source = PairSource(train, config.patch, level_channel, swap=not config.one_way, normal_channels=normal_channels)
        # The estimate against the clean image assumes two shots of one noise level; a one-way
        # B has far less noise than A and is scored as the reference itself (a lower bound).
        return Data(source, validation, described, noisy_references=not config.one_way)

    if aux:
        raise ValueError("networks with albedo / normal inputs train on pairs of renders (restore train --pairs A B)")
    noise = parse_noise(config.noise) if config.task == "denoise" else None
    if noise is not None and config.lossless_targets:
        noise = with_lossless_targets(noise)
    if level_channel and (config.task != "denoise" or is_mnist_folder(config.data)):
        raise ValueError("a level-conditioned network denoises photos: train it on a photo folder or on pairs")
    if is_mnist_folder(config.data):
        digits, _ = load_mnist(config.data, "train")
        train, held = digits[:-5000], digits[-5000:]
        g = torch.Generator().manual_seed(12345)
        val_clean = held[: max(config.val_count, 1) * 64]
        described = f"MNIST train minus 5,000 held-out digits, {config.data}"
        if config.task == "upscale":
            val_small = F.avg_pool2d(val_clean, 2)
            source: BatchSource = PooledDigitSource(train)
        else:
            val_small = noise.apply(val_clean, g).clamp(0, 1)
            source = DigitSource(train, noise, config.clean_targets)
        # Validate on 8 x 8 grids of digits, as the networks see digit grids at inference.
        grids = [(_grid(val_small[i : i + 64]), _grid(val_clean[i : i + 64])) for i in range(0, len(val_clean), 64)]
        return Data(source, grids, described)

    files = image_files(config.data)
    if len(files) <= config.val_count:
        raise ValueError(f"'{config.data}' has {len(files)} images: need more than --val-count {config.val_count}")
    images = load_images(files, channels)
    train, val = images[: len(images) - config.val_count], images[len(images) - config.val_count :]
    described = f"{len(train)} images of {config.data} ({config.val_count} held out for validation)"
    if config.task == "upscale":
        scales = list(scales) if len(scales) > 1 else [config.scale]
        validation = []
        for hr in val:
            for scale in scales:
                crop = center_crop(hr, val_crop * scale, scale)[None]
                validation.append((downscale(crop, scale), crop))
        if len(scales) == 1:
            return Data(DownscaleSource(train, scales[0], config.patch), validation, described)
        return Data(MultiScaleSource(train, scales, config.patch), validation, described)
    # An estimator-only run looks at the Noise2Noise target only to learn from the denoiser's loss.
    draw_targets = config.estimator_by_denoising or not config.estimator_only
    if config.source_scales != (1.0,):
        train = [image if factor == 1 else shrink(image, factor) for factor in config.source_scales for image in train]
    source = NoisySource(
        train,
        noise,
        config.patch,
        config.clean_targets,
        level_channel,
        (config.zoom_from, config.zoom),
        draw_targets=draw_targets,
        aliased=config.zoom_aliased,
        level_jitter=config.level_jitter,
        level_overstate=config.level_overstate / 255,
    )
    if config.val_pairs:
        selection, _ = split_real_pairs(real_pairs(config.val_pairs))
        validation = [tuple(image[None] for image in load_images([n, c], channels)) for n, c in selection]
        described += f"; validated on {len(selection)} real pairs of {config.val_pairs}"
        return Data(source, validation, described)
    validation = []
    for i, clean in enumerate(val):
        clean = center_crop(clean, val_crop)[None]
        noisy = noise.apply(clean, torch.Generator().manual_seed(1000 + i))
        validation.append((noisy, clean))
    return Data(source, validation, described)


def _grid(digits: torch.Tensor, columns: int = 8) -> torch.Tensor:
    """N x 1 x S x S digits -> 1 x 1 x (rows*S) x (columns*S) image."""
    rows, side = len(digits) // columns, digits.shape[-1]
    d = digits[: rows * columns].reshape(rows, columns, side, side).permute(0, 2, 1, 3)
    return d.reshape(1, 1, rows * side, columns * side)


def build_network(config: TrainConfig) -> tuple[Restorer, ModelInfo | None]:
    """The network to train: a fresh variant, or one started from a model file."""
    torch.manual_seed(config.seed)  # the initial weights are part of the run's reproducibility
    if not config.init:
        return create(config.variant), None
    base, info = load_model_file(config.init)
    if config.variant:
        # Another network warm-started from the file: every weight whose name and shape match
        # is copied (MDSR's head, shared body, tail and x2 upsampler from EDSR x2), and a layer that takes
        # extra inputs starts from the file's weights for its first ones (n2n-mc-aux from n2n-mc).
        network = create(config.variant)
        taken = _copy_matching_weights(base, network)
        for path in config.init_also:
            further, _ = load_model_file(path)
            taken |= _copy_matching_weights(further, network, taken)
        return network, info
    if config.task == "upscale" and config.scale not in base.scales:
        # x3 / x4 from x2 (the paper's recipe): same config at the new scale, matching weights copied.
        cfg = {**base.config_dict(), "scale": config.scale}
        network = build(info.architecture, cfg)
        _copy_matching_weights(base, network)
        return network, info
    return base, info


def _copy_matching_weights(source: Restorer, target: Restorer, taken: AbstractSet[str] = frozenset()) -> set[str]:
    """Copy every weight of `source` whose name matches into `target` (under the names
    `target.weights_from` gives them: an EDSR's upsampler becomes MDSR's at its scale): as is when the shapes match;
    into the first input channels, with zeros for the rest, when the target's layer takes more
    inputs (dimension 1) and is otherwise the same shape. Names in `taken` (copied from an earlier
    file) are left as they are. Returns the names copied.

    Extra inputs come after the file's own (the U-Net appends albedo and normal, or the noise
    level, after the colour, at its input and at its last skip), so zero weights on them make the
    wider network start out computing exactly what the file's network computes; training then
    learns what the new inputs add, instead of relearning the layers around them from random weights.
    """
    own = target.state_dict()
    copied = {}
    for source_name, weight in target.weights_from(source).items():
        # A network that holds the file's network as a part (the level U-Net's `denoiser`) takes
        # its weights under that part's name: the one target name ending in ".NAME".
        inside = [key for key in own if key.endswith("." + source_name)]
        name = source_name if source_name in own else inside[0] if len(inside) == 1 else None
        if name is None or name in taken:
            continue
        wanted = own[name]
        if wanted.shape == weight.shape:
            copied[name] = weight
        elif (
            weight.dim() > 1
            and wanted.shape[1] > weight.shape[1]
            and wanted.shape[2:] == weight.shape[2:]
            and wanted.shape[0] == weight.shape[0]
        ):
            widened = torch.zeros_like(wanted)
            widened[:, : weight.shape[1]] = weight
            copied[name] = widened
    target.load_state_dict(copied, strict=False)
    return set(copied)


def aux_buffers_of(network: Restorer) -> list[str]:
    """The auxiliary buffers a network takes after its colour: 3 extra channels each (albedo, then normal)."""
    return list(AUX_BUFFERS[: (network.in_channels - network.out_channels) // 3])


@dataclass(frozen=True)
class ValidationScore:
    """What one validation measured."""

    psnr: float  # mean PSNR (peak 1) of the outputs against the references: the score runs keep the best by
    # The least gain of any image's output over its input (dB), where both compare with one clean
    # reference (a denoiser on clean references, not HDR): a run can raise the mean while one photo
    # loses, which "never worse than the input" forbids. None elsewhere.
    least_gain: float | None = None


def validate(
    network: Restorer,
    validation: Sequence[tuple[torch.Tensor, torch.Tensor]],
    device: torch.device,
    noisy_references: bool = False,
    input_transform: str = "none",
) -> ValidationScore:
    """Mean PSNR (peak 1) of the network's clipped output against the references, and the least
    gain over the input where the input is comparable (`ValidationScore`).

    HDR networks (an `input_transform` of restore.hdr) get exposed input through
    `network_input`, and are scored on tone-mapped values.

    With noisy references (a held-out pair A, B of independent shots), the PSNR against the
    unseen clean image is estimated from the pair (`noisy_reference_psnr`; for renders
    `estimated_psnr_tone_mapped`).
    """
    network.eval()
    scores, gains = [], []
    with torch.inference_mode():
        for inp, ref in validation:
            if ref.shape[-1] != inp.shape[-1]:
                network.select_scale(ref.shape[-1] // inp.shape[-1])
            colours = network.out_channels
            if is_hdr(input_transform):
                exposed, frame = network_input(inp, colours, input_transform)
                radiance = frame.radiance(network(exposed.to(device)).float().cpu())
                if noisy_references:  # on linear values: tone-mapped noisy renders are biased
                    score = estimated_psnr_tone_mapped(radiance, inp[:, :colours], ref[:, :colours])
                else:
                    score = psnr(tone_map(radiance), tone_map(ref[:, :colours]), peak=1.0)
            else:
                # A level-conditioned network is told the level its own estimator reads, as at inference.
                out = network(with_level_map(network, inp.to(device))).float().cpu().clamp(0, 1)
                inp, ref = inp[:, :colours], ref[:, :colours]
                score = noisy_reference_psnr(out, inp, ref) if noisy_references else psnr(out, ref, peak=1.0)
                if not noisy_references and inp.shape == ref.shape:
                    gains.append(score - psnr(inp.clamp(0, 1), ref, peak=1.0))
            scores.append(score)
    network.train()
    least_gain = min(gains) if gains and len(gains) == len(scores) else None
    return ValidationScore(sum(scores) / len(scores), least_gain)


def _described(score: ValidationScore) -> str:
    """A validation as the run's log prints it."""
    least = "" if score.least_gain is None else f" (least gain over the input {score.least_gain:+.2f} dB)"
    return f"PSNR {score.psnr:.2f} dB{least}"


Weights = dict[str, torch.Tensor]


@contextmanager
def _weights_swapped_in(network: Restorer, weights: Weights | None) -> Iterator[None]:
    """Run the block with `weights` in the network (None: its own), then put its own back."""
    if weights is None:
        yield
        return
    own = {key: value.detach().clone() for key, value in network.state_dict().items()}
    network.load_state_dict(weights)
    try:
        yield
    finally:
        network.load_state_dict(own)


def _cpu_copy(network: Restorer) -> Weights:
    return {k: v.detach().cpu().clone().contiguous() for k, v in network.state_dict().items()}


@dataclass
class RunState:
    """Where a run stands: with the weights and the optimizer, what its checkpoint stores."""

    step: int = 0
    elapsed: float = 0.0  # training seconds so far, over every session of the run
    history: list[list[float]] = field(default_factory=list)  # [step, validation PSNR, seconds]
    precision: str = ""  # the autocast precision the run measured or was given
    memory_format: str = ""  # "contiguous" or "channels_last"
    # Where the steps last ran (e.g. "cpu (2 threads)"): what the exported file records, not the
    # machine of a later call that only exports a checkpoint (`--steps` at the checkpoint's step).
    device: str = ""
    best_step: int = 0
    data: str = ""  # what the run trains on (the exported file's training data line)
    best: Weights | None = None  # with keep_best: the weights of the best validation so far
    average: Weights | None = None  # with ema: the moving average of the weights, what is validated and exported

    def update_average(self, network: Restorer, decay: float) -> None:
        """Move the average towards the network's weights after a step (copy them at the first).

        The decay ramps up as (1 + step) / (10 + step) (as TensorFlow's moving averages do), so
        that a run from scratch does not average in its first random weights for long.
        """
        weights = network.state_dict()
        if self.average is None:
            self.average = {key: value.detach().clone() for key, value in weights.items()}
            return
        rate = 1 - min(decay, (1 + self.step) / (10 + self.step))
        with torch.no_grad():
            for key, value in weights.items():
                kept = self.average[key]
                if kept.is_floating_point():
                    kept.lerp_(value.detach().to(kept.device, kept.dtype), rate)
                else:
                    kept.copy_(value)

    def record(self, score: float, network: Restorer, keep_best: bool) -> None:
        """Note a validation score at the current step; keep the weights if it is the best."""
        self.history.append([self.step, round(score, 3), round(self.elapsed, 1)])
        if keep_best and (self.best is None or score > _score_at(self.history, self.best_step)):
            self.best, self.best_step = _cpu_copy(network), self.step


def _save_checkpoint(
    path: Path, network: Restorer, optimizer: torch.optim.Optimizer, config: TrainConfig, state: RunState
) -> None:
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in network.state_dict().items()}
    tensors.update({f"best.{k}": v for k, v in (state.best or {}).items()})
    tensors.update({f"average.{k}": v.detach().cpu().contiguous() for k, v in (state.average or {}).items()})
    opt_state = optimizer.state_dict()
    for index, moments in opt_state["state"].items():
        for key, value in moments.items():
            tensors[f"optim.{index}.{key}"] = torch.as_tensor(value).detach().cpu().contiguous()
    weights = ("best", "average")  # stored as tensors above
    meta = {"config": _resumable(config), **{f.name: getattr(state, f.name) for f in fields(state) if f.name not in weights}}
    if state.best is None:
        meta.pop("best_step")
    metadata = {key: json.dumps(value) for key, value in meta.items()}
    metadata["param_groups"] = json.dumps(opt_state["param_groups"])
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(tensors, str(tmp), metadata=metadata)
    os.replace(tmp, path)


def _load_checkpoint(path: Path, network: Restorer, optimizer: torch.optim.Optimizer) -> tuple[dict[str, Any], RunState]:
    """Restore the network and optimizer; return the settings the run was started with and its state."""
    with safe_open(str(path), framework="pt") as f:
        raw = f.metadata()
        tensors = {key: f.get_tensor(key) for key in f.keys()}
    network.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    best = {k[5:]: v for k, v in tensors.items() if k.startswith("best.")}
    average = {k[8:]: v for k, v in tensors.items() if k.startswith("average.")}
    moments: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            moments.setdefault(int(index), {})[name] = value
    groups = json.loads(raw["param_groups"])
    if len(groups) != len(optimizer.param_groups):
        raise ValueError(f"'{path}' holds another network's optimizer: start a new --run-dir")
    for stored, own in zip(groups, optimizer.param_groups, strict=True):
        stored["lr_scale"] = own["lr_scale"]  # the network's choice, not the run's (older checkpoints lack it)
    optimizer.load_state_dict({"state": moments, "param_groups": groups})
    meta = {key: json.loads(value) for key, value in raw.items() if key != "param_groups"}
    state = RunState(
        step=meta["step"],
        elapsed=meta["elapsed"],
        history=meta["history"],
        # Checkpoints from before the layout probe trained in fp32, NCHW.
        precision=meta.get("precision", "fp32"),
        memory_format=meta.get("memory_format", "contiguous"),
        device=meta.get("device", ""),  # older checkpoints: the exporting call's device stands in
        best_step=meta.get("best_step", 0),
        data=meta.get("data", ""),  # older checkpoints: read from the data, which export then loads
        best=best or None,
        average=average or None,
    )
    return meta["config"], state


PLAIN_PROGRESS_SECONDS = 300.0
"""How often a run whose console is not a terminal (a log file) prints its step, loss and pace:
checkpoints and validations come every --val-every steps, 20 minutes apart on a slow CPU."""


def train(config: TrainConfig, console: Console | None = None, show_progress: bool = True) -> ModelInfo:
    """Train (or resume) a run and export its model file; return the exported metadata.

    Under torchrun each process trains on its share of every batch (see restore.training.distributed);
    rank 0 alone prints, validates, checkpoints and exports, and every rank returns its metadata.
    """
    with joined(resolve_device(config.device)) as ranks:
        if config.batch % ranks.world:
            raise ValueError(f"--batch {config.batch} does not split evenly over {ranks.world} processes")
        if not ranks.leader:
            console, show_progress = Console(quiet=True), False
        return _train(config, console or Console(stderr=True, markup=False), show_progress, ranks)


def _train(config: TrainConfig, console: Console, show_progress: bool, ranks: Ranks) -> ModelInfo:
    device = ranks.device
    out = Path(config.out)
    if out.exists() and not config.overwrite:
        # Checked before any work: a finished run must not be lost to a mistyped -o, nor a
        # bundled model replaced by accident.
        raise FileExistsError(f"'{out}' exists (--overwrite, or overwrite=True in the library, replaces it)")
    run_dir = Path(config.run_dir or out.with_suffix(".run"))  # made at the first checkpoint
    network, base_info = build_network(config)
    aux = aux_buffers_of(network)
    transform = input_transform_of(config, base_info)
    hdr = is_hdr(transform)
    if is_demodulated(transform) and "albedo" not in aux:
        raise ValueError("--demodulate divides by the albedo buffer: train a network that takes one (--arch n2n_unet_aux)")
    level = network.takes_noise_level  # its input ends with a level map (restore.archs.unet.LevelUNet)
    # Before the data: --estimator-only / --denoiser-only on a network without an estimator is refused as such.
    estimator = _estimator_to_train(config, network, ranks)  # None: not a run of the estimator alone
    kept = _estimator_to_keep(config, network)  # None: not a run of the denoiser alone
    network = network.to(device).train()
    if estimator is not None:
        groups = estimator.estimator_parameter_groups()
    elif kept is not None:
        groups = kept.denoiser_parameter_groups()
    else:
        groups = network.parameter_groups()
    optimizer = torch.optim.Adam(groups, lr=config.lr)
    loss_fn = LOSSES[config.loss]

    state = RunState()
    checkpoint = run_dir / CHECKPOINT
    if checkpoint.is_file():
        stored_config, state = _load_checkpoint(checkpoint, network, optimizer)
        if not _same_run(stored_config, _resumable(config)):
            raise ValueError(f"'{checkpoint}' belongs to a run with other settings; use another --run-dir or delete it")
        console.print(f"resuming from step {state.step} ({checkpoint})")
        if _only_exports(config, state):
            # A finished run's export (or a copy of a running one's checkpoint, `--steps` at its
            # step) needs neither its data nor the memory they take beside the run.
            return _export(config, network, base_info, state, out, ranks)
        # A run that kept its best, resumed with --keep last, exports its last weights but keeps
        # the best in its checkpoint: exporting the last weights must not lose the best ones.
        if config.precision != "auto":
            state.precision = state.memory_format = ""  # an explicit precision is measured again below
        # else: a resumed run keeps the precision and layout it measured.
    colour = network.in_channels - 3 * len(aux) - level
    prefilter = _buffer_prefilter(config, network, base_info)
    data = prepare_data(config, colour, network.scales, aux, level_channel=level, clean_buffers=prefilter)
    state.data = data.description
    if not state.precision and ranks.leader:
        sample = data.source.batch(config.batch, torch.Generator().manual_seed(0))[0].to(device)
        state.precision = training_precision(device, config.precision, network, sample)
        # Only "auto" times the layout: an explicit precision asks for a run that timing cannot change.
        auto = config.precision == "auto"
        state.memory_format = training_memory_format(device, state.precision, network, sample) if auto else "contiguous"
    # Every rank trains as rank 0 measured.
    state.precision, state.memory_format = ranks.from_leader((state.precision, state.memory_format))
    memory_format = MEMORY_FORMATS[state.memory_format]
    network = network.to(memory_format=memory_format)  # in place: the optimizer keeps its parameters
    described = state.precision + (" (channels last)" if state.memory_format == "channels_last" else "")
    processes = f" x {ranks.world} processes" if ranks.world > 1 else ""
    console.print(f"training in {described} on {_device_name(device)}{processes}")
    model = ranks.wrap(network)  # what the steps run through; `network` is the weights

    if config.ema:
        if state.average is None:
            state.update_average(network, config.ema)  # the average starts at the starting weights
        state.average = {key: value.to(device) for key, value in state.average.items()}

    def record_validation() -> ValidationScore:
        with _weights_swapped_in(network, state.average if config.ema else None):
            score = validate(network, data.validation, device, data.noisy_references, transform)
            state.record(score.psnr, network, config.keep_best)
        return score

    def save() -> None:
        run_dir.mkdir(parents=True, exist_ok=True)
        _save_checkpoint(checkpoint, network, optimizer, config, state)

    if config.keep_best and not state.history and ranks.leader:
        score = record_validation()  # the starting point is a candidate too
        console.print(f"step 0: validation {_described(score)}")

    if state.step < config.steps:
        state.device = _device_name(device)
    started = time.monotonic() - state.elapsed
    last_loss, last_psnr = float("nan"), state.history[-1][1] if state.history else float("nan")
    columns = [
        TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.5f}  val {task.fields[psnr]:.2f} dB"),
        TimeElapsedColumn(), TimeRemainingColumn(),
    ]  # fmt: skip
    # A log file (a run under nohup) gets no live bar: a plain line now and then says the run is alive.
    plain_lines = show_progress and not console.is_terminal
    last_line = (time.monotonic(), state.step)
    with Progress(*columns, console=console, disable=not show_progress) as progress:
        bar = progress.add_task("train", total=config.steps, completed=state.step, loss=last_loss, psnr=last_psnr)
        while state.step < config.steps:
            if config.minutes and ranks.any(time.monotonic() - started > config.minutes * 60):
                break
            generator = torch.Generator().manual_seed(config.seed * 1_000_003 + state.step)
            inp, target = (ranks.share(t) for t in data.source.batch(config.batch, generator))
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(config, state.step) * group["lr_scale"]
            if config.task == "upscale":
                network.select_scale(target.shape[-1] // inp.shape[-1])
            if estimator is not None:
                # The denoiser is not in the optimizer: the step is the estimator's alone.
                inp = inp.to(device, memory_format=memory_format)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=state.precision == "bf16"):
                    if config.estimator_by_denoising:
                        output, read = estimator.denoise_as_read(inp[:, :-1])
                        crop_losses = loss_fn(output.float(), target.to(device), 0.0)
                        if config.clean_read_cap:
                            cap, drawn = config.clean_read_cap / 255, inp[:, -1].float().mean(dim=(1, 2))
                            # A nearly clean crop learns only not to be read above the cap: its
                            # denoising loss, which JPEG blocks lower as its reading rises, is left out.
                            crop_losses = crop_losses * (drawn >= cap) + estimator.over_read_loss(read, drawn, cap)
                        loss = crop_losses.mean()
                    else:
                        loss = estimator.level_loss(inp)
            else:
                target = target[:, : network.out_channels]  # pairs carry their auxiliary buffers too
                frame, weights = None, None
                if hdr:
                    # Each crop exposed on its own: the network learns every brightness range.
                    colour = inp[:, : network.out_channels]
                    inp, frame = network_input(inp, network.out_channels, transform)
                    target = target * frame.exposure
                    if config.balance_levels:  # read off the pair in the loss's own (exposed) units
                        weights = level_weights(relative_crop_levels(colour * frame.exposure, target), RELATIVE_LEVEL_FLOOR)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=state.precision == "bf16"):
                    output = model(inp.to(device, memory_format=memory_format))
                if frame is not None:
                    output = frame.exposed(output.float())  # remodulated: the loss scores the image the user gets
                done = state.step / config.steps  # how far through the run, for annealed losses
                if config.minutes:
                    done = max(done, (time.monotonic() - started) / (config.minutes * 60))
                crop_losses = loss_fn(output.float(), target.to(device), done)
                if config.balance_levels:
                    if weights is None:
                        weights = level_weights(crop_levels(inp, target, config.clean_targets))
                    crop_losses = crop_losses * weights.to(device)
                loss = crop_losses.mean()
                extra = network.extra_loss()  # e.g. a level estimator's, computed in the forward above
                if extra is not None:
                    loss = loss + extra
            if ranks.any(not torch.isfinite(loss)):
                # Stop before the update: the checkpoint on disk is the last good state.
                last_saved = state.step // config.checkpoint_every * config.checkpoint_every
                saved = f"the checkpoint of step {last_saved} is kept" if last_saved else "no checkpoint was written"
                value = loss.item() if not torch.isfinite(loss) else "not finite in another process"
                raise ValueError(f"the training loss became {value} at step {state.step + 1}; {saved} (try a lower --lr)")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if hdr:
                torch.nn.utils.clip_grad_norm_(network.parameters(), HDR_MAX_GRAD_NORM)
            optimizer.step()
            if config.ema:
                state.update_average(network, config.ema)
            state.step += 1
            state.elapsed = time.monotonic() - started
            last_loss = loss.item()
            if not ranks.leader:
                continue
            if state.step % config.val_every == 0 or state.step == config.steps:
                score = record_validation()
                last_psnr = score.psnr
                progress.console.print(
                    f"step {state.step}: loss {last_loss:.5f}, validation {_described(score)}, {state.elapsed:.0f} s"
                )
            if state.step % config.checkpoint_every == 0:
                save()
            progress.update(bar, completed=state.step, loss=last_loss, psnr=last_psnr)
            if plain_lines and time.monotonic() - last_line[0] >= PLAIN_PROGRESS_SECONDS:
                pace = (time.monotonic() - last_line[0]) / (state.step - last_line[1])
                progress.console.print(f"step {state.step}/{config.steps}: loss {last_loss:.5f}, {pace:.2f} s a step")
                last_line = (time.monotonic(), state.step)
    if ranks.leader:
        if not state.history or state.history[-1][0] != state.step:
            record_validation()
        save()
    return _export(config, network, base_info, state, out, ranks)


def _only_exports(config: TrainConfig, state: RunState) -> bool:
    """Whether a resumed run has nothing left but its export: no step to train, no validation to record."""
    return state.step >= config.steps and bool(state.history) and state.history[-1][0] == state.step and bool(state.data)


def _export(
    config: TrainConfig, network: Restorer, base: ModelInfo | None, state: RunState, out: Path, ranks: Ranks
) -> ModelInfo:
    """Write the run's model file from its best, average or last weights (rank 0); return its metadata on every rank."""
    if not ranks.leader:
        return ranks.from_leader(None)
    if config.keep_best and state.best is not None:
        network.load_state_dict(state.best)
    elif config.ema and state.average is not None:
        network.load_state_dict(state.average)
    info = _export_info(config, network, base, state, ranks.device)
    save_model_file(out, network.cpu().eval(), info, overwrite=config.overwrite)
    return ranks.from_leader(info)


def _prefilters_buffers(config: TrainConfig, network: Restorer, base: ModelInfo | None) -> bool:
    """Whether the run's buffers go through the start's buffer prefilter (`TrainConfig.prefilter_buffers`)."""
    return config.prefilter_buffers and base is not None and bool(base.aux_prefilter) and bool(aux_buffers_of(network))


def _buffer_prefilter(config: TrainConfig, network: Restorer, base: ModelInfo | None) -> BufferMap | None:
    """The start's buffer prefilter as `restore denoise` runs it (CPU, fp32), where the run uses one."""
    if not _prefilters_buffers(config, network, base):
        return None
    prefilter = load(config.init).aux_prefilter
    assert prefilter is not None  # loading the start loads the prefilter its file names, or fails
    options = InferenceOptions(device="cpu", precision="fp32")
    return lambda buffers: torch.as_tensor(run_model(prefilter, buffers, options))


def _estimator_to_train(config: TrainConfig, network: Restorer, ranks: Ranks) -> LevelUNet | None:
    """With `estimator_only`, the level network whose estimator alone trains; else None."""
    if not config.estimator_only:
        return None
    if not isinstance(network, LevelUNet):
        raise ValueError(f"--estimator-only trains a level model's estimator; {network.architecture} has none")
    if ranks.world > 1:
        raise ValueError("--estimator-only trains in one process: run it without torchrun")
    network.denoiser.requires_grad_(False)  # the loss reaches the estimator through it, never changes it
    return network


def _estimator_to_keep(config: TrainConfig, network: Restorer) -> LevelUNet | None:
    """With `denoiser_only`, the level network with its estimator frozen (so its level loss is
    not computed either); else None."""
    if not config.denoiser_only:
        return None
    if not isinstance(network, LevelUNet):
        raise ValueError(f"--denoiser-only keeps a level model's estimator; {network.architecture} has none")
    network.estimator.requires_grad_(False)
    return network


def input_transform_of(config: TrainConfig, base: ModelInfo | None) -> str:
    """What the network trains on (restore.hdr.INPUT_TRANSFORMS): exposed linear input when the
    model it starts from takes it, whatever the loss (a finetune of n2n-mc with an L1 loss must
    feed it what it was trained on), or with the HDR loss, `demodulate` or `log_radiance`; in log
    space and / or divided by the albedo when the start model or the flags say so; else the
    values as they are."""
    started_from = base.input_transform if base is not None and is_hdr(base.input_transform) else ""
    log = config.log_radiance or is_log(started_from)
    demodulated = config.demodulate or is_demodulated(started_from)
    if started_from or log or demodulated or config.loss in HDR_LOSSES:
        return input_transform_named(log=log, demodulated=demodulated)
    return "none"


def _same_run(stored: dict[str, Any], current: dict[str, Any]) -> bool:
    """Whether a checkpoint's settings are the current ones; settings newer than the checkpoint count at their defaults."""
    defaults = _resumable(TrainConfig(out=""))
    if stored.get("init") and stored.get("variant") == "n2n_unet" and not current["variant"]:
        stored = {**stored, "variant": ""}  # runs from --init once stored this ignored default
    if "source_scale" in stored:  # one factor, before several could be given
        stored = {**stored, "source_scales": [stored["source_scale"]]}
    current = json.loads(json.dumps(current))  # tuples as the checkpoint's JSON holds them: lists
    defaults = json.loads(json.dumps(defaults))
    return all(stored.get(key, defaults[key]) == value for key, value in current.items())


def _resumable(config: TrainConfig) -> dict[str, Any]:
    """The settings a resumed run must share with its checkpoint (not the stopping rules)."""
    values = asdict(config)
    stopping_and_naming = ("steps", "minutes", "device", "out", "run_dir", "name", "description", "command")
    # The precision is a speed choice; a resumed run keeps the one it measured (stored in the checkpoint).
    # Which weights to export is not a training setting either.
    for key in (*stopping_and_naming, "precision", "val_every", "checkpoint_every", "keep_best", "overwrite"):
        values.pop(key)
    return values


def _export_info(
    config: TrainConfig, network: Restorer, base: ModelInfo | None, state: RunState, device: torch.device
) -> ModelInfo:
    """The exported file's metadata; with kept best weights, `state.best_step` is the step exported."""
    step, elapsed, history = state.step, state.elapsed, state.history
    exported_step = state.best_step if config.keep_best and state.best is not None else None
    in_weights = step if exported_step is None else exported_step
    transform = input_transform_of(config, base)
    prefiltered = base.aux_prefilter if base is not None and _prefilters_buffers(config, network, base) else ""
    noise = "none" if config.task == "upscale" else ("pairs" if config.pairs else config.noise)
    if config.pairs and base is not None:
        noise = f"pairs (started from {base.name})"
    name = config.name or Path(config.out).stem
    # A run that continues a model under its own name keeps the model's description unless given a new one.
    description = config.description or (base.description if base is not None and base.name == name else "")
    return ModelInfo(
        name=name,
        architecture=network.architecture,
        config=network.config_dict(),
        task=config.task,
        scales=list(network.scales),
        noise=noise,
        channels=network.out_channels,
        value_range=[0.0, 1.0],
        transfer="linear" if is_hdr(transform) else "srgb",
        input_transform=transform,
        aux=aux_buffers_of(network),
        # The start's buffer prefilter stays with the network that learned from the start's weights.
        aux_prefilter=base.aux_prefilter if base is not None and aux_buffers_of(network) else "",
        description=description,
        training={
            "data": state.data,
            "command": config.command,
            "from": base.name if base else None,
            "targets": _targets(config),
            "loss": config.loss,
            **({"balance_levels": True} if config.balance_levels else {}),
            **({"estimator_only": True} if config.estimator_only else {}),
            **({"estimator_by_denoising": True} if config.estimator_by_denoising else {}),
            **({"clean_read_cap": config.clean_read_cap} if config.clean_read_cap else {}),
            **({"denoiser_only": True} if config.denoiser_only else {}),
            **({"level_jitter": config.level_jitter} if config.level_jitter else {}),
            **({"level_overstate": config.level_overstate} if config.level_overstate else {}),
            **({"turn_normals": True} if config.turn_normals else {}),
            **({"buffers_through": prefiltered} if prefiltered else {}),
            "steps": step,
            "batch": config.batch,
            "patch": config.patch,
            "lr": config.lr,
            "wall_seconds": round(elapsed, 1),
            "device": state.device or _device_name(device),
            "precision": state.precision,
            "val_psnr": history[-1][1] if exported_step is None else _score_at(history, exported_step),
            "val_curve": history,
            **({} if exported_step is None else {"exported_step": exported_step}),
            # The lineage counts the steps in the exported weights: a kept best stops the count there.
            **_lineage(base, config.name or Path(config.out).stem, config.command, in_weights, elapsed, history),
        },
    )


def _lineage(
    base: ModelInfo | None, name: str, command: str, steps: int, elapsed: float, history: list[list[float]]
) -> dict[str, Any]:
    """The chain of runs behind a model: the start's chain (or the start's own run) and this run,
    each with its command, steps, wall time and validation curve, and the totals, so that a
    model trained over many sessions says how it was made without its earlier files."""
    chain = []
    if base is not None:
        earlier = base.training
        chain = earlier.get("lineage") or [
            {"name": base.name, "command": earlier.get("command", ""),
             "steps": earlier.get("exported_step", earlier.get("steps", 0)),
             "wall_seconds": earlier.get("wall_seconds", 0.0), "val_curve": earlier.get("val_curve", [])}
        ]  # fmt: skip
    this_run = {"name": name, "command": command, "steps": steps, "wall_seconds": round(elapsed, 1), "val_curve": history}
    chain = [*chain, this_run]
    return {
        "lineage": chain,
        "total_steps": sum(run["steps"] for run in chain),
        "total_wall_seconds": round(sum(run["wall_seconds"] for run in chain), 1),
    }


def _score_at(history: list[list[float]], step: int) -> float:
    """The validation PSNR recorded at `step` (the last one if several)."""
    return next(score for at, score, _ in reversed(history) if at == step)


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{device.type} ({torch.get_num_threads()} threads)"
