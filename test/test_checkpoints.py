"""Weights files: Meta's SAM2.1 format, the reference SAM-DAQ format, this project's
safetensors."""

import pytest
import torch
from conftest import retagged_weights, seeded

from rgbd_saliency_ros.model import (
    CheckpointError,
    SamDaq,
    SamDaqConfig,
    load_sam2_checkpoint,
    load_samdaq_weights,
    save_weights,
    weights_config,
)
from rgbd_saliency_ros.model.checkpoints import REFERENCE_UNUSED, map_reference_state_dict


class NotATensor:
    """Any class instance makes a checkpoint unloadable under weights_only=True."""

    def __reduce__(self):
        return (print, ("this would run on load",))


@pytest.fixture(scope="module")
def tiny():
    with seeded(1):
        return SamDaq(SamDaqConfig(input_size=128)).eval()


def test_project_format_round_trip(tiny, tmp_path):
    path = tmp_path / "w.safetensors"
    save_weights(tiny, path, extra_metadata={"depth_conversion": {"near_is_bright": False}})
    assert weights_config(path) == tiny.config
    with seeded(2):
        other = SamDaq(SamDaqConfig(input_size=128)).eval()
    key = "qtm.prompt_proj.weight"
    assert not torch.equal(other.state_dict()[key], tiny.state_dict()[key])
    metadata = load_samdaq_weights(other, path)
    assert metadata["depth_conversion"] == {"near_is_bright": False}
    for k, v in tiny.trained_state_dict().items():
        assert torch.equal(other.state_dict()[k], v), k
    rgb, depth = torch.randn(1, 3, 128, 128), torch.rand(1, 1, 128, 128)
    with torch.no_grad():
        other.trunk.load_state_dict(
            tiny.trunk.state_dict()
        )  # frozen parts come from SAM2, not the file
        other.neck.load_state_dict(tiny.neck.state_dict())
        other.prompt_encoder.load_state_dict(tiny.prompt_encoder.state_dict())
        a = tiny.step(rgb, depth, tiny.initial_tensor(1))
        b = other.step(rgb, depth, other.initial_tensor(1))
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_project_format_holds_only_trained_parameters(tiny, tmp_path):
    from safetensors.torch import load_file

    path = tmp_path / "w.safetensors"
    save_weights(tiny, path)
    keys = set(load_file(str(path)))
    assert keys == set(tiny.trained_state_dict())
    assert not any(k.startswith(("trunk.", "neck.", "prompt_encoder.")) for k in keys)
    assert "no_mem_embed" in keys  # trained by the reference (added to E every frame)


@pytest.mark.parametrize(
    "change", [{"input_size": 256}, {"backbone": "sam2.1_hiera_s"}, {"num_video_queries": 4}]
)
def test_project_format_refuses_another_configuration(tiny, tmp_path, change):
    path = tmp_path / "w.safetensors"
    save_weights(tiny, path)
    other = SamDaq(SamDaqConfig(**{**tiny.config.to_dict(), **change}))
    with pytest.raises(CheckpointError, match="another model configuration") as err:
        load_samdaq_weights(other, path)
    assert str(path) in str(err.value) and next(iter(change)) in str(err.value)


def test_pickled_objects_are_refused(tiny, tmp_path):
    path = tmp_path / "evil.pt"
    sd = {k: v for k, v in tiny.trained_state_dict().items()}
    sd["payload"] = NotATensor()
    torch.save(sd, path)
    with pytest.raises(CheckpointError, match="pickled Python objects") as err:
        load_samdaq_weights(tiny, path)
    assert str(path) in str(err.value)
    with pytest.raises(CheckpointError, match="pickled"):
        load_sam2_checkpoint(tiny, path)


