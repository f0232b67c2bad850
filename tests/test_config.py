"""Config loading: presets, dotted overrides, and refusals that name the key and the options."""

from __future__ import annotations

import pytest
import yaml

from train.config import Config, ConfigError, dump_config, from_dict, load_config, to_dict


def test_presets_load_with_their_documented_requirements():
    assert load_config("tiny_cpu").model.size == "tiny"
    vitl = load_config("vitl16", ["data.path=videos/"])
    assert (vitl.model.size, vitl.data.batch_size, vitl.steps) == ("vit_l", 3072, 90_000)
    assert (vitl.optim.warmup_steps, vitl.optim.lr, vitl.optim.final_lr) == (12000, 6.25e-4, 1e-6)
    assert vitl.optim.ema == (0.998, 1.0)
    # The paper's block sizes, more blocks: its effective masking with exact masks.
    assert [s.num_blocks for s in vitl.mask.multiblock] == [14, 5]
    assert [s.spatial_scale for s in vitl.mask.multiblock] == [(0.15, 0.15), (0.7, 0.7)]
    assert vitl.mask.equal_sizes
    assert load_config("vits16", ["data.path=v"]).model.size == "vit_s"
    ijepa = load_config("ijepa_vits16", ["data.path=images/"])
    assert (ijepa.model.num_frames, ijepa.model.tubelet_size) == (1, 1)


def test_video_presets_refuse_to_start_without_data():
    with pytest.raises(ConfigError, match="data.path"):
        load_config("vitl16")


def test_dotted_overrides_are_typed():
    cfg = load_config(
        "tiny_cpu",
        [
            "optim.lr=1e-3",
            "data.batch_size=16",
            "steps=200",
            "out=r/x",
            "optim.ema=[0.99, 1.0]",
            "optim.clip_grad=null",
        ],
    )
    assert cfg.optim.lr == 1e-3 and isinstance(cfg.optim.lr, float)
    assert (cfg.data.batch_size, cfg.steps, cfg.out) == (16, 200, "r/x")
    assert cfg.optim.ema == (0.99, 1.0)
    assert cfg.optim.clip_grad is None


def test_unknown_key_names_the_key_and_the_allowed_ones():
    with pytest.raises(ConfigError) as err:
        load_config("tiny_cpu", ["optim.learning_rate=1e-3"])
    message = str(err.value)
    assert "optim.learning_rate" in message
    assert "lr" in message and "warmup_steps" in message


def test_bad_literal_lists_allowed_values():
    with pytest.raises(ConfigError) as err:
        load_config("tiny_cpu", ["mask.strategy=checkerboard"])
    assert "mask.strategy" in str(err.value)
    assert "'multiblock', 'random_tube', 'causal'" in str(err.value)


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ("steps=many", "steps must be an integer"),
        ("optim.lr=fast", "optim.lr must be a number"),
        ("resume=maybe", "resume must be true or false"),
        ("optim.ema=[0.9]", "optim.ema must be a list of 2 values"),
        ("model.num_frames=15", "multiple of model.tubelet_size"),
        ("model.img_size=60", "multiple of model.patch_size"),
        ("optim.warmup_steps=10000", "optim.warmup_steps=10000 must lie in"),
        ("data.batch_size=0", "data.batch_size=0 must be at least 1"),
        ("mask.tube_ratio=1.0", "mask.tube_ratio"),
        ("noequals", "key=value"),
    ],
)
def test_bad_values_are_refused_with_the_key(override, fragment):
    with pytest.raises(ConfigError, match=fragment.replace("[", r"\[").replace(".", r"\.")):
        load_config("tiny_cpu", [override])


def test_causal_context_must_fit_the_clip():
    with pytest.raises(ConfigError, match="causal_context_frames"):
        load_config("tiny_cpu", ["mask.strategy=causal", "mask.causal_context_frames=16"])
    cfg = load_config("tiny_cpu", ["mask.strategy=causal", "mask.causal_context_frames=4"])
    assert cfg.mask.causal_context_frames == 4


def test_unknown_preset_lists_presets():
    with pytest.raises(ConfigError, match="tiny_cpu"):
        load_config("no_such_preset")


def test_dump_and_reload_round_trip(tmp_path):
    cfg = load_config("vitl16", ["data.path=v", "optim.lr=3e-4"])
    dump_config(cfg, tmp_path / "config.yaml")
    again = from_dict(Config, yaml.safe_load((tmp_path / "config.yaml").read_text()))
    assert again == cfg
    assert to_dict(again) == to_dict(cfg)
