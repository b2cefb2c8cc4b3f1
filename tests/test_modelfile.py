"""Model files: safetensors with everything needed to rebuild the network; pickles refused."""

import json
import os
import pickle
import stat

import pytest
import torch
from safetensors.torch import save_file

import restore
from restore.archs import create
from restore.modelfile import ModelFileError, ModelInfo, load_model_file, read_info, save_model_file
from restore.zoo import bundled_models, sha256_of


def info_for(network, name="tiny", task="denoise"):
    return ModelInfo(
        name=name,
        architecture=network.architecture,
        config=network.config_dict(),
        task=task,
        scales=list(network.scales),
        noise="gaussian:25",
        channels=network.in_channels,
        training={"steps": 2, "data": "synthetic"},
    )


@pytest.mark.parametrize("variant", ["n2n_unet", "edsr_baseline_x3", "mdsr_baseline", "mnist_dae", "mnist_upscaler"])
def test_a_model_file_rebuilds_the_same_network_from_the_file_alone(tmp_path, variant):
    torch.manual_seed(0)
    network = create(variant).eval()
    path = tmp_path / "model.safetensors"
    save_model_file(path, network, info_for(network, task="upscale" if network.scale > 1 else "denoise"))
    rebuilt, info = load_model_file(path)
    assert type(rebuilt) is type(network) and rebuilt.config_dict() == network.config_dict()
    for key, value in network.state_dict().items():
        assert torch.equal(rebuilt.state_dict()[key], value)
    assert info.training == {"steps": 2, "data": "synthetic"}


@pytest.mark.defect(15)
def test_metadata_asking_for_a_huge_network_is_refused_before_allocating_it(tmp_path):
    # 200 blocks of 20,000 features would be 1.46 trillion parameters (5.8 TB): checked on paper first.
    network = create("edsr_baseline_x2")
    info = info_for(network, task="upscale")
    info.config = {**info.config, "n_feats": 20_000, "n_resblocks": 200}
    path = tmp_path / "huge.safetensors"
    save_file({"w": torch.zeros(1)}, str(path), metadata=info.to_metadata())
    with pytest.raises(ModelFileError, match="asks for 1,458,009,200,003 parameters"):
        load_model_file(path)


@pytest.mark.defect(7)
def test_a_model_with_nan_or_infinite_weights_is_refused_at_load(tmp_path):
    # Such a network turns every image black (NaN); a run must not write that with success.
    network = create("mnist_upscaler").eval()
    with torch.no_grad():
        next(network.parameters()).view(-1)[:3] = torch.tensor([float("nan"), float("inf"), 1.0])
    path = tmp_path / "broken.safetensors"
    save_model_file(path, network, info_for(network, task="upscale"))
    with pytest.raises(ModelFileError, match="2 weights are NaN or infinite"):
        load_model_file(path)


def test_metadata_names_format_architecture_config_task_and_ranges(tmp_path):
    network = create("edsr_baseline_x2")
    path = tmp_path / "m.safetensors"
    save_model_file(path, network, info_for(network, task="upscale"))
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    assert meta["format"] == "restore-model" and meta["format_version"] == "1"
    assert meta["architecture"] == "edsr" and json.loads(meta["config"])["scale"] == 2
    assert meta["task"] == "upscale" and json.loads(meta["scales"]) == [2]
    assert json.loads(meta["value_range"]) == [0.0, 1.0] and meta["transfer"] == "srgb"
    assert read_info(path).noise == "gaussian:25"


@pytest.mark.parametrize("suffix", [".pth", ".pt", ".ckpt"])
def test_pickled_checkpoints_are_refused_without_being_opened(tmp_path, suffix):
    path = tmp_path / f"model{suffix}"
    # A pickle that would run code if unpickled: the loader must never get that far.
    path.write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    with pytest.raises(ModelFileError, match="pickled"):
        restore.load(path)


