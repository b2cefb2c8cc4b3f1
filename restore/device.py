"""Device, precision and memory-layout choice.

On a GPU, half precision is the fast path. On a CPU it depends on the processor: bf16 runs at
full speed only with native bf16 / AMX units and was 40x slower than fp32 on an AVX2-class CPU,
so "auto" on a CPU times the network itself in each precision the CPU offers and keeps the
fastest; then, in that precision, it times NCHW against channels-last (NHWC) layout. Both
answers are remembered per CPU, torch version, thread count and network.
"""

from __future__ import annotations

import copy
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch

from restore.io.images import ImageError, atomic_write

NetworkT = TypeVar("NetworkT", bound=torch.nn.Module)

PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
TRAINING_PRECISIONS = ("auto", "fp32", "bf16")  # fp16 training would need loss scaling


def resolve_device(spec: str = "auto") -> torch.device:
    """'auto' picks cuda, then mps, then cpu; an unavailable explicit device is a ValueError."""
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if spec.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA GPU is available")
    if spec == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError("--device mps: Apple's MPS backend is not available")
    if spec != "cpu" and not spec.startswith(("cuda", "mps")):
        raise ValueError(f"unknown device '{spec}' (expected auto, cpu, cuda or mps)")
    return torch.device(spec)


def cpu_precisions() -> list[str]:
    """The precisions worth trying on this CPU: bf16 only where the CPU reports bf16 support."""
    flags = ""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        pass
    capability = torch.backends.cpu.get_cpu_capability()
    has_bf16 = any(flag in flags.split() for flag in ("avx512_bf16", "amx_bf16")) or "AMX" in capability
    return ["fp32", "bf16"] if has_bf16 else ["fp32"]


# bf16 keeps 8 bits of mantissa, so it must be clearly faster to be worth its rounding error.
BF16_MIN_SPEEDUP = 1.25
# A layout change costs nothing in accuracy; the margin only keeps timing noise from flipping it.
CHANNELS_LAST_MIN_SPEEDUP = 1.1
MEMORY_FORMATS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}
_PROBE_SIDE = 128


def _cache_file() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "restore" / "cpu-precision.json"


def cpu_name() -> str:
    """The CPU model as /proc/cpuinfo names it (or what platform knows)."""
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        return platform.processor()


def _time_precisions(network: torch.nn.Module, channels: int, candidates: list[str]) -> dict[str, float]:
    return _time_settings(network, channels, {name: (PRECISIONS[name], torch.contiguous_format) for name in candidates})


def _time_memory_formats(network: torch.nn.Module, channels: int, dtype: torch.dtype) -> dict[str, float]:
    return _time_settings(network, channels, {name: (dtype, layout) for name, layout in MEMORY_FORMATS.items()})


def _time_settings(
    network: torch.nn.Module, channels: int, settings: dict[str, tuple[torch.dtype, torch.memory_format]]
) -> dict[str, float]:
    """Seconds per call of `network` on a probe image in each named (dtype, memory format), each on
    a converted copy, so the caller's weights stay as they are."""
    x = _probe_input(network, channels)
    calls = {}
    for name, (dtype, memory_format) in settings.items():
        net = on_device(network, torch.device("cpu"), dtype, memory_format)
        t = x.to(dtype).contiguous(memory_format=memory_format)
        calls[name] = lambda net=net, t=t: net(t)
    with torch.inference_mode():
        return _best_times(calls)