def test_missing_file_and_garbage_file(tiny, tmp_path):
    with pytest.raises(CheckpointError, match="no such file"):
        load_samdaq_weights(tiny, tmp_path / "absent.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match=str(junk)):
        load_samdaq_weights(tiny, junk)


def test_sam2_checkpoint_missing_keys_are_named(tiny, tmp_path):
    sd = {"image_encoder.trunk." + k: v for k, v in tiny.trunk.state_dict().items()}
    path = tmp_path / "partial_sam2.pt"
    torch.save({"model": sd}, path)
    with pytest.raises(CheckpointError, match="missing keys: .*neck"):
        load_sam2_checkpoint(tiny, path)
    torch.save(sd, path)
    with pytest.raises(CheckpointError, match="not a SAM2 checkpoint"):
        load_sam2_checkpoint(tiny, path)


# ------------------------------------------------------------------ the reference's own files

FIXTURE = ("fixtures", "samdaq_parity")


def test_reference_keys_all_mapped_or_listed_unused(shared_path):
    sd = torch.load(
        shared_path(*FIXTURE, "samdaq_tiny_random.pt"), map_location="cpu", weights_only=True
    )
    mapped, skipped, unknown = map_reference_state_dict(sd)
    assert unknown == []
    assert all(k.startswith(REFERENCE_UNUSED) for k in skipped)
    assert {k.split(".")[0] for k in skipped} == {
        "mixer0",
        "mixer1",
        "encoder_adapter1",
        "encoder_adapter2",
        "encoder_adapter3",
        "encoder_adapter4",
        "sam2",
    }
    model_keys = set(SamDaq(SamDaqConfig(input_size=1024)).trained_state_dict())
    assert set(mapped) == model_keys


def test_reference_checkpoint_of_another_input_size_gives_both_shapes(shared_path):
    model = SamDaq(SamDaqConfig(input_size=512))
    path = shared_path(*FIXTURE, "samdaq_tiny_random.pt")
    with pytest.raises(CheckpointError) as err:
        load_samdaq_weights(model, path)
    message = str(err.value)
    assert str(path) in message and "qtm.prompt_proj.weight" in message
    assert "(256, 4096)" in message and "(256, 1024)" in message


def test_sam2_checkpoint_of_another_size_is_refused(shared_path):
    model = SamDaq(SamDaqConfig(backbone="sam2.1_hiera_b+", input_size=1024))
    with pytest.raises(CheckpointError, match=r"another SAM2.1 size") as err:
        load_sam2_checkpoint(model, shared_path(*FIXTURE, "sam2.1_hiera_tiny_random.pt"))
    assert "sam2.1_hiera_tiny_random.pt" in str(err.value)


def test_reference_converted_to_project_format_keeps_every_weight(shared_path, tmp_path):
    model = SamDaq(SamDaqConfig(input_size=1024))
    load_samdaq_weights(model, shared_path(*FIXTURE, "samdaq_tiny_random.pt"))
    path = tmp_path / "converted.safetensors"
    save_weights(model, path)
    fresh = SamDaq(SamDaqConfig(input_size=1024))
    load_samdaq_weights(fresh, path)
    for k, v in model.trained_state_dict().items():
        assert torch.equal(fresh.state_dict()[k], v), k


def test_weights_limits_are_checked_before_the_model_is_built(tiny, tmp_path, monkeypatch):
    """Metadata asking for input 32768 (about 6 GB of model) is refused from the header alone."""
    import json

    from rgbd_saliency_ros.runtime import model_loading

    good, path = tmp_path / "good.safetensors", tmp_path / "huge.safetensors"
    save_weights(tiny, good)

    def huge(metadata):
        metadata["config"] = json.dumps({**json.loads(metadata["config"]), "input_size": 32768})

    retagged_weights(good, path, huge)

    def no_build(*args, **kwargs):
        raise AssertionError("a model was built from unchecked metadata")

    monkeypatch.setattr(SamDaq, "__init__", no_build)
    with pytest.raises(CheckpointError, match=r"input_size = 32768 .*\(1 to 4096\)") as err:
        model_loading.load_model(None, path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("version", ["2", None])
def test_other_format_versions_are_refused(tiny, tmp_path, version):
    """A file of a newer (or no) format version is refused by name, before its config is read."""
    good, path = tmp_path / "good.safetensors", tmp_path / "other.safetensors"
    save_weights(tiny, good)

    def retag(metadata):
        assert metadata.pop("format_version") == "1"  # what this release writes
        if version is not None:
            metadata["format_version"] = version

    retagged_weights(good, path, retag)
    with pytest.raises(CheckpointError, match=f"format version {version!r}.* reads version '1'"):
        weights_config(path)
    with pytest.raises(CheckpointError, match=str(path)):
        load_samdaq_weights(tiny, path)
    load_samdaq_weights(tiny, good)


def test_random_weights_are_reproducible_and_leave_the_callers_random_state(tmp_path):
    from safetensors.torch import load_file

    from rgbd_saliency_ros.model.random_weights import write_random_weights

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with seeded(5):
        expected = torch.rand(3)
    with seeded(5):
        first = write_random_weights(tmp_path / "a", 64)
        # the caller's stream goes on as if nothing was drawn
        assert torch.equal(torch.rand(3), expected)
    second = write_random_weights(tmp_path / "b", 64)
    a, b = load_file(first[1]), load_file(second[1])
    assert a.keys() == b.keys() and all(
        torch.equal(a[k], b[k]) for k in a
    )  # same seed, same weights
