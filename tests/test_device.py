"""Precision choice on a CPU: measured, never assumed."""

from __future__ import annotations

import pytest
import torch

from restore import device as device_module
from restore.device import training_precision

CPU = torch.device("cpu")


def tiny_network() -> torch.nn.Module:
    return torch.nn.Conv2d(3, 3, 3, padding=1)


def test_a_cpu_without_native_bf16_trains_in_fp32_without_timing(monkeypatch):
    monkeypatch.setattr(device_module, "cpu_precisions", lambda: ["fp32"])
    monkeypatch.setattr(device_module, "_time_training_step", lambda *args: pytest.fail("timed a precision it cannot use"))
    assert training_precision(CPU, "auto", tiny_network(), torch.rand(2, 3, 8, 8)) == "fp32"


@pytest.mark.parametrize(("bf16_seconds", "expected"), [(0.5, "bf16"), (0.9, "fp32")])
def test_bf16_is_kept_only_when_a_timed_step_is_clearly_faster(monkeypatch, bf16_seconds, expected):
    monkeypatch.setattr(device_module, "cpu_precisions", lambda: ["fp32", "bf16"])
    monkeypatch.setattr(device_module, "_time_training_step", lambda net, batch, bf16: bf16_seconds if bf16 else 1.0)
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


def test_the_inference_precision_probe_leaves_the_fp32_weights_unrounded():
    network = tiny_network()
    network.in_channels = 3
    before = {k: v.clone() for k, v in network.state_dict().items()}
    device_module._time_precisions(network, 3, ["fp32", "bf16"])
    assert all(v.dtype == torch.float32 and torch.equal(before[k], v) for k, v in network.state_dict().items())
