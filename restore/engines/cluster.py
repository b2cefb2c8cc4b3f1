"""Ray Data as the engine of a folder run on a cluster (the optional extra `restore-images[ray]`).

The planned jobs travel to the workers as paths, not pixels: each worker reads its files, runs
the same `restore_file` as the local engine and writes the result itself, so bit depth, alpha,
colour profiles and EXR survive exactly as they do locally (the filesystem must be shared).
Each worker is a Ray actor holding its loaded models for all the files it is given.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from restore.engines.batch import FileResult, Job, run_job
from restore.pipeline import ModelChoice, RunOptions


class _Worker:
    """One Ray actor: restores the jobs of each batch it is handed with the models it keeps."""

    def __init__(self, model_for: ModelChoice, options: RunOptions, threads: int) -> None:
        import torch

        torch.set_num_threads(threads)  # one worker per CPU share: no oversubscription
        self.model_for, self.options = model_for, options

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        jobs = [Job(Path(source), Path(target)) for source, target in zip(batch["source"], batch["target"], strict=True)]
        results = [run_job(job, self.model_for, self.options) for job in jobs]
        return {
            "source": [str(r.job.source) for r in results],
            "target": [str(r.job.target) for r in results],
            "status": [r.status for r in results],
            "model": [r.model for r in results],
            "precision": [r.precision for r in results],
            "seconds": [r.seconds for r in results],
            "error": [r.error for r in results],
            "width": [r.size[0] for r in results],
            "height": [r.size[1] for r in results],
            "noise_level": [r.noise_level for r in results],  # None where the model reads no level
            "notes": ["\n".join(r.notes) for r in results],  # one string a row: Ray's columns hold no ragged lists
            "aux_prefilter": [r.aux_prefilter for r in results],
        }


def _worker_class(model_for: ModelChoice, options: RunOptions, threads: int) -> type[_Worker]:
    """A worker class that carries its settings: Ray ships it whole to each actor, where
    constructor arguments would sit in the object store for restarts to look up."""

    class Worker(_Worker):
        def __init__(self) -> None:
            super().__init__(model_for, options, threads)

    return Worker


def run_on_ray(
    jobs: Sequence[Job], model_for: ModelChoice, options: RunOptions, workers: int = 0, gpus_per_worker: float = 0.0
) -> Iterator[FileResult]:
    """Restore `jobs` on Ray workers; yield each result as it finishes (in no fixed order).

    Connects to the cluster named by RAY_ADDRESS (or a `ray start` one on this machine), else
    starts a local Ray. `workers`: actors to start (0: one per CPU, or per `gpus_per_worker`
    GPUs of the cluster).
    """
    # Ray Data sets its loggers' level on import and again per dataset; this variable wins.
    os.environ.setdefault("RAY_DATA_LOG_LEVEL", "ERROR")  # the run reports its own progress
    try:
        import ray
        import ray.data
    except ImportError:
        raise ValueError("--engine ray needs Ray: pip install 'restore-images[ray]'") from None
    if not jobs:
        return
    if not ray.is_initialized():
        ray.init(include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    resources = ray.cluster_resources()
    if not workers:
        have = resources.get("GPU", 0.0) / gpus_per_worker if gpus_per_worker else resources.get("CPU", 1.0)
        workers = max(1, int(have))
    workers = min(workers, len(jobs))
    cpus = max(1, int(resources.get("CPU", 1.0)) // workers) if not gpus_per_worker else 1
    dataset = ray.data.from_items([{"source": str(job.source), "target": str(job.target)} for job in jobs])
    with warnings.catch_warnings():
        # Ray 2.60 deprecates passing actor options such as max_restarts to map_batches but names
        # no replacement for it; the user would see a warning about code they did not write.
        warnings.filterwarnings("ignore", message=".*ray_remote_args.* is deprecated")
        restored = dataset.map_batches(
            _worker_class(model_for, options, cpus),
            batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=workers),
            num_cpus=cpus,
            num_gpus=gpus_per_worker,
            max_restarts=0,  # a worker that dies is a failed run, not an endless retry of the file that killed it
        )
    for row in restored.iter_rows():
        job = Job(Path(row["source"]), Path(row["target"]))
        size = (int(row["width"]), int(row["height"]))
        notes = tuple(note for note in row["notes"].split("\n") if note)
        level = None if row["noise_level"] is None else float(row["noise_level"])
        yield FileResult(
            job, row["status"], row["model"], row["precision"], float(row["seconds"]), row["error"],
            size=size, noise_level=level, notes=notes, aux_prefilter=row["aux_prefilter"],
        )  # fmt: skip