def _probe_input(network: torch.nn.Module, channels: int) -> torch.Tensor:
    grid = getattr(network, "size_multiple", 1)
    side = -(-_PROBE_SIDE // grid) * grid  # networks on digit cells need a multiple of the cell
    return torch.rand(1, channels, side, side)


def _has_convolutions(network: torch.nn.Module) -> bool:
    return any(p.dim() == 4 for p in network.parameters())


def _has_memory_format(network: torch.nn.Module, memory_format: torch.memory_format) -> bool:
    return all(p.is_contiguous(memory_format=memory_format) for p in network.parameters() if p.dim() == 4)


def on_device(
    network: NetworkT, device: torch.device, dtype: torch.dtype, memory_format: torch.memory_format = torch.contiguous_format
) -> NetworkT:
    """`network` itself when it already sits on `device` in `dtype` and `memory_format`, else a
    converted copy.

    Module.to converts in place, and a round trip through bf16 or fp16 would round the caller's
    fp32 weights for good: one bf16 call would change every later fp32 result.
    """
    if device.type != "cpu" and device.index is None:
        device = torch.empty(0, device=device).device  # "cuda" as parameters report it: "cuda:0"
    weight = next(network.parameters())
    if weight.device == device and weight.dtype == dtype and _has_memory_format(network, memory_format):
        return network
    return copy.deepcopy(network).to(device=device, dtype=dtype, memory_format=memory_format)


def _remembered(key: str, measure: Callable[[], str], answers: tuple[str, ...]) -> str:
    """`measure()`'s answer (one of `answers`) for `key` on this CPU, torch version and thread
    count, remembered in ~/.cache/restore/cpu-precision.json. A cache that is not what this code
    wrote (damaged, edited) is measured again rather than trusted."""
    cache_key = f"{cpu_name()}|torch {torch.__version__}|{torch.get_num_threads()} threads|{key}"
    cache = _cache_file()
    try:
        known = json.loads(cache.read_text())
    except (OSError, ValueError):
        known = {}
    if not isinstance(known, dict):
        known = {}
    if known.get(cache_key) in answers:
        return known[cache_key]
    known[cache_key] = measure()
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        # Whole or not at all: processes measuring at once (a Ray pool, a test run) share the file.
        atomic_write(str(cache), True, lambda tmp: Path(tmp).write_text(json.dumps(known, indent=1)))
    except (OSError, ImageError):
        pass  # a read-only home only costs the probe again next time
    return known[cache_key]


def fastest_cpu_precision(network: torch.nn.Module, key: str, channels: int = 3) -> str:
    """Time `network` in each precision this CPU offers; keep bf16 only if clearly faster.

    Single convolutions mislead (bf16 won alone and lost inside the U-Net on one CPU), so the
    network itself is timed, once per CPU, torch version, thread count and network `key`.
    """
    candidates = cpu_precisions()
    if len(candidates) == 1:
        return candidates[0]

    def measure() -> str:
        timings = _time_precisions(network, channels, candidates)
        return "bf16" if timings["bf16"] * BF16_MIN_SPEEDUP < timings["fp32"] else "fp32"

    return _remembered(key, measure, ("bf16", "fp32"))


def resolve_memory_format(
    device: torch.device, dtype: torch.dtype, network: torch.nn.Module, key: str = ""
) -> torch.memory_format:
    """How a convolutional network's weights and inputs are laid out on a CPU: channels last
    (NHWC) when a timed run of `network` in `dtype` shows it clearly faster, else the usual NCHW.

    The answer depends on the CPU, the precision and the network (on this project's 2-core EPYC
    with avx512_bf16 the U-Net ran faster channels last in both fp32 and bf16:
    bench/results/mc.md). GPUs and networks without convolutions keep NCHW.
    """
    if device.type != "cpu" or not _has_convolutions(network):
        return torch.contiguous_format
    channels = getattr(network, "in_channels", 3)

    def measure() -> str:
        timings = _time_memory_formats(network, channels, dtype)
        return "channels_last" if timings["channels_last"] * CHANNELS_LAST_MIN_SPEEDUP < timings["contiguous"] else "contiguous"

    return MEMORY_FORMATS[_remembered(f"{key}|{dtype}|memory format", measure, tuple(MEMORY_FORMATS))]


def resolve_precision(
    device: torch.device, spec: str = "auto", network: torch.nn.Module | None = None, key: str = ""
) -> torch.dtype:
    """'auto': bf16 on CUDA GPUs that support it, else fp16; on a CPU the measured fastest for
    `network` (fp32 when no network is given)."""
    if spec == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if device.type == "mps":
            return torch.float16
        if network is None:
            return torch.float32
        channels = getattr(network, "in_channels", 3)
        return PRECISIONS[fastest_cpu_precision(network, key, channels)]
    if spec not in PRECISIONS:
        raise ValueError(f"unknown precision '{spec}' (expected auto, fp32, fp16 or bf16)")
    return PRECISIONS[spec]


def training_precision(device: torch.device, spec: str, network: torch.nn.Module, batch: torch.Tensor) -> str:
    """The autocast precision for training: 'fp32' or 'bf16'.

    'auto' takes bf16 on a CUDA GPU that supports it. On a CPU with native bf16 it times a
    training step (forward and backward, on a copy of `network` and a `batch` of the run's own
    shape) in both precisions and keeps bf16 only if it is BF16_MIN_SPEEDUP times faster: on a
    2-core EPYC with avx512_bf16 a U-Net step took half the time, on CPUs without it 40 times more.
    """
    if spec not in TRAINING_PRECISIONS:
        raise ValueError(f"unknown training precision '{spec}' (expected auto, fp32 or bf16)")
    if spec != "auto":
        return spec
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    if device.type != "cpu" or "bf16" not in cpu_precisions():
        return "fp32"
    probe = _training_probe(network)
    timings = _time_training_steps({name: (probe, batch, name == "bf16") for name in ("fp32", "bf16")})
    return "bf16" if timings["bf16"] * BF16_MIN_SPEEDUP < timings["fp32"] else "fp32"


def training_memory_format(device: torch.device, precision: str, network: torch.nn.Module, batch: torch.Tensor) -> str:
    """'channels_last' or 'contiguous' (NCHW) for a training run in `precision` ('fp32' or 'bf16').

    On a CPU it times a training step (on a copy of `network` and a `batch` of the run's own
    shape) in both layouts and keeps channels last only if it is CHANNELS_LAST_MIN_SPEEDUP
    times faster (bench/train_speed.py measures the same on the U-Net). GPUs and networks
    without convolutions keep NCHW.
    """
    if device.type != "cpu" or not _has_convolutions(network):
        return "contiguous"
    bf16 = precision == "bf16"
    nhwc_probe = _training_probe(network).to(memory_format=torch.channels_last)
    timings = _time_training_steps(
        {
            "contiguous": (_training_probe(network), batch, bf16),
            "channels_last": (nhwc_probe, batch.contiguous(memory_format=torch.channels_last), bf16),
        }
    )
    return "channels_last" if timings["channels_last"] * CHANNELS_LAST_MIN_SPEEDUP < timings["contiguous"] else "contiguous"


def _training_probe(network: torch.nn.Module) -> torch.nn.Module:
    """A copy of `network` to time, every weight trainable: a run that freezes a part (a level
    model's denoiser while its estimator trains) still times a whole step's arithmetic."""
    return copy.deepcopy(network).cpu().train().requires_grad_(True)


TrainingStep = tuple[torch.nn.Module, torch.Tensor, bool]
"""(network, batch, bf16): one training step to time."""


def _time_training_steps(steps: dict[str, TrainingStep]) -> dict[str, float]:
    """Seconds per training step (forward and backward) of each named (network, batch, bf16)."""

    def step(network: torch.nn.Module, batch: torch.Tensor, bf16: bool) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            output = network(batch)
        output.float().square().mean().backward()
        network.zero_grad(set_to_none=True)

    return _best_times({name: lambda case=case: step(*case) for name, case in steps.items()})


def _best_times(
    calls: dict[str, Callable[[], object]], repeats: int = 3, clock: Callable[[], float] = time.perf_counter
) -> dict[str, float]:
    """The fastest of `repeats` timed runs of each call, after one warm-up each (the first call
    picks kernels). The calls take turns rather than each running its repeats in a row: another
    job that starts or stops midway (a training run beside a benchmark) then slows every
    candidate alike, where timing them one after another once picked fp32 for a 2-hour bf16 run."""
    for call in calls.values():
        call()
    best = dict.fromkeys(calls, float("inf"))
    for _ in range(repeats):
        for name, call in calls.items():
            start = clock()
            call()
            best[name] = min(best[name], clock() - start)
    return best
