"""Monte Carlo render data from a real renderer (Mitsuba 3): procedural scenes rendered to pairs
of independent low-spp images plus albedo and normal buffers, and high-spp references for
validation and tests.

    python tools/render_pairs.py data/mc-train --scenes 200 --size 128 --spp 1-64
    python tools/render_pairs.py data/mc-test --scenes 20 --seed 100000 --spp 4 16 --reference-spp 2048
    python tools/render_pairs.py data/caustics --family caustics --scenes 20 --seed 200000 --spp 4-16
    python tools/render_pairs.py data/mc-train --family interior --scenes 400 --seed 700000 --spp 1-64
    python tools/render_pairs.py data/mc-train-256 --scenes 200 --spp 1-64 --target-spp 256

For each scene NAME (and each spp given):

    OUT/a/NAME.exr, OUT/b/NAME.exr        two renders with independent seeds (linear RGB, float32);
                                          with --target-spp, b has that many spp: a noisy target
                                          of lower variance, for `restore train --one-way`
    OUT/a/NAME.albedo.exr, .normal.exr    the auxiliary buffers, also copied beside b/NAME.exr
    OUT/reference/NAME.exr                with --reference-spp: the converged image (tests only)
    OUT/manifest.json                     the commands that made the folder; every scene's
                                          parameters, spp, seeds and render times

This is the naming convention `restore finetune --loss hdr` and `restore denoise --albedo
--normal` follow: a buffer sits beside its colour image as NAME.albedo.EXT and NAME.normal.EXT.

Scenes: a floor (plain or checkerboard) and sometimes a back wall; 3-7 spheres, cubes and
cylinders in diffuse, textured, glossy plastic, rough or polished metal and glass; one or two
area lights and sometimes a dim environment; a random camera. Glass near a light over a diffuse
floor makes caustics, whose low-spp renders are full of fireflies. `--family caustics` makes
another family of scenes (a floor and a back wall, small lights, mostly glass: caustics
everywhere), the kind a renderer's user would finetune a denoiser on. `--family interior` makes
closed rooms (four walls of random colours, a ceiling with one or two lights on it, sometimes in
view, the camera inside): light that reaches most pixels has bounced off a wall first, as in
an architectural interior or the Cornell box. `--family showroom` makes product shots: metals
and glossy plastics seen from close by under an HDR environment map, often with a softbox in
view. The box pixel filter keeps
the noise of neighbouring pixels independent (the default Gaussian filter would correlate it).

Auxiliary buffers follow Intel Open Image Denoise's advice: through glass and mirrors
(delta BSDFs) the path continues to the first diffuse or glossy surface, whose albedo (its
directional reflectance, estimated by sampling the BSDF, so rough metals get their reflectance
and not 0) and shading normal are recorded, weighted by the specular bounces' colour.

Needs the render extra (`pip install -e '.[render]'`) and LLVM 16 or newer for Mitsuba's
vectorised llvm_ad_rgb variant (about 1.8x faster than scalar_rgb, and the auxiliary buffers
are traced with it): `apt-get install libllvm19`; a system copy is found, or set
DRJIT_LIBLLVM_PATH.
"""

from __future__ import annotations

import argparse
import functools
import glob
import json
import math
import os
import random
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from restore.io.images import Image, write_image  # noqa: E402

METALS = ("Au", "Cu", "Al", "Ag", "Cr")
SHAPES = ("sphere", "cube", "cylinder")


def use_llvm_variant() -> str:
    """Switch Mitsuba to its vectorised LLVM variant (the auxiliary buffers need it).

    Dr.Jit reads DRJIT_LIBLLVM_PATH when it starts; when unset, a system LLVM 16-19 is looked
    for (Debian's default LLVM 15 aborts at the first render with Mitsuba 3.9).
    """
    if not os.environ.get("DRJIT_LIBLLVM_PATH"):
        found = sorted(glob.glob("/usr/lib/*/libLLVM-1[6-9].so") + glob.glob("/usr/lib/llvm-1[6-9]/lib/libLLVM*.so"))
        if found:
            os.environ["DRJIT_LIBLLVM_PATH"] = found[-1]
    import mitsuba as mi

    try:
        mi.set_variant("llvm_ad_rgb")
    except Exception as err:  # Dr.Jit raises several types when LLVM cannot be loaded
        hint = "apt-get install libllvm19, or set DRJIT_LIBLLVM_PATH"
        raise SystemExit(f"render_pairs needs LLVM 16 or newer ({hint}): {err}") from None
    return mi.variant()


