"""Precision choice on a CPU: measured, never assumed."""

from __future__ import annotations

import json

import pytest
import torch

from restore import device as device_module
from restore.device import training_precision

CPU = torch.device("cpu")


def tiny_network() -> torch.nn.Module:
    return torch.nn.Conv2d(3, 3, 3, padding=1)


def test_a_cpu_without_native_bf16_trains_in_fp32_without_timing(monkeypatch):
    monkeypatch.setattr(device_module, "cpu_precisions", lambda: ["fp32"])
    monkeypatch.setattr(device_module, "_time_training_steps", lambda *args: pytest.fail("timed a precision it cannot use"))
    assert training_precision(CPU, "auto", tiny_network(), torch.rand(2, 3, 8, 8)) == "fp32"


@pytest.mark.parametrize(("bf16_seconds", "expected"), [(0.5, "bf16"), (0.9, "fp32")])
def test_bf16_is_kept_only_when_a_timed_step_is_clearly_faster(monkeypatch, bf16_seconds, expected):
    monkeypatch.setattr(device_module, "cpu_precisions", lambda: ["fp32", "bf16"])

    def step_seconds(steps):
        return {name: bf16_seconds if bf16 else 1.0 for name, (_, _, bf16) in steps.items()}

    monkeypatch.setattr(device_module, "_time_training_steps", step_seconds)
    assert training_precision(CPU, "auto", tiny_network(), torch.rand(2, 3, 8, 8)) == expected


def test_an_explicit_precision_is_taken_as_given_and_fp16_is_refused():
    assert training_precision(CPU, "bf16", tiny_network(), torch.rand(2, 3, 8, 8)) == "bf16"
    with pytest.raises(ValueError, match="fp16"):
        training_precision(CPU, "fp16", tiny_network(), torch.rand(2, 3, 8, 8))


def test_the_timing_probe_leaves_the_network_untouched():
    network = tiny_network()
    before = {k: v.clone() for k, v in network.state_dict().items()}
    training_precision(CPU, "auto", network, torch.rand(2, 3, 8, 8))
    assert all(torch.equal(before[k], v) for k, v in network.state_dict().items())
    assert all(p.grad is None for p in network.parameters())


def test_a_network_with_frozen_weights_is_timed_as_a_whole_step_and_stays_frozen(monkeypatch):
    # An --estimator-only run freezes the level model's denoiser before the run times its steps.
    monkeypatch.setattr(device_module, "cpu_precisions", lambda: ["fp32", "bf16"])
    network = tiny_network().requires_grad_(False)
    assert training_precision(CPU, "auto", network, torch.rand(2, 3, 8, 8)) in ("fp32", "bf16")
    assert device_module.training_memory_format(CPU, "fp32", network, torch.rand(2, 3, 8, 8)) in ("channels_last", "contiguous")
    assert not any(p.requires_grad for p in network.parameters())


def test_the_inference_precision_probe_leaves_the_fp32_weights_unrounded():
    network = tiny_network()
    network.in_channels = 3
    before = {k: v.clone() for k, v in network.state_dict().items()}
    device_module._time_precisions(network, 3, ["fp32", "bf16"])
    assert all(v.dtype == torch.float32 and torch.equal(before[k], v) for k, v in network.state_dict().items())


@pytest.fixture
def cache_in(tmp_path, monkeypatch):
    monkeypatch.setattr(device_module, "_cache_file", lambda: tmp_path / "cpu-precision.json")


@pytest.mark.parametrize(("channels_last_seconds", "expected"), [(0.5, torch.channels_last), (0.95, torch.contiguous_format)])
def test_channels_last_is_kept_only_when_a_timed_run_is_clearly_faster(cache_in, monkeypatch, channels_last_seconds, expected):
    timed = []

    def timings(network, channels, dtype):
        timed.append(dtype)
        return {"contiguous": 1.0, "channels_last": channels_last_seconds}

    monkeypatch.setattr(device_module, "_time_memory_formats", timings)
    assert device_module.resolve_memory_format(CPU, torch.bfloat16, tiny_network(), "tiny") == expected
    assert device_module.resolve_memory_format(CPU, torch.bfloat16, tiny_network(), "tiny") == expected
    assert timed == [torch.bfloat16]  # measured once, then remembered


@pytest.mark.parametrize("damage", ["[1, 2]", "not json", None])
@pytest.mark.defect(22)
def test_a_damaged_precision_cache_is_measured_again_not_trusted(tmp_path, cache_in, monkeypatch, damage):
    monkeypatch.setattr(device_module, "_time_memory_formats", lambda *args: {"contiguous": 1.0, "channels_last": 0.5})
    assert device_module.resolve_memory_format(CPU, torch.bfloat16, tiny_network(), "tiny") == torch.channels_last
    cache = tmp_path / "cpu-precision.json"
    if damage is None:  # valid JSON, but an answer this code never writes
        cache.write_text(json.dumps(dict.fromkeys(json.loads(cache.read_text()), "sideways")))
    else:
        cache.write_text(damage)
    assert device_module.resolve_memory_format(CPU, torch.bfloat16, tiny_network(), "tiny") == torch.channels_last


def test_networks_without_convolutions_and_gpus_keep_nchw_untimed(cache_in, monkeypatch):
    monkeypatch.setattr(device_module, "_time_memory_formats", lambda *args: pytest.fail("timed a layout"))
    mlp = torch.nn.Linear(4, 4)
    assert device_module.resolve_memory_format(CPU, torch.float32, mlp, "mlp") == torch.contiguous_format
    assert (
        device_module.resolve_memory_format(torch.device("cuda"), torch.float32, tiny_network(), "conv")
        == torch.contiguous_format
    )


def test_the_layout_probe_leaves_the_network_untouched():
    network = tiny_network()
    network.in_channels = 3
    before = {k: v.clone() for k, v in network.state_dict().items()}
    device_module._time_memory_formats(network, 3, torch.bfloat16)
    assert all(
        v.dtype == torch.float32 and v.is_contiguous() and torch.equal(before[k], v) for k, v in network.state_dict().items()
    )


@pytest.mark.parametrize(("channels_last_seconds", "expected"), [(0.5, "channels_last"), (0.95, "contiguous")])
def test_training_takes_channels_last_only_when_a_timed_step_is_clearly_faster(monkeypatch, channels_last_seconds, expected):
    def step_seconds(steps):
        def seconds(batch):
            nhwc = batch.is_contiguous(memory_format=torch.channels_last) and not batch.is_contiguous()
            return channels_last_seconds if nhwc else 1.0

        return {name: seconds(batch) for name, (_, batch, _) in steps.items()}

    monkeypatch.setattr(device_module, "_time_training_steps", step_seconds)
    network = tiny_network()
    assert device_module.training_memory_format(CPU, "bf16", network, torch.rand(2, 3, 8, 8)) == expected
    assert network.weight.is_contiguous()  # timed on a copy


def test_candidates_are_timed_in_turns_so_that_a_job_starting_midway_slows_them_alike():
    # Another job starts after the fourth call and triples every call's time. Timed one after
    # another, the candidate timed second would look slower than it is (this once picked fp32
    # for a 2-hour run that bf16 would have done in half the time).
    clock, calls = [0.0], [0]

    def costing(seconds):
        def call():
            calls[0] += 1
            clock[0] += seconds * (3 if calls[0] > 4 else 1)

        return call

    timings = device_module._best_times({"fp32": costing(1.0), "bf16": costing(0.5)}, clock=lambda: clock[0])
    assert timings == {"fp32": 1.0, "bf16": 0.5}
