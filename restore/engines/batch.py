"""Folder runs: the plan of what to write, and running it file by file.

A plan is the list of (source, target) jobs: the inputs expanded (files, folders, globs), the
outputs named, one machine's shard taken, finished files skipped. Outputs are written
atomically (restore.io.images), so an output that exists is a finished one: a killed run rerun
with `skip_existing` does only the rest. Each file's outcome can go to a JSON Lines manifest.
"""

from __future__ import annotations

import glob
import json
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from restore.api import resolved_precision
from restore.device import PRECISIONS
from restore.io.datasets import is_aux_buffer
from restore.io.images import READ_FORMATS, WRITE_FORMATS, ImageError
from restore.pipeline import ModelChoice, RunOptions, precision_for, restore_file, writable_folder
from restore.tiling import TileCallback

# Files named like our own outputs are skipped when a folder is expanded, so running twice on a
# folder does not restore the previous results; so are a render's NAME.albedo / NAME.normal buffers.
OUTPUT_NAME = re.compile(r"\.(denoised|x\d+(\.\d+)?)$")


class PlanError(ValueError):
    """Arguments that describe no possible plan (a usage error at the command line)."""


@dataclass(frozen=True)
class Job:
    source: Path
    target: Path


@dataclass(frozen=True)
class FileResult:
    """What became of one job: status "written", "skipped" (its output existed) or "failed"."""

    job: Job
    status: str
    model: str = ""
    precision: str = ""
    seconds: float = 0.0
    error: str = ""
    size: tuple[int, int] = (0, 0)  # width, height of the written image
    noise_level: float | None = None  # what a level-conditioned model read off the input (sigma, 0-255)
    notes: tuple[str, ...] = ()  # warnings about the input (restore.pipeline.Restored.notes)
    aux_prefilter: str = ""  # the network that cleaned the buffers first (restore.api.Model.aux_prefilter), if one did

    def manifest_line(self) -> str:
        record = {
            "source": str(self.job.source),
            "output": str(self.job.target),
            "status": self.status,
            "model": self.model,
            "precision": self.precision,
            "seconds": round(self.seconds, 3),
            "error": self.error,
        }
        if self.noise_level is not None:
            record["noise_level"] = round(self.noise_level, 2)
        if self.aux_prefilter:
            record["aux_prefilter"] = self.aux_prefilter
        if self.notes:
            record["notes"] = list(self.notes)
        return json.dumps(record, ensure_ascii=False)


@dataclass(frozen=True)
class Inputs:
    """What a run's arguments name: (file, base folder) pairs, the base keeping folder structure,
    and the files in named folders passed over because their names look like restore's outputs
    or a render's buffers (`x.denoised.png`, `x.x2.png`, `x.albedo.exr`) while no image `x`
    lies beside them: the user's own files, perhaps, so the CLI names them."""

    files: list[tuple[Path, Path]]
    passed_over: list[Path]  # only those without their image beside them: a rerun's own outputs go unmentioned


def _source_stem(path: Path) -> str | None:
    """The stem of the image that `path` was made from or belongs to ("x" for x.denoised.png,
    x.x2.png or x.albedo.exr), or None for an image of its own."""
    if is_aux_buffer(path):
        return Path(path.stem).stem
    match = OUTPUT_NAME.search(path.stem)
    return path.stem[: match.start()] if match else None


def expand_inputs(inputs: Sequence[str], recursive: bool) -> Inputs:
    """Arguments (files, folders, globs) -> the files to restore, and the folder files passed over.

    Folders and globs are sorted, so every machine given the same arguments sees the same list.
    A file named on its own (or by a glob) is never passed over, whatever its name.
    """
    found: list[tuple[Path, Path]] = []
    passed_over: list[Path] = []
    for arg in inputs:
        path = Path(arg)
        if path.is_dir():
            pattern = "**/*" if recursive else "*"
            images = sorted(p for p in path.glob(pattern) if p.is_file() and p.suffix.lower() in READ_FORMATS)
            made_from = {p: _source_stem(p) for p in images}
            files = [p for p in images if made_from[p] is None]
            stems = {(p.parent, p.stem) for p in files}
            passed_over += [p for p in images if made_from[p] is not None and (p.parent, made_from[p]) not in stems]
            if not files:
                raise ImageError(f"no images in folder '{path}'" + (" besides outputs and buffers" if images else ""))
            found += [(f, path) for f in files]
        elif path.is_file():
            found.append((path, path.parent))
        elif glob.has_magic(arg):
            matches = sorted(Path(p) for p in glob.glob(arg, recursive=recursive) if Path(p).is_file())
            if not matches:
                raise ImageError(f"no files match '{arg}'")
            found += [(m, m.parent) for m in matches]
        elif path.exists():
            raise ImageError(f"cannot read '{arg}': not a regular file")
        else:
            raise ImageError(f"no such file: '{arg}'")
    return Inputs(found, passed_over)