def rgb(value: list[float]) -> dict[str, Any]:
    return {"type": "rgb", "value": value}


def random_colour(rng: random.Random, low: float = 0.05, high: float = 0.9) -> list[float]:
    return [round(rng.uniform(low, high), 3) for _ in range(3)]


@dataclass(frozen=True)
class Family:
    """The knobs that make one family of scenes differ from another."""

    material_weights: tuple[int, ...]  # diffuse, texture, plastic, metal, mirror, glass
    wall_probability: float
    caustic_probability: float  # a glass sphere between a light and the floor
    light_area: tuple[float, float]  # smaller lights: brighter, harder caustics
    sky_probability: float
    room: bool = False  # a closed room lit from its ceiling, the camera inside: light arrives mostly by bounces
    camera_distance: tuple[float, float] = (4.0, 7.0)  # from the scene's middle; closer: objects fill the frame
    # An HDR environment map (sky, ground, small bright windows) instead of a constant sky: what
    # glossy metals reflect in a product shot. Drawn only where positive, like the next knob, so
    # that the families without it make the scenes they always made.
    environment_probability: float = 0.0
    light_in_view_probability: float = 0.0  # a softbox behind the objects, facing the camera: an emitter in view


FAMILIES = {
    # Everything, in moderation: the training scenes of n2n-mc.
    "mixed": Family((3, 2, 2, 2, 1, 2), 0.5, 0.5, (0.2, 1.5), 0.6),
    # A renderer's hard case: small lights through glass over a floor and a back wall, no sky.
    "caustics": Family((2, 1, 1, 1, 1, 5), 1.0, 1.0, (0.15, 0.4), 0.0),
    # What interiors are: coloured walls, a ceiling light sometimes in view, everything else lit
    # indirectly (the Cornell box's kind of light, in rooms of random size, colour and furniture).
    "interior": Family((4, 2, 2, 1, 1, 1), 1.0, 0.2, (0.25, 0.8), 0.0, room=True),
    # Product shots: rough and polished metals and glossy plastics seen from close by, reflecting
    # an environment map, often with a softbox in view (the test scenes' worst case is a frame
    # filled by rough metal; the other families light metals with a constant sky at most).
    "showroom": Family(
        material_weights=(1, 1, 3, 6, 2, 1),
        wall_probability=0.3,
        caustic_probability=0.1,
        light_area=(0.3, 1.2),
        sky_probability=0.0,
        camera_distance=(3.0, 5.0),
        environment_probability=0.9,
        light_in_view_probability=0.4,
    ),
}
MATERIALS = ("diffuse", "texture", "plastic", "metal", "mirror", "glass")


def random_material(rng: random.Random, family: Family = FAMILIES["mixed"]) -> dict[str, Any]:
    """A random BSDF: diffuse, textured, glossy plastic, rough or polished metal, or glass."""
    kind = rng.choices(MATERIALS, family.material_weights)[0]
    if kind == "diffuse":
        return {"type": "diffuse", "reflectance": rgb(random_colour(rng))}
    if kind == "texture":
        checker = {"type": "checkerboard", "color0": rgb(random_colour(rng)), "color1": rgb(random_colour(rng))}
        return {"type": "diffuse", "reflectance": {**checker, "to_uv": _scale_uv(rng.choice([2, 4, 8]))}}
    if kind == "plastic":
        return {
            "type": "roughplastic",
            "distribution": "ggx",
            "alpha": round(rng.uniform(0.05, 0.4), 3),
            "diffuse_reflectance": rgb(random_colour(rng)),
        }
    if kind == "metal":
        return {"type": "roughconductor", "material": rng.choice(METALS), "alpha": round(rng.uniform(0.05, 0.5), 3)}
    if kind == "mirror":
        return {"type": "conductor", "material": rng.choice(METALS)}
    return {"type": "dielectric", "int_ior": round(rng.uniform(1.3, 1.8), 3)}