def test_a_plain_safetensors_file_without_our_metadata_is_refused(tmp_path):
    path = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(ModelFileError, match="not a restore model"):
        load_model_file(path)


def test_garbage_and_missing_files_give_one_line_errors(tmp_path):
    garbage = tmp_path / "junk.safetensors"
    garbage.write_bytes(b"\x00\x01 definitely not safetensors")
    for path in (garbage, tmp_path / "missing.safetensors"):
        with pytest.raises(ModelFileError) as err:
            load_model_file(path)
        assert "\n" not in str(err.value) and path.name in str(err.value)


def test_unknown_model_name_lists_the_bundled_ones():
    with pytest.raises(ModelFileError, match="unknown model 'no-such-model'"):
        restore.load("no-such-model")


def test_every_bundled_model_matches_its_registered_sha256_and_loads():
    models = bundled_models()
    assert {"n2n-gaussian", "edsr-x2", "mnist-dae"} <= set(models)
    for name, entry in models.items():
        assert sha256_of(entry.file) == entry.sha256
        loaded = restore.load(name)
        assert loaded.info.name == name and loaded.info.task == entry.task


def test_an_altered_bundled_file_fails_its_checksum(tmp_path, monkeypatch):
    import restore.zoo as zoo

    entry = zoo.bundled_models()["mnist-dae"]
    copy = tmp_path / entry.file.name
    data = bytearray(entry.file.read_bytes())
    data[-1] ^= 0xFF
    copy.write_bytes(bytes(data))
    monkeypatch.setitem(zoo.bundled_models(), "mnist-dae", zoo.BundledModel("mnist-dae", copy, entry.sha256, entry.task, ""))
    with pytest.raises(ModelFileError, match="sha256"):
        restore.load("mnist-dae")


def test_a_saved_model_file_gets_the_usual_permissions_of_a_new_file(tmp_path):
    path = tmp_path / "m.safetensors"
    network = create("mnist_upscaler")
    save_model_file(path, network, info_for(network))
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


@pytest.mark.defect(2, 4)
def test_a_model_file_is_replaced_only_when_asked_and_then_keeps_its_permissions(tmp_path):
    path = tmp_path / "m.safetensors"
    network = create("mnist_dae")
    save_model_file(path, network, info_for(network))
    before = path.read_bytes()
    with pytest.raises(ModelFileError, match="file exists"):
        save_model_file(path, network, info_for(network, name="other"))
    assert path.read_bytes() == before
    path.chmod(0o600)
    save_model_file(path, network, info_for(network, name="other"), overwrite=True)
    assert read_info(path).name == "other" and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]  # no temporary left


@pytest.mark.parametrize(
    ("variant", "task", "says"),
    [
        ("edsr_baseline_x2", "denoise", "its metadata says denoise, but its edsr network upscales x2"),
        ("mnist_dae", "upscale", "its metadata says upscale, but its mlp-autoencoder network keeps the image size"),
    ],
)
@pytest.mark.defect(10)
def test_metadata_whose_task_contradicts_the_network_is_refused(tmp_path, variant, task, says):
    network = create(variant)
    path = tmp_path / "m.safetensors"
    save_model_file(path, network, info_for(network, task=task))
    with pytest.raises(ModelFileError, match=says):
        load_model_file(path)


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"scales": [3]}, r"its metadata says scales \[3\], but its network has \[2\]"),
        ({"channels": 1}, "its metadata says 1 channels, but its network outputs 3"),
        ({"aux": ["albedo", "normal"]}, "its network takes 3 input channels, fewer than 3 colour channels and the albedo"),
    ],
)
def test_metadata_that_the_network_contradicts_is_refused_so_what_is_written_is_read(tmp_path, change, says):
    network = create("edsr_baseline_x2")
    info = info_for(network, task="upscale")
    for key, value in change.items():
        setattr(info, key, value)
    save_model_file(tmp_path / "m.safetensors", network, info)
    with pytest.raises(ModelFileError, match=says):
        load_model_file(tmp_path / "m.safetensors")