def plan_outputs(found: Sequence[tuple[Path, Path]], output: str | None, tag: str) -> list[Job]:
    """One job per input: `output` as a file for one input, else as a folder; default `in.TAG.ext`."""
    if output is None:
        return [Job(src, src.with_name(f"{src.stem}{tag}{src.suffix}")) for src, _ in found]
    target = Path(output)
    if len(found) > 1 and not target.is_dir() and target.suffix.lower() in READ_FORMATS:
        raise PlanError(f"-o '{output}' names a file, but {len(found)} inputs need an output folder")
    as_folder = target.is_dir() or output.endswith(("/", os.sep)) or len(found) > 1 or not target.suffix
    if not as_folder:
        return [Job(found[0][0], target)]
    jobs = [Job(src, target / src.relative_to(base)) for src, base in found]
    seen: dict[Path, Path] = {}
    for job in jobs:
        if job.target in seen:
            # A glob over sub-folders ('shots/*/a.png') flattens them: two inputs, one output.
            first, dst = seen[job.target], job.target
            raise PlanError(f"'{first}' and '{job.source}' would both be written to '{dst}' (give a folder with --recursive)")
        seen[job.target] = job.source
    return jobs


def parse_shard(text: str | None, environ: Mapping[str, str] = os.environ) -> tuple[int, int]:
    """'I/N' -> (I, N). Without `text`: RANK / WORLD_SIZE when both are set (torchrun sets them), else (0, 1)."""
    if text is None:
        if "RANK" not in environ or "WORLD_SIZE" not in environ:
            return 0, 1
        text, origin = f"{environ['RANK']}/{environ['WORLD_SIZE']}", "RANK / WORLD_SIZE"
    else:
        origin = "--shard"
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match or not int(match[1]) < int(match[2]):
        raise PlanError(f"{origin} '{text}': expected I/N with 0 <= I < N, e.g. 0/4")
    return int(match[1]), int(match[2])


def take_shard(jobs: Sequence[Job], index: int, count: int) -> list[Job]:
    """Shard `index` of `count`: every count-th job from the index-th, so shards take turns along
    the list (a folder of large files and one of small ones spread over every machine)."""
    return list(jobs[index::count])


def check_targets(jobs: Sequence[Job], overwrite: bool, skip_existing: bool) -> tuple[list[Job], list[Job]]:
    """(jobs to run, jobs whose output exists and is skipped); ImageError before any work for an
    output that cannot be written (format, folder) or that exists without overwrite / skip."""
    to_run, skipped = [], []
    for job in jobs:
        dst = job.target
        if dst.suffix.lower() not in WRITE_FORMATS:
            # Found before any work: a Radiance .hdr input's default output name is such a file.
            writable = ", ".join(sorted(WRITE_FORMATS))
            raise ImageError(f"cannot write '{dst}': restore writes {writable} (pick one with -o)")
        if dst.exists() and not overwrite:
            if not skip_existing:
                raise ImageError(f"'{dst}' exists: pass --overwrite to replace it, or --skip-existing to keep it")
            skipped.append(job)
            continue
        if not writable_folder(dst.parent):
            raise ImageError(f"cannot write to folder '{dst.parent}'")
        to_run.append(job)
    return to_run, skipped


def run_job(job: Job, model: ModelChoice, options: RunOptions, on_tile: TileCallback | None = None) -> FileResult:
    """Restore one file; a failure becomes a "failed" result carrying its one-line message."""
    start = time.perf_counter()
    try:
        restored = restore_file(job.source, job.target, model, options, on_tile)
    except Exception as e:  # noqa: BLE001 - one bad file must not end the run for the others
        message = str(e) if str(job.source) in str(e) else f"'{job.source}': {type(e).__name__}: {e}"
        return FileResult(job, "failed", seconds=time.perf_counter() - start, error=" ".join(message.split()))
    image, used = restored.image, restored.model
    dtype = resolved_precision(used, options.device, precision_for(image.bit_depth, options.precision))
    precision = next(name for name, value in PRECISIONS.items() if value == dtype)
    height, width = image.pixels.shape[:2]
    seconds = time.perf_counter() - start
    return FileResult(
        job, "written", used.name, precision, seconds, size=(width, height),
        noise_level=restored.noise_level, notes=restored.notes, aux_prefilter=restored.aux_prefilter,
    )  # fmt: skip


@contextmanager
def manifest_writer(path: str | os.PathLike[str] | None) -> Iterator[Callable[[FileResult], None]]:
    """A function that appends one JSON line per result to `path` (flushed at once, so a killed
    run leaves every finished line readable), or does nothing when `path` is None."""
    if path is None:
        yield lambda result: None
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    stream: IO[str]
    with open(path, "a", encoding="utf-8") as stream:

        def write(result: FileResult) -> None:
            stream.write(result.manifest_line() + "\n")
            stream.flush()

        yield write
