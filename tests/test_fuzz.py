"""Property tests (Hypothesis, fixed seed): whatever bytes, headers or option values arrive, the
reader gives an image or one ImageError line, and the command line exits 0, 1 or 2 with no
traceback or panic, never writing a file on failure and never touching its input."""

from __future__ import annotations

import ast
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import run, smooth_image, write_png
from restore.io.images import Image, ImageError, read_image, write_image

# derandomize: the same examples on every run, so CI is reproducible; the budget keeps the file short.
FIXED = settings(deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])

SIGNATURES = {
    ".png": b"\x89PNG\r\n\x1a\n",
    ".jpg": b"\xff\xd8\xff",
    ".webp": b"RIFF\0\0\0\0WEBP",
    ".tif": b"II*\0",
    ".exr": b"v/1\x01",
    ".pfm": b"PF\n",
    ".hdr": b"#?RADIANCE\n",
}


def read_or_refuse(data: bytes, suffix: str) -> None:
    """Read `data` as a file: an Image, or an ImageError of one line naming the file."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"fuzz{suffix}"
        path.write_bytes(data)
        try:
            image = read_image(path)
        except ImageError as err:
            assert "\n" not in str(err) and "fuzz" in str(err), str(err)
        else:
            assert isinstance(image, Image) and image.pixels.size > 0


@settings(FIXED, max_examples=500)
@given(suffix=st.sampled_from(sorted(SIGNATURES)), body=st.binary(max_size=400))
@pytest.mark.defect(14, 16, 23)
def test_random_bytes_behind_a_format_signature_are_refused_in_one_line(suffix: str, body: bytes) -> None:
    read_or_refuse(SIGNATURES[suffix] + body, suffix)


def valid_files() -> dict[str, bytes]:
    """One small valid file per writable format, to be damaged."""
    files = {}
    with tempfile.TemporaryDirectory() as folder:
        kinds = [
            (".png", "u16"),
            (".png", "u8"),
            (".jpg", "u8"),
            (".webp", "u8"),
            (".tif", "f32"),
            (".exr", "f16"),
            (".pfm", "f32"),
        ]
        for suffix, depth in kinds:
            path = Path(folder) / f"v{suffix}"
            transfer = "srgb" if depth.startswith("u") else "linear"
            write_image(path, Image(smooth_image(9, 7), None, depth, transfer), overwrite=True)
            files[f"{suffix}:{depth}"] = path.read_bytes()
    return files


VALID = valid_files()


@settings(FIXED, max_examples=500)
@given(
    kind=st.sampled_from(sorted(VALID)),
    edits=st.lists(st.tuples(st.integers(0, 255), st.integers(0, 255)), min_size=1, max_size=4),
    keep=st.one_of(st.none(), st.integers(0, 400)),
)
@pytest.mark.defect(14, 16, 23)
def test_damaged_headers_and_truncated_files_are_refused_in_one_line(
    kind: str, edits: list[tuple[int, int]], keep: int | None
) -> None:
    data = bytearray(VALID[kind])
    for position, value in edits:  # the first 256 bytes: signatures, headers, sizes, tables
        data[position % len(data)] = value
    read_or_refuse(bytes(data[:keep] if keep is not None else data), kind.split(":")[0])


OPTION_VALUES = {
    "--tile": st.sampled_from(["-1", "0", "1", "15", "16", "64", "99999999999999999999", "abc", "1e3"]),
    "--max-memory": st.sampled_from(["-1G", "0", "1", "2G", "1.5GB", "lots", "1e400G", "inf", "nanG"]),
    "--max-pixels": st.sampled_from(["0", "-5", "100", "1K", "400M", "x", "1e400", "nanM"]),
    "--bit-depth": st.sampled_from(["u8", "u16", "f16", "f32", "u12", ""]),
    "--precision": st.sampled_from(["auto", "fp32", "bf16", "fp16", "fp8"]),
    "--device": st.sampled_from(["cpu", "auto", "cuda:7", "tpu", ""]),
    "--shard": st.sampled_from(["0/1", "1/2", "2/2", "-1/3", "a/b", "3", "0/0"]),
}
UPSCALE_VALUES = {
    "--outscale": st.sampled_from(["1.5", "0", "-2", "nan", "inf", "1e-9", "abc"]),
    "--scale": st.sampled_from(["2", "3", "0", "-4", "17"]),
}


@pytest.fixture(scope="module")
def cli_input(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_png(tmp_path_factory.mktemp("fuzz") / "in.png", smooth_image(24, 20))


@settings(FIXED, max_examples=60)
@given(command=st.sampled_from(["denoise", "upscale"]), data=st.data())
@pytest.mark.defect(18, 19, 23)
def test_random_option_values_end_in_exit_0_1_or_2_without_a_traceback_or_a_stray_file(
    command: str, data: st.DataObject, cli_input: Path, tiny_models: dict[str, Path]
) -> None:
    values = {**OPTION_VALUES, **(UPSCALE_VALUES if command == "upscale" else {})}
    chosen = data.draw(st.lists(st.sampled_from(sorted(values)), max_size=3, unique=True))
    options = [item for name in chosen for item in (name, data.draw(values[name]))]
    model = tiny_models["upscaler" if command == "upscale" else "denoiser"]
    before = cli_input.read_bytes()
    with tempfile.TemporaryDirectory() as folder:
        target = Path(folder) / "out.png"
        result = run(command, str(cli_input), "-o", str(target), "--model", str(model), "-q", *options)
        code, printed = result.returncode, result.stdout + result.stderr
        assert code in (0, 1, 2), (code, printed)
        assert "Traceback" not in printed and "panicked" not in printed, printed
        shard = dict(zip(options[::2], options[1::2], strict=True)).get("--shard", "0/1")
        written = code == 0 and shard.startswith("0/")  # the one input is job 0: other shards have nothing to do
        assert sorted(p.name for p in Path(folder).iterdir()) == (["out.png"] if written else []), (code, printed)
    assert cli_input.read_bytes() == before


REPORTED_DEFECTS = range(1, 24)  # issue 21's bad-input report numbers its defects 1 to 23


def test_every_reported_defect_has_a_marked_test():
    """`pytest -m defect` is the report's corpus: each numbered defect is checked by a marked test."""
    marked: set[int] = set()
    for path in Path(__file__).parent.glob("test_*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and ast.unparse(node.func) == "pytest.mark.defect":
                marked |= {int(ast.literal_eval(arg)) for arg in node.args}
    assert sorted(set(REPORTED_DEFECTS) - marked) == []