def _scale_uv(factor: float) -> Any:
    import mitsuba as mi

    return mi.ScalarTransform4f().scale([factor, factor, 1])


def scene_description(seed: int, size: int, family: Family = FAMILIES["mixed"]) -> dict[str, Any]:
    """The Mitsuba scene dictionary of scene `seed` of a family (fully determined by both)."""
    import mitsuba as mi

    T = mi.ScalarTransform4f
    rng = random.Random(seed)
    scene: dict[str, Any] = {"type": "scene", "integrator": {"type": "path", "max_depth": 12, "rr_depth": 5}}
    if family.room:
        _build_room(scene, rng, size, family)
        return _furnish(scene, rng, family)
    distance, azimuth, height = rng.uniform(*family.camera_distance), rng.uniform(0, 2 * math.pi), rng.uniform(0.8, 3.5)
    origin = [distance * math.cos(azimuth), height, distance * math.sin(azimuth)]
    fov = rng.uniform(30, 50)
    scene["sensor"] = _camera(size, fov, T().look_at(origin=origin, target=[0, rng.uniform(0.2, 0.8), 0], up=[0, 1, 0]))
    floor = (
        random_material(rng, family)
        if rng.random() < 0.3
        else {"type": "diffuse", "reflectance": rgb(random_colour(rng, 0.2, 0.8))}
    )
    if floor["type"] == "dielectric":
        floor = {"type": "diffuse", "reflectance": rgb(random_colour(rng, 0.2, 0.8))}
    scene["floor"] = {"type": "rectangle", "to_world": T().rotate([1, 0, 0], -90).scale(20), "bsdf": floor}
    if rng.random() < family.wall_probability:
        wall = T().translate([-distance * math.cos(azimuth) * 0.8, 0, -distance * math.sin(azimuth) * 0.8])
        angle = math.degrees(math.atan2(math.cos(azimuth), math.sin(azimuth)))
        scene["wall"] = {
            "type": "rectangle",
            "to_world": wall.rotate([0, 1, 0], angle).scale(10),
            "bsdf": {"type": "diffuse", "reflectance": rgb(random_colour(rng, 0.2, 0.8))},
        }
    _furnish(scene, rng, family)
    for i in range(rng.randint(1, 2)):
        area = rng.uniform(*family.light_area)
        position = [rng.uniform(-3, 3), rng.uniform(2.5, 5.0), rng.uniform(-3, 3)]
        scene[f"light{i}"] = {
            "type": "rectangle",
            "to_world": T().look_at(origin=position, target=[0, 0, 0], up=[0, 1, 0]).scale(area),
            "emitter": {"type": "area", "radiance": _light_radiance(rng, area)},
        }
    if rng.random() < family.sky_probability:
        scene["sky"] = {"type": "constant", "radiance": rgb(random_colour(rng, 0.02, 0.4))}
    if family.environment_probability > 0 and rng.random() < family.environment_probability:
        scene["sky"] = _environment(rng)
    if family.light_in_view_probability > 0 and rng.random() < family.light_in_view_probability:
        behind = [-0.6 * origin[0], rng.uniform(0.8, 2.0), -0.6 * origin[2]]  # across the middle from the camera
        area = rng.uniform(*family.light_area)
        scene["softbox"] = {
            "type": "rectangle",
            "to_world": T().look_at(origin=behind, target=origin, up=[0, 1, 0]).scale(area),
            "emitter": {"type": "area", "radiance": _light_radiance(rng, area)},
        }
    return scene


def load_scene(seed: int, size: int, family: str) -> tuple[Any, list[dict[str, Any]]]:
    """Scene `seed` of a family (a FAMILIES name) loaded into Mitsuba, and its objects as the manifest lists them."""
    import mitsuba as mi

    description = scene_description(seed, size, FAMILIES[family])
    objects = description.pop("_objects")
    return mi.load_dict(description), objects


