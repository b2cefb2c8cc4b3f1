"""tools/render_pairs.py: Mitsuba renders independent noisy pairs, auxiliary buffers and references."""

from __future__ import annotations

import glob
import itertools
import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO
from restore.io.datasets import match_pairs
from restore.io.images import read_image

pytest.importorskip("mitsuba")
if not glob.glob("/usr/lib/*/libLLVM-1[6-9].so") + glob.glob("/usr/lib/llvm-1[6-9]/lib/libLLVM*.so"):
    pytest.skip("Mitsuba's llvm variant needs LLVM 16+ (apt-get install libllvm19)", allow_module_level=True)


def test_two_scenes_render_to_pairs_buffers_and_references(tmp_path):
    command = [sys.executable, str(REPO / "tools" / "render_pairs.py"), str(tmp_path), "--scenes", "2", "--size", "32"]
    result = subprocess.run([*command, "--spp", "4", "--reference-spp", "64"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert sorted(manifest["scenes"]) == ["scene000000", "scene000001"]
    assert manifest["renderer"]["pixel_filter"] == "box"
    assert manifest["commands"] == [f"python tools/render_pairs.py {tmp_path} --scenes 2 --size 32 --spp 4 --reference-spp 64"]
    for name in manifest["scenes"]:
        a, b = (read_image(tmp_path / shot / f"{name}.exr").pixels for shot in ("a", "b"))
        reference = read_image(tmp_path / "reference" / f"{name}.exr").pixels
        albedo = read_image(tmp_path / "a" / f"{name}.albedo.exr").pixels
        normal = read_image(tmp_path / "a" / f"{name}.normal.exr").pixels
        assert a.shape == b.shape == reference.shape == (32, 32, 3)
        assert np.isfinite(a).all() and (a >= 0).all() and not np.array_equal(a, b)  # independent seeds
        assert 0 <= albedo.min() and albedo.max() <= 1
        length = np.linalg.norm(normal, axis=-1)
        assert np.all((np.abs(length - 1) < 1e-3) | (length < 1e-6))  # unit normals, 0 where nothing is hit
    # Buffers sit beside their image as NAME.albedo.exr / NAME.normal.exr; pairs are the images alone.
    assert [a.name for a, _ in match_pairs(tmp_path / "a", tmp_path / "b")] == ["scene000000.exr", "scene000001.exr"]


def test_target_spp_renders_the_b_shots_with_more_samples(tmp_path):
    # Targets for `restore train --one-way`: still noisy, but closer to the converged image than A.
    command = [sys.executable, str(REPO / "tools" / "render_pairs.py"), str(tmp_path), "--scenes", "1", "--size", "32"]
    result = subprocess.run(
        [*command, "--spp", "1", "--target-spp", "64", "--reference-spp", "1024"], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr
    entry = json.loads((tmp_path / "manifest.json").read_text())["scenes"]["scene000000"]
    assert (entry["spp"], entry["target_spp"]) == (1, 64)
    a, b, reference = (read_image(tmp_path / shot / "scene000000.exr").pixels for shot in ("a", "b", "reference"))
    assert not np.array_equal(b, reference)
    assert np.mean((b - reference) ** 2) < np.mean((a - reference) ** 2) / 8  # 64 times the samples


def test_the_caustics_family_always_has_a_caustic_and_no_sky():
    sys.path.insert(0, str(REPO / "tools"))
    import render_pairs

    render_pairs.use_llvm_variant()
    for seed in range(5):
        mixed = render_pairs.scene_description(seed, 16)
        caustics = render_pairs.scene_description(seed, 16, render_pairs.FAMILIES["caustics"])
        assert "caustic" in caustics and "wall" in caustics and "sky" not in caustics
        assert mixed != caustics
    # The default family still makes the scenes n2n-mc was trained on (scene 0 of its manifest).
    assert render_pairs.scene_description(0, 16)["_objects"] == [
        {"shape": "cylinder", "bsdf": "dielectric", "at": [-1.44, -1.62]},
        {"shape": "cylinder", "bsdf": "dielectric", "at": [1.61, -0.76]},
        {"shape": "cube", "bsdf": "diffuse", "at": [-0.58, -0.74]},
        {"shape": "sphere", "bsdf": "diffuse", "at": [0.19, -1.94]},
    ]


def test_the_interior_family_is_a_closed_room_lit_from_its_ceiling_with_the_camera_inside():
    sys.path.insert(0, str(REPO / "tools"))
    import render_pairs

    render_pairs.use_llvm_variant()
    at = lambda transform: np.array(transform.matrix)[:3, 3]  # noqa: E731  (where a transform puts the origin)
    for seed in range(5):
        room = render_pairs.scene_description(seed, 16, render_pairs.FAMILIES["interior"])
        assert {"floor", "ceiling", "wall_back", "wall_front", "wall_left", "wall_right", "light0"} <= room.keys()
        assert "sky" not in room  # every ray ends on a wall: no light from outside
        half, height = at(room["wall_right"]["to_world"])[0], at(room["ceiling"]["to_world"])[1]
        camera = at(room["sensor"]["to_world"])
        assert abs(camera[0]) < half and abs(camera[2]) < half and 0 < camera[1] < height
        lights = [room[k] for k in room if k.startswith("light")]
        assert all(at(light["to_world"])[1] == pytest.approx(height - 0.01) for light in lights)


def test_the_showroom_family_reflects_an_environment_map_and_often_shows_a_softbox_facing_the_camera():
    sys.path.insert(0, str(REPO / "tools"))
    import render_pairs

    render_pairs.use_llvm_variant()
    at = lambda transform: np.array(transform.matrix)[:3, 3]  # noqa: E731
    scenes = [render_pairs.scene_description(seed, 16, render_pairs.FAMILIES["showroom"]) for seed in range(20)]
    assert sum(scene.get("sky", {}).get("type") == "envmap" for scene in scenes) >= 14
    boxes = [scene for scene in scenes if "softbox" in scene]
    assert 3 <= len(boxes) <= 15
    for scene in boxes:
        facing = np.array(scene["softbox"]["to_world"].matrix)[:3, 2]  # a rectangle emits along its local z
        assert facing @ (at(scene["sensor"]["to_world"]) - at(scene["softbox"]["to_world"])) > 0
    metals = sum(obj["bsdf"] in ("roughconductor", "conductor") for scene in scenes for obj in scene["_objects"])
    assert metals > 0.4 * sum(len(scene["_objects"]) for scene in scenes)


def test_mitsubas_own_albedo_aov_is_black_on_glass_where_the_traced_buffer_sees_through_it():
    # bench/mc_buffers.py denoises with buffers of this other convention, as a Mitsuba user would give them.
    sys.path.insert(0, str(REPO / "tools"))
    import mitsuba as mi
    import render_pairs

    render_pairs.use_llvm_variant()
    T = mi.ScalarTransform4f
    camera = render_pairs._camera(16, 30, T().look_at(origin=[0, 0, 4], target=[0, 0, 0], up=[0, 1, 0]))
    wall = {"type": "rectangle", "to_world": T().translate([0, 0, -2]).scale(10), "bsdf": {"type": "diffuse"}}  # 0.5 gray
    glass = {"type": "sphere", "bsdf": {"type": "dielectric"}}
    scene = mi.load_dict({"type": "scene", "sensor": camera, "wall": wall, "ball": glass})
    traced_albedo, traced_normal = render_pairs.aux_buffers(scene, 16)
    aov_albedo, aov_normal = render_pairs.aov_buffers(scene, 16, seed=7)
    centre, corner = (slice(6, 10), slice(6, 10)), (slice(0, 2), slice(0, 2))  # the ball fills the middle of the frame
    assert traced_albedo[centre].mean() > 0.3 and aov_albedo[centre].max() < 0.01
    assert np.allclose(aov_albedo[corner], 0.5, atol=0.01) and np.allclose(traced_albedo[corner], 0.5, atol=0.05)
    assert np.allclose(aov_normal[corner], traced_normal[corner], atol=0.01)  # the wall's normal in both
    assert aov_albedo.shape == aov_normal.shape == (16, 16, 3)


def test_a_shots_own_buffers_follow_its_colour_samples_where_a_pixel_sees_two_surfaces():
    # At 1 spp each pixel of the shot sees one surface: its buffers must see the same one, as a
    # renderer's do, where the scene's clean buffers (32 paths of their own) mix both at an edge.
    sys.path.insert(0, str(REPO / "tools"))
    import mitsuba as mi
    import render_pairs

    render_pairs.use_llvm_variant()
    T = mi.ScalarTransform4f
    camera = render_pairs._camera(16, 40, T().look_at(origin=[0, 0, 4], target=[0, 0, 0], up=[0, 1, 0]))
    lamp = {"type": "sphere", "emitter": {"type": "area", "radiance": {"type": "rgb", "value": [1, 1, 1]}}}  # albedo 0.5
    wall = {"type": "rectangle", "to_world": T().translate([0, 0, -5]).scale(20)}
    wall["bsdf"] = {"type": "diffuse", "reflectance": {"type": "rgb", "value": [0.9, 0.9, 0.9]}}
    scene = mi.load_dict({"type": "scene", "integrator": {"type": "path"}, "sensor": camera, "lamp": lamp, "wall": wall})
    colour = render_pairs.render(scene, 1, seed=3)
    albedo, _ = render_pairs.shot_buffers(scene, 1, seed=3)
    on_lamp = colour.mean(-1) > 0.5  # the lamp is 1, the wall it lights below 0.05
    assert 0 < on_lamp.mean() < 1
    assert np.array_equal(on_lamp, albedo.mean(-1) < 0.7)  # 0.5 on the lamp, 0.9 on the wall, pixel for pixel
    clean, _ = render_pairs.aux_buffers(scene, 16)
    assert ((clean.mean(-1) > 0.55) & (clean.mean(-1) < 0.85)).any()  # edge pixels mix the two


def test_the_buffer_bench_denoises_each_scene_with_the_folders_buffers_the_shots_own_and_mitsubas(tmp_path):
    command = [sys.executable, str(REPO / "tools" / "render_pairs.py"), str(tmp_path), "--scenes", "1", "--size", "16"]
    result = subprocess.run([*command, "--spp", "2", "--reference-spp", "16"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    sys.path.insert(0, str(REPO / "bench"))
    import mc_benchmark
    import mc_buffers

    mc_buffers.render_pairs.use_llvm_variant()
    (case,) = mc_benchmark.render_cases(tmp_path)
    entry = json.loads((tmp_path / "manifest.json").read_text())["scenes"][case.name]
    sets = mc_buffers.buffer_sets(case, entry, {})
    assert list(sets) == list(mc_buffers.BUFFERS) and sets["clean"] is case
    for name in ("the shot's own", "Mitsuba AOV"):
        assert sets[name].albedo.shape == case.albedo.shape and not np.array_equal(sets[name].albedo, case.albedo)
        assert np.array_equal(sets[name].noisy, case.noisy)  # the colour stays as rendered


def test_shot_buffers_gives_each_shot_of_a_folder_its_own_buffers_beside_links_to_its_renders(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "own"
    render = [sys.executable, str(REPO / "tools" / "render_pairs.py"), str(src), "--scenes", "1", "--size", "16", "--spp", "2"]
    assert subprocess.run(render, capture_output=True, text=True, timeout=600).returncode == 0
    command = [sys.executable, str(REPO / "tools" / "shot_buffers.py"), str(src), str(dst)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert (dst / "a" / "scene000000.exr").resolve() == (src / "a" / "scene000000.exr").resolve()
    own = {shot: read_image(dst / shot / "scene000000.albedo.exr").pixels for shot in ("a", "b")}
    clean = read_image(src / "a" / "scene000000.albedo.exr").pixels
    assert not np.array_equal(own["a"], own["b"]) and not np.array_equal(own["a"], clean)  # each shot's samples
    assert np.abs(own["a"] - clean).mean() < 0.1  # the same surfaces, seen through 2 samples instead of 32
    assert [a.name for a, _ in match_pairs(dst / "a", dst / "b")] == ["scene000000.exr"]
    assert json.loads((dst / "manifest.json").read_text())["commands"][-1].startswith("python tools/shot_buffers.py")
    # Run again, it finds every shot done and writes nothing.
    before = (dst / "b" / "scene000000.normal.exr").stat().st_mtime_ns
    assert subprocess.run(command, capture_output=True, text=True, timeout=600).stdout == ""
    assert (dst / "b" / "scene000000.normal.exr").stat().st_mtime_ns == before


def test_shot_buffers_with_the_aov_convention_writes_what_mitsubas_aov_integrator_gives_each_shot(tmp_path):
    sys.path.insert(0, str(REPO / "tools"))
    import render_pairs

    src, dst = tmp_path / "src", tmp_path / "aov"
    render = [sys.executable, str(REPO / "tools" / "render_pairs.py"), str(src), "--scenes", "1", "--size", "16", "--spp", "2"]
    assert subprocess.run(render, capture_output=True, text=True, timeout=600).returncode == 0
    command = [sys.executable, str(REPO / "tools" / "shot_buffers.py"), str(src), str(dst), "--convention", "aov"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    render_pairs.use_llvm_variant()
    entry = json.loads((src / "manifest.json").read_text())["scenes"]["scene000000"]
    scene, _ = render_pairs.load_scene(entry["seed"], 16, entry["family"])
    for shot, seed, spp in render_pairs.shots(entry["seed"], entry["spp"]):
        albedo, normal = render_pairs.aov_buffers(scene, spp, seed)
        assert np.allclose(read_image(dst / shot / "scene000000.albedo.exr").pixels, albedo, atol=1e-3)
        assert np.allclose(read_image(dst / shot / "scene000000.normal.exr").pixels, normal, atol=1e-3)


def test_the_training_mix_links_each_scene_once_per_kind_of_buffer_all_through_the_prefilter(tmp_path):
    sys.path.insert(0, str(REPO / "tools"))
    import training_mix

    mix = (
        training_mix.RenderSet("hi", scenes=1, seed=70, spp="8", size=16, buffers=("clean", "own")),
        training_mix.RenderSet("lo", scenes=2, seed=80, spp="1-2", size=16),
    )
    for render_set in mix:
        training_mix.build(render_set, tmp_path)
    out = tmp_path / "mix"
    assert training_mix.link_mix(mix, tmp_path, out) == 1 * 2 + 2 * 3
    names = [a.name for a, _ in match_pairs(out / "a", out / "b")]
    assert names[:2] == ["hi-own_scene000070.exr", "hi_scene000070.exr"]
    assert names[-1] == "lo_scene000081.exr"  # the last set by name is the one `restore train` holds out
    # Each link reaches the prefilter's buffers beside the render as it was traced.
    link = out / "a" / "lo-aov_scene000080.exr"
    assert link.resolve() == (tmp_path / "lo" / "a" / "scene000080.exr").resolve()
    assert link.with_name("lo-aov_scene000080.albedo.exr").resolve() == tmp_path / "lo-aov-pf" / "a" / "scene000080.albedo.exr"
    # Linking again adds nothing; building again renders nothing.
    assert training_mix.link_mix(mix, tmp_path, out) == 8
    before = (tmp_path / "lo" / "a" / "scene000080.exr").stat().st_mtime_ns
    training_mix.build(mix[1], tmp_path)
    assert (tmp_path / "lo" / "a" / "scene000080.exr").stat().st_mtime_ns == before


def test_the_training_mix_never_reuses_a_seed_of_another_set():
    sys.path.insert(0, str(REPO / "tools"))
    import training_mix

    # Scenes are seed, seed + 1, ...: overlapping ranges would train twice on a scene, or on a test one.
    ranges = sorted((s.seed, s.seed + s.scenes) for s in training_mix.MIX)
    assert all(end <= start for (_, end), (start, _) in itertools.pairwise(ranges))
    reserved = (100000, 200000, 300000, 310000, 320000, 400000, 500000)  # test, finetune and dev renders
    assert not any(start < seed + 100 and seed < end for start, end in ranges for seed in reserved)
    assert training_mix.MIX[-1].name == max(s.name for s in training_mix.MIX)
