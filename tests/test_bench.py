"""The benchmark scripts run end to end (their --quick modes), so the tables can be remade."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from types import ModuleType

import pytest
import torch

from conftest import REPO


def bench_module(name: str) -> ModuleType:
    """bench/NAME.py imported as module NAME (registered, so that its dataclasses find their module)."""
    spec = importlib.util.spec_from_file_location(name, REPO / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


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


def test_the_aligned_reference_takes_out_a_shift_and_leaves_the_noise():
    import torch

    bench = bench_module("photo_benchmark")
    y, x = torch.meshgrid(torch.linspace(0, 6, 96), torch.linspace(0, 6, 96), indexing="ij")
    scene = lambda dx: 0.5 + 0.3 * torch.sin(4 * (x + dx) + torch.stack([torch.zeros_like(y), y, 2 * y]))[None]  # noqa: E731
    noise = 0.01 * torch.randn(1, 3, 96, 96, generator=torch.Generator().manual_seed(0))
    mean_of_shots, shot = scene(0.0), scene(0.02) + noise  # the camera moved by a third of a pixel
    aligned = bench.aligned_reference(shot, mean_of_shots)
    assert (shot - mean_of_shots).std() > 1.5 * noise.std()
    assert float((shot - aligned).std()) == pytest.approx(float(noise.std()), rel=0.02)  # the noise is what is left
    still = bench.aligned_reference(mean_of_shots + noise, mean_of_shots)
    assert (still - mean_of_shots).abs().max() < 0.002  # nothing to take out: the reference stays


def test_the_sr_progress_fit_recovers_a_log_steps_line_and_where_it_reaches_a_target():
    import math

    bench = bench_module("sr_progress")
    points = [(steps, 30.0 + 0.5 * math.log(steps)) for steps in (1_000, 2_000, 8_000)]
    intercept, slope = bench.fit_log_steps(points)
    assert (intercept, slope) == (pytest.approx(30.0), pytest.approx(0.5))
    assert bench.steps_to_reach((intercept, slope), 30.0 + 0.5 * math.log(50_000)) == pytest.approx(50_000)
    assert bench.steps_to_reach((31.0, -0.1), 32.0) is None  # a falling curve never gets there
    # Where the line gets there: in steps, and in hours only where the newest run recorded its pace.
    paced = bench.Version("abc", "def", 20_000, 4_000.0, 0.2, 37.6)
    assert bench.reach_sentence(38.0, 56_000, paced).endswith("36,000 more, about 2 hours of this CPU at 0.20 s a step.")
    unpaced = bench.Version("abc", "def", 20_000, None, None, 37.6)
    assert bench.reach_sentence(38.0, 56_000, unpaced).endswith("36,000 more.")
    assert "does not rise" in bench.reach_sentence(38.0, None, paced)


def test_the_mc_bench_traces_a_mean_gap_to_the_scenes_behind_it():
    import numpy as np

    bench = bench_module("mc_benchmark")
    blank = np.zeros((4, 4, 3), np.float32)

    def case(group: str, name: str, spp: int, materials: str = ""):
        return bench.Case(group, name, spp, blank, blank, blank, blank, blank, materials)

    cases = [case("cbox", "cbox", 4), case("test", "s0", 4, "diffuse"), case("test", "s1", 4, "conductor")]
    cases.append(case("test", "s0", 16))
    scores = {
        ("OIDN", "test", 4): [30.0, 37.0],
        ("ours", "test", 4): [30.5, 30.0],
        ("OIDN", "test", 16): [40.0],
        ("ours", "test", 16): [39.0],
        ("tuned", "test", 4): [31.5, 29.0],
        ("tuned", "test", 16): [39.5],
    }

    def rows(comparisons: list[tuple[str, str]]) -> list[str]:
        return [line for line in bench.scene_by_scene(cases, scores, comparisons) if line.startswith(("| s0", "| s1"))]

    # The lowest spp only, the scene furthest behind first, each with its objects.
    assert rows([("OIDN", "ours")]) == ["| s1 | conductor | 37.00 | 30.00 | +7.00 |", "| s0 | diffuse | 30.00 | 30.50 | -0.50 |"]
    # A model file beside the bundled one: where a finetune gained and where it lost, after the OIDN table.
    both = rows([("OIDN", "ours"), ("ours", "tuned")])
    assert both[2:] == ["| s1 | conductor | 30.00 | 29.00 | +1.00 |", "| s0 | diffuse | 30.50 | 31.50 | -1.00 |"]
    assert rows([("OIDN", "ours"), ("ours", "not scored")]) == rows([("OIDN", "ours")])  # methods not run: no table
    assert bench.scene_by_scene(cases[:1], scores, [("OIDN", "ours")]) == []  # the Cornell box alone: no table


def test_the_mc_bench_times_its_methods_in_turns_so_that_load_midway_slows_them_alike():
    import numpy as np

    bench = bench_module("mc_benchmark")
    blank = np.zeros((1000, 1000, 3), np.float32)  # one megapixel
    case = bench.Case("cbox", "cbox", 4, blank, blank, blank, blank, blank)
    calls: list[str] = []
    speed = bench.seconds_per_megapixel({m: lambda c, m=m: calls.append(m) for m in ("OIDN", "ours")}, case)
    assert calls == ["OIDN", "ours"] * 4  # a warm-up each, then three rounds
    assert set(speed) == {"OIDN", "ours"} and all(seconds >= 0 for seconds in speed.values())


def test_the_error_bands_put_each_pixel_s_error_in_the_band_of_its_reference_value():
    import numpy as np

    bands = bench_module("mc_error_bands")
    mc = sys.modules["mc_benchmark"]
    reference = np.full((2, 2, 3), 0.05, np.float32)  # band 0.02-0.1
    reference[0] = 5.0  # the top row in band 2-10
    blank = np.zeros_like(reference)
    case = mc.Case("test", "s0", 4, blank, blank, blank, blank, reference)
    off_in_the_shadows = reference.copy()
    off_in_the_shadows[1] *= 2  # ours is wrong in the bottom row only; "OIDN" is exact
    rows = bands.band_table([case], lambda c: off_in_the_shadows, lambda c: c.reference)
    assert "| 0.02-0.1 | 50 % | 100 % | - | 100 % |" in rows  # "-": OIDN has no error to share out
    assert "| 2-10 | 50 % | 0 % | - | 0 % |" in rows
    assert "| 0.5-2 | 0 % | 0 % | - | 0 % |" in rows


def test_the_edge_table_splits_each_error_between_buffer_edges_and_flat_surfaces():
    import numpy as np

    bands = bench_module("mc_error_bands")
    mc = sys.modules["mc_benchmark"]
    reference = np.full((6, 6, 3), 0.3, np.float32)
    albedo = np.full((6, 6, 3), 0.5, np.float32)
    albedo[:, 3:] = 0.9  # a silhouette between columns 2 and 3: those two columns are its edge
    case = mc.Case("test", "s0", 4, reference, reference, albedo, np.zeros_like(albedo), reference)
    assert bands.at_buffer_edge(case)[0].tolist() == [0, 0, 1, 1, 0, 0]
    off_at_the_edge = reference.copy()
    off_at_the_edge[:, 2] *= 2  # ours is wrong on one edge column; "OIDN" is exact
    rows = bands.edge_table([case], lambda c: off_at_the_edge, lambda c: c.reference)
    assert "| flat buffers | 67 % | 0 % | - | 0 % |" in rows
    assert "| buffer edges | 33 % | 100 % | - | 100 % |" in rows


def test_a_bundled_model_with_a_prefilter_gets_a_second_row_on_the_buffers_as_given():
    from restore.api import load

    bench = bench_module("mc_benchmark")
    prefiltered, plain = load("n2n-mc-aux"), load("n2n-mc")
    assert plain.aux_prefilter is None and prefiltered.aux_prefilter is not None
    assert list(bench.bundled_rows("n2n-mc", plain)) == ["n2n-mc"]
    assert list(bench.bundled_rows("n2n-mc-aux", prefiltered)) == ["n2n-mc-aux", "n2n-mc-aux, buffers as given"]


def test_the_dev_sums_add_the_caustics_dev_and_mc_dev_columns_of_each_buffer_kind():
    bench = bench_module("mc_dev_sums")
    table = "\n".join(
        [
            "# title",
            "",
            "| method | caustics-dev 4 spp (8) | caustics-dev-own 4 spp (8) | cbox 4 spp (1) | mc-dev 4 spp (8)"
            " | mc-dev-own 4 spp (8) | s / MP |",
            "|---|---|---|---|---|---|---|",
            "| ours | 25.00 | 24.50 | 38.80 | 30.00 | 29.00 | 1.3 |",
            "",
        ]
    )
    header, rows = bench.table_rows(table)
    assert [row["method"] for row in rows] == ["ours"]
    assert bench.dev_sums(header, rows[0]) == {"clean": 55.0, "own": 53.5, "aov": None}  # no -aov columns


def test_the_floor_bench_gives_each_scene_once_with_its_reference_as_the_input():
    import numpy as np

    bench = bench_module("mc_floor")
    noisy, reference = np.zeros((4, 4, 3), np.float32), np.ones((4, 4, 3), np.float32)
    cases = [bench.Case("mc-dev-hi", f"scene1_{spp}spp", spp, noisy, noisy, noisy, noisy, reference) for spp in (64, 256)] + [
        bench.Case("cbox", "cbox", spp, noisy, noisy, noisy, noisy, reference) for spp in (4, 16)
    ]
    given = bench.reference_cases(cases)
    assert [(case.group, case.spp) for case in given] == [("mc-dev-hi", 64), ("cbox", 4)]
    assert all(case.noisy is reference and case.second is reference for case in given)


def test_a_result_file_names_the_command_that_remakes_it_and_the_machine_it_ran_on(monkeypatch):
    report = bench_module("report")
    monkeypatch.setattr(sys, "argv", ["/anywhere/mc_floor.py", "--renders", ".data/mc-dev-hi"])
    assert report.command_line(str(REPO / "bench" / "mc_floor.py")) == "`python bench/mc_floor.py --renders .data/mc-dev-hi`"
    assert f"threads, torch {torch.__version__}" in report.machine()


def test_the_mc_bench_without_baselines_scores_only_the_model_files_given():
    import numpy as np

    from restore.zoo import bundled_path

    bench = bench_module("mc_benchmark")
    rows = bench.compared_methods({"run export": bundled_path("n2n-mc-aux")}, baselines=False)
    assert list(rows) == ["run export"]  # no OIDN and no bundled rows: a run's exports scored quickly
    render = np.random.default_rng(0).uniform(0, 2, (32, 32, 3)).astype(np.float32)
    albedo, normal = np.full_like(render, 0.5), np.dstack([np.zeros((32, 32, 2)), np.ones((32, 32))]).astype(np.float32)
    case = bench.Case("test", "s0", 4, render, render, albedo, normal, render)
    assert rows["run export"](case).shape == (32, 32, 3)  # the row runs the file, buffers and all