def _environment(rng: random.Random, height: int = 64) -> dict[str, Any]:
    """A latitude-longitude HDR environment: a sky brightening towards the horizon over a darker
    ground, and one to three small bright windows (or a sun) above the horizon."""
    import mitsuba as mi

    width = 2 * height
    elevation = np.linspace(1, -1, height, dtype=np.float32)[:, None, None]  # row 0 looks straight up
    sky, ground = np.array(random_colour(rng, 0.2, 1.2)), np.array(random_colour(rng, 0.03, 0.3))
    image = np.where(elevation > 0, sky * (0.4 + 0.6 * (1 - elevation)), ground) * np.ones((1, width, 1))
    for _ in range(rng.randint(1, 3)):
        rows, columns = rng.randint(2, 8), rng.randint(2, 12)
        top, left = rng.randint(4, height // 2 - rows), rng.randint(0, width - columns)
        image[top : top + rows, left : left + columns] = rng.uniform(5, 60) * np.array([1.0, 0.95, 0.85])
    return {"type": "envmap", "bitmap": mi.Bitmap(image.astype(np.float32))}


def _camera(size: int, fov: float, to_world: Any) -> dict[str, Any]:
    """A square perspective camera with a box pixel filter, which keeps neighbouring pixels' noise independent."""
    return {
        "type": "perspective",
        "fov": fov,
        "to_world": to_world,
        "film": {"type": "hdrfilm", "width": size, "height": size, "rfilter": {"type": "box"}, "pixel_format": "rgb"},
        "sampler": {"type": "independent", "sample_count": 4},
    }


def _light_radiance(rng: random.Random, area: float) -> dict[str, Any]:
    """A warm white whose power, not radiance, is drawn: a smaller light is brighter."""
    return rgb([round(rng.uniform(3, 40) / area**2 * c, 3) for c in (1.0, 0.95, 0.85)])


def _build_room(scene: dict[str, Any], rng: random.Random, size: int, family: Family) -> None:
    """Add the camera, floor, four walls, ceiling and ceiling lights of a closed room to `scene`."""
    import mitsuba as mi

    T = mi.ScalarTransform4f
    half, height = rng.uniform(2.6, 4.0), rng.uniform(2.5, 4.0)  # the room spans [-half, half] in x and z
    azimuth = rng.uniform(0, 2 * math.pi)  # which wall the camera stands before
    origin = [0.92 * half * math.sin(azimuth), rng.uniform(0.3, 0.75) * height, 0.92 * half * math.cos(azimuth)]
    target = [rng.uniform(-0.8, 0.8), rng.uniform(0.3, 1.6), rng.uniform(-0.8, 0.8)]
    scene["sensor"] = _camera(size, rng.uniform(40, 65), T().look_at(origin=origin, target=target, up=[0, 1, 0]))
    floor = (
        {"type": "diffuse", "reflectance": rgb(random_colour(rng, 0.2, 0.8))}
        if rng.random() < 0.6
        else random_material(rng, FAMILIES["mixed"])
    )
    if floor["type"] == "dielectric":
        floor = {"type": "diffuse", "reflectance": rgb(random_colour(rng, 0.2, 0.8))}
    scene["floor"] = {"type": "rectangle", "to_world": T().rotate([1, 0, 0], -90).scale(half), "bsdf": floor}
    # Diffuse BSDFs are one-sided: every surface's normal points into the room.
    middle, span = height / 2, [half, height / 2, 1]
    surfaces = {
        "wall_back": T().translate([0, middle, -half]).scale(span),
        "wall_front": T().translate([0, middle, half]).rotate([0, 1, 0], 180).scale(span),
        "wall_left": T().translate([-half, middle, 0]).rotate([0, 1, 0], 90).scale(span),
        "wall_right": T().translate([half, middle, 0]).rotate([0, 1, 0], -90).scale(span),
        "ceiling": T().translate([0, height, 0]).rotate([1, 0, 0], 90).scale(half),
    }
    for name, to_world in surfaces.items():
        scene[name] = {
            "type": "rectangle",
            "to_world": to_world,
            "bsdf": {"type": "diffuse", "reflectance": rgb(random_colour(rng, 0.1, 0.85))},
        }
    for i in range(rng.randint(1, 2)):
        area = rng.uniform(*family.light_area)
        place = T().translate([rng.uniform(-0.5, 0.5) * half, height - 0.01, rng.uniform(-0.5, 0.5) * half])
        scene[f"light{i}"] = {
            "type": "rectangle",
            "to_world": place.rotate([1, 0, 0], 90).scale(area),
            "emitter": {"type": "area", "radiance": _light_radiance(rng, area)},
        }


def _furnish(scene: dict[str, Any], rng: random.Random, family: Family) -> dict[str, Any]:
    """Add 3-7 random objects and sometimes a glass sphere for caustics to `scene`; list them in `_objects`."""
    import mitsuba as mi

    T = mi.ScalarTransform4f
    objects = []
    for i in range(rng.randint(3, 7)):
        shape, scale = rng.choice(SHAPES), rng.uniform(0.25, 0.8)
        x, z = rng.uniform(-2.0, 2.0), rng.uniform(-2.0, 2.0)
        place = T().translate([x, scale, z]).rotate([0, 1, 0], rng.uniform(0, 360))
        if shape == "cylinder":
            place = T().translate([x, 0, z]).rotate([1, 0, 0], -90).scale([scale, scale, 2 * scale])
        scene[f"object{i}"] = {"type": shape, "to_world": place.scale(scale) if shape != "cylinder" else place}
        scene[f"object{i}"]["bsdf"] = material = random_material(rng, family)
        objects.append({"shape": shape, "bsdf": material["type"], "at": [round(x, 2), round(z, 2)]})
    if rng.random() < family.caustic_probability:
        # A glass sphere between a light and the floor: caustics.
        x, z = rng.uniform(-1.5, 1.5), rng.uniform(-1.5, 1.5)
        scene["caustic"] = {
            "type": "sphere",
            "to_world": T().translate([x, 0.5, z]).scale(0.5),
            "bsdf": {"type": "dielectric", "int_ior": 1.5},
        }
        objects.append({"shape": "sphere", "bsdf": "dielectric (caustic)", "at": [round(x, 2), round(z, 2)]})
    scene["_objects"] = objects
    return scene


def render(scene: Any, spp: int, seed: int, passes_of: int = 256, integrator: Any = None) -> np.ndarray:
    """Mean of renders of at most `passes_of` spp each (bounded memory), H x W x C float32 (C = 3
    for the scene's own path tracer)."""
    import mitsuba as mi

    total, done, index = None, 0, 0
    while done < spp:
        count = min(passes_of, spp - done)
        image = np.array(mi.render(scene, spp=count, seed=seed * 1000 + index, integrator=integrator), dtype=np.float64)
        total = image * count if total is None else total + image * count
        done += count
        index += 1
    return (total / spp).astype(np.float32)


def shots(scene_seed: int, spp: int, target_spp: int = 0) -> tuple[tuple[str, int, int], ...]:
    """(folder, seed of `render`, spp) of a scene's two shots: a, and b (with `target_spp` where given)."""
    return (("a", 2 * scene_seed + 1, spp), ("b", 2 * scene_seed + 2, target_spp or spp))


MAX_BUFFER_BOUNCES = 8  # delta bounces a buffer's path follows before it gives up (black)


@functools.cache
def _buffer_tracer() -> Callable[..., tuple[Any, Any]]:
    """The traced loop of the buffers, made once (Mitsuba's variant must be set first)."""
    import drjit as dr

    @dr.syntax
    def trace(scene: Any, sampler: Any, ray: Any) -> tuple[Any, Any]:
        """Albedo and shading normal of the first non-delta surface along each ray (one lane a ray):
        through glass and mirrors the path goes on, weighted by the specular bounces' colour. The
        albedo is the directional one, the BSDF sample weight, so rough metals get their reflectance."""
        import drjit as dr  # dr.syntax compiles this function anew: its names must be its own or global
        import mitsuba as mi

        ray = mi.Ray3f(ray)
        throughput = mi.Color3f(1.0)
        albedo, normal = mi.Color3f(0.0), mi.Vector3f(0.0)
        active, depth = mi.Bool(True), mi.UInt32(0)
        context = mi.BSDFContext()
        while dr.hint(active & (depth < MAX_BUFFER_BOUNCES), label="buffers"):
            si = scene.ray_intersect(ray)
            hit = si.is_valid()
            bsdf = si.bsdf(ray)
            delta = mi.has_flag(bsdf.flags(), mi.BSDFFlags.Delta)
            surface = hit & ~delta
            _, weight = bsdf.sample(context, si, sampler.next_1d(), sampler.next_2d(), surface)
            albedo = dr.select(surface, throughput * weight, albedo)
            normal = dr.select(surface, si.sh_frame.n, normal)
            bounce, weight = bsdf.sample(context, si, sampler.next_1d(), sampler.next_2d(), hit & delta)
            throughput *= weight
            ray = si.spawn_ray(si.to_world(bounce.wo))
            active = hit & delta
            depth += 1
        return albedo, normal

    return trace


def aux_buffers(scene: Any, size: int, samples: int = 32, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """Clean albedo and normal (H x W x 3) for a scene's every shot: `samples` paths a pixel of their own."""
    import drjit as dr
    import mitsuba as mi

    sensor = scene.sensors()[0]
    count = size * size * samples
    pixel = dr.arange(mi.UInt32, count) // samples
    sampler = mi.load_dict({"type": "independent"})
    sampler.seed(seed, count)
    position = mi.Point2f(mi.Float(pixel % size), mi.Float(pixel // size))
    ray, _ = sensor.sample_ray(0.0, 0.5, (position + sampler.next_2d()) / size, mi.Point2f(0.5))
    albedo, normal = _buffer_tracer()(scene, sampler, ray)
    albedo_image = np.array(albedo, dtype=np.float32).T  # drjit gives channels first: 3 x N
    normal_image = np.array(normal, dtype=np.float32).T
    albedo_image = albedo_image.reshape(size, size, samples, 3).mean(2)
    normal_image = normal_image.reshape(size, size, samples, 3).mean(2)
    return _buffer_images(albedo_image, normal_image)


def shot_buffers(scene: Any, spp: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Albedo and normal (H x W x 3) of the shot `render(scene, spp, seed)`, traced along that shot's
    own camera samples (the same points in each pixel), as a renderer that writes its buffers beside
    the colour gives them: noisy where a pixel's samples see different surfaces (edges, through
    glass), and less so the more spp."""
    import mitsuba as mi

    buffers = render(scene, spp, seed, integrator=mi.load_dict({"type": _shot_buffer_integrator()}))
    return _buffer_images(buffers[..., -6:-3], buffers[..., -3:])


@functools.cache
def _shot_buffer_integrator() -> str:
    """Register, once, a Mitsuba integrator that returns black and the buffers of `_buffer_tracer`
    as its two AOVs; its name."""
    import mitsuba as mi

    class ShotBuffers(mi.SamplingIntegrator):
        def sample(self, scene: Any, sampler: Any, ray: Any, medium: Any = None, active: Any = True) -> tuple[Any, Any, list]:
            albedo, normal = _buffer_tracer()(scene, sampler, ray)
            return mi.Color3f(0.0), mi.Bool(True), [albedo.x, albedo.y, albedo.z, normal.x, normal.y, normal.z]

        def aov_names(self) -> list[str]:
            return ["albedo.R", "albedo.G", "albedo.B", "normal.X", "normal.Y", "normal.Z"]

    mi.register_integrator("shot_buffers", lambda props: ShotBuffers(props))
    return "shot_buffers"


def aov_buffers(scene: Any, spp: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Albedo and normal (H x W x 3) as Mitsuba's own `aov` integrator writes them beside the shot
    `render(scene, spp, seed)` (its camera samples): at the first surface hit, glass and metals
    included (black there, where `aux_buffers` follows the path on to the next surface and takes a
    metal's reflectance, as Open Image Denoise asks). Another renderer's convention, for
    bench/mc_buffers.py and for training a network not to trust it."""
    import mitsuba as mi

    integrator = mi.load_dict({"type": "aov", "aovs": "albedo:albedo,normal:sh_normal"})
    image = render(scene, spp, seed, integrator=integrator)
    return _buffer_images(image[..., :3], image[..., 3:])


def _buffer_images(albedo: np.ndarray, normal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixel means of albedo and normal as buffers are stored: albedo clipped to [0, 1], normals of unit
    length (0 where nothing was hit)."""
    length = np.linalg.norm(normal, axis=-1, keepdims=True)
    normal = np.where(length > 1e-6, normal / np.maximum(length, 1e-6), 0.0)
    return np.clip(albedo, 0.0, 1.0).astype(np.float32), normal.astype(np.float32)


def write_exr(path: Path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_image(path, Image(np.ascontiguousarray(pixels, dtype=np.float32), None, "f32", "linear"), overwrite=True)


def link_once(target: Path, link: Path) -> None:
    """`link` pointing at `target` (resolved), made once: folders derived from a render folder
    (tools/shot_buffers.py, tools/prefilter_buffers.py) link its renders instead of copying them."""
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.is_symlink():
        link.symlink_to(target.resolve())


def parse_spp(values: list[str]) -> list[tuple[int, int]]:
    """'4' -> (4, 4); '1-64' -> a range drawn per scene (log-uniform, powers of two)."""
    out = []
    for value in values:
        low, _, high = value.partition("-")
        out.append((int(low), int(high or low)))
    return out


def main() -> None:
    import mitsuba as mi

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--scenes", type=int, default=100)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--spp", nargs="+", default=["1-64"], help="spp of the pairs: N, or LOW-HIGH drawn per scene")
    parser.add_argument("--reference-spp", type=int, default=0, help="also render a reference with this many spp")
    parser.add_argument(
        "--target-spp", type=int, default=0, help="render the b shots with this many spp (noisy targets of lower variance)"
    )
    parser.add_argument("--seed", type=int, default=0, help="the first scene's seed (scenes are seed, seed + 1, ...)")
    parser.add_argument("--family", choices=sorted(FAMILIES), default="mixed", help="the kind of scene (see FAMILIES)")
    args = parser.parse_args()
    variant = use_llvm_variant()
    manifest_path = args.out / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    manifest.setdefault("renderer", {"mitsuba": mi.__version__, "variant": variant, "pixel_filter": "box"})
    commands = manifest.setdefault("commands", [])  # what made the folder, for the tables built on it
    command = shlex.join(["python", "tools/render_pairs.py", *sys.argv[1:]])
    if command not in commands:
        commands.append(command)
    scenes = manifest.setdefault("scenes", {})
    args.out.mkdir(parents=True, exist_ok=True)
    manifest_path.write_text(json.dumps(manifest, indent=1))
    for scene_seed in range(args.seed, args.seed + args.scenes):
        scene, objects = load_scene(scene_seed, args.size, args.family)
        rng = random.Random(scene_seed * 7919)
        albedo, normal = aux_buffers(scene, args.size)
        reference: np.ndarray | None = None  # one per scene, shared by its spp levels
        for low, high in parse_spp(args.spp):
            spp = low if low == high else 2 ** rng.randint(int(math.log2(low)), int(math.log2(high)))
            name = f"scene{scene_seed:06d}" + (f"_{spp}spp" if len(args.spp) > 1 else "")
            if name in scenes:
                continue  # already rendered: a killed run resumes
            timings = {}
            for shot, seed, shot_spp in shots(scene_seed, spp, args.target_spp):
                start = time.perf_counter()
                write_exr(args.out / shot / f"{name}.exr", render(scene, shot_spp, seed))
                timings[shot] = round(time.perf_counter() - start, 2)
                write_exr(args.out / shot / f"{name}.albedo.exr", albedo)
                write_exr(args.out / shot / f"{name}.normal.exr", normal)
            entry: dict[str, Any] = {"seed": scene_seed, "family": args.family, "spp": spp, "objects": objects}
            if args.target_spp:
                entry["target_spp"] = args.target_spp
            entry["seconds"] = timings
            if args.reference_spp:
                start = time.perf_counter()
                if reference is None:
                    reference = render(scene, args.reference_spp, 10**6 + scene_seed)
                write_exr(args.out / "reference" / f"{name}.exr", reference)
                entry["reference_spp"] = args.reference_spp
                entry["seconds"]["reference"] = round(time.perf_counter() - start, 2)
            scenes[name] = entry
            manifest_path.write_text(json.dumps(manifest, indent=1))
            print(f"{name}: {spp} spp, {len(objects)} objects, {timings}", flush=True)


if __name__ == "__main__":
    main()
