"""The benchmark scripts run end to end (their --quick modes), so the tables can be remade."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO


def test_sr_benchmark_quick_writes_a_table_with_bicubic_and_the_model(shared_data, tmp_path):
    out = tmp_path / "sr.md"
    command = [sys.executable, str(REPO / "bench" / "sr_benchmark.py"), "--quick", "--data", str(shared_data / "test")]
    result = subprocess.run([*command, "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    table = out.read_text()
    assert "| bicubic |" in table and "| edsr-x2 |" in table and "| model | scale | fp32 |" in table


def test_denoise_benchmark_quick_scores_the_gray_model_beside_the_noisy_input(shared_data):
    command = [sys.executable, str(REPO / "bench" / "denoise_benchmark.py"), "--quick", "--data", str(shared_data)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    row = next(line for line in result.stdout.splitlines() if line.startswith("| Set12 | gaussian:25 |"))
    noisy, restored = (float(cell.split("/")[0]) for cell in row.split("|")[3:5])
    assert restored > noisy + 3  # a denoiser, not a copy of its input
