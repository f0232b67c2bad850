"""Importing V-JEPA 2 checkpoints: the released `.pt` layout and Hugging Face's VJEPA2Model
safetensors, written here from a small RoPE model of this project with the key names and shapes
the public code writes, then imported and compared output for output."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from train.checkpoint import CheckpointError, atomic_save, load_checkpoint
from train.config import ModelConfig
from train.models import build_encoder, build_predictor
from train.models.positions import sincos_3d
from train.models.rope import axis_width
from train.pretrained import load_pretrained
from train.released import RELEASED_HEADS, import_with_report, main
from train.released import ImportOptions as Options

# ViT-S width (6 heads of 64, the released head width), 2 blocks; V-JEPA 2's predictor head
# layout (384 wide, 12 heads of 32) with one block; 4 frames x 32 px = 2 x 2 x 2 tokens.
SMALL = ModelConfig(
    size="vit_s",
    depth=2,
    pred_embed_dim=384,
    pred_depth=1,
    pred_num_heads=12,
    num_frames=4,
    img_size=32,
    patch_size=16,
    tubelet_size=2,
    positions="rope",
)
GEOMETRY = Options(num_frames=4, img_size=32)
CLIPS = torch.randn(2, 3, 4, 32, 32, generator=torch.Generator().manual_seed(1))


def our_models(cfg: ModelConfig = SMALL):
    torch.manual_seed(0)
    encoder = build_encoder(cfg).eval()
    target = build_encoder(cfg).eval()  # the EMA copy differs from the encoder after training
    predictor = build_predictor(cfg, encoder.grid_size, 2, None).eval()
    with torch.no_grad():
        for token in predictor.mask_tokens:
            token.normal_()
    return encoder, predictor, target


def write_vjepa2_pt(path, encoder, predictor, target, pos_embed=True, **extra):
    """The released layout: DDP + wrapper prefixes, 10 mask tokens (2..9 untrained, zero), and
    the unused sin-cos table a RoPE encoder may still hold."""
    prefix = lambda sd: {f"module.backbone.{k}": v.clone() for k, v in sd.items()}
    enc = prefix(encoder.state_dict())
    if pos_embed:
        table = sincos_3d(encoder.embed_dim, encoder.grid_size, uniform=True)[None]
        enc["module.backbone.pos_embed"] = table
    pred = prefix({k: v for k, v in predictor.state_dict().items() if "mask_tokens" not in k})
    for i in range(10):
        token = predictor.mask_tokens[i].data if i < 2 else torch.zeros(1, 1, 384)
        pred[f"module.backbone.mask_tokens.{i}"] = token.clone()
    state = {"encoder": enc, "predictor": pred, "target_encoder": prefix(target.state_dict())}
    atomic_save({**state, "epoch": 3, "opt": {}, "batch_size": 24, **extra}, path)


def hugging_face_tensors(encoder, predictor) -> dict[str, torch.Tensor]:
    """VJEPA2Model's names: the blocks are `layer`, attention has query/key/value linears."""
    out = {}
    for ours, stack, blocks in (
        (encoder.state_dict(), "encoder", "blocks"),
        (predictor.state_dict(), "predictor", "predictor_blocks"),
    ):
        for key, value in ours.items():
            if not key.startswith(blocks + "."):
                continue
            _, index, *rest = key.split(".")
            inner = ".".join(rest)
            layer = f"{stack}.layer.{index}"
            if inner.startswith("attn.qkv."):
                kind = inner.rsplit(".", 1)[1]
                for name, piece in zip(("query", "key", "value"), value.chunk(3, dim=0)):
                    out[f"{layer}.attention.{name}.{kind}"] = piece.clone()
            else:
                out[f"{layer}.{inner.replace('attn.proj', 'attention.proj')}"] = value.clone()
    enc, pred = encoder.state_dict(), predictor.state_dict()
    for kind in ("weight", "bias"):
        out[f"encoder.embeddings.patch_embeddings.proj.{kind}"] = enc[f"patch_embed.proj.{kind}"]
        out[f"encoder.layernorm.{kind}"] = enc[f"norm.{kind}"]
        out[f"predictor.embeddings.predictor_embeddings.{kind}"] = pred[f"predictor_embed.{kind}"]
        out[f"predictor.layernorm.{kind}"] = pred[f"predictor_norm.{kind}"]
        out[f"predictor.proj.{kind}"] = pred[f"predictor_proj.{kind}"]
    tokens = torch.zeros(10, 1, 1, 384)
    tokens[0, 0], tokens[1, 0] = pred["mask_tokens.0"][0], pred["mask_tokens.1"][0]
    out["predictor.embeddings.mask_tokens"] = tokens
    return {k: v.contiguous() for k, v in out.items()}


def assert_same_outputs(imported, encoder, predictor, target):
    keep = torch.tensor([[0, 3, 5], [7, 1, 2]])
    targets = torch.tensor([[1, 6], [0, 4]])
    with torch.no_grad():
        assert torch.equal(imported.encoder(CLIPS), encoder(CLIPS))
        assert torch.equal(imported.encoder(CLIPS, keep), encoder(CLIPS, keep))
        assert torch.equal(imported.target_encoder(CLIPS), target(CLIPS))
        context = encoder(CLIPS, keep)
        for mask_set in (0, 1):
            ours = predictor(context, keep, targets, mask_index=mask_set)
            theirs = imported.predictor(context, keep, targets, mask_index=mask_set)
            assert torch.equal(theirs, ours)


def test_vjepa2_pt_round_trip_reproduces_our_outputs(tmp_path):
    encoder, predictor, target = our_models()
    write_vjepa2_pt(tmp_path / "vjepa2.pt", encoder, predictor, target)
    imported, report = import_with_report(tmp_path / "vjepa2.pt", GEOMETRY)
    imported.eval()
    m = imported.config.model
    assert (m.positions, m.embed_dim, m.num_heads, m.pred_num_heads) == ("rope", 384, 6, 12)
    assert (m.depth, m.pred_depth, m.num_frames, m.img_size) == (2, 1, 4, 32)
    assert_same_outputs(imported, encoder, predictor, target)
    # The unused table and the mask tokens beyond this project's two are reported by name.
    assert "encoder.pos_embed" in report.ignored
    assert "never trained" in report.ignored["predictor.mask_tokens.9"]
    assert "positions: rope" in report.text()


def test_rope_is_recognised_without_a_table_and_any_clip_size_is_allowed(tmp_path):
    encoder, predictor, target = our_models()
    write_vjepa2_pt(tmp_path / "v2.pt", encoder, predictor, target, pos_embed=False)
    imported, report = import_with_report(tmp_path / "v2.pt", Options(num_frames=16))
    assert imported.config.model.img_size == 256  # V-JEPA 2's crop; RoPE fits any grid
    assert "encoder has no pos_embed" in report.text()
    with torch.no_grad():  # the same weights give the same features on any clip size
        assert torch.equal(imported.eval().encoder(CLIPS), encoder(CLIPS))


def test_mask_tokens_can_be_chosen_and_bad_choices_are_refused(tmp_path):
    encoder, predictor, target = our_models()
    write_vjepa2_pt(tmp_path / "v2.pt", encoder, predictor, target)
    options = Options(num_frames=4, img_size=32, mask_tokens=(1, 1))
    imported, report = import_with_report(tmp_path / "v2.pt", options)
    assert torch.equal(imported.predictor.mask_tokens[0], predictor.mask_tokens[1].data)
    assert "predictor.mask_tokens.0" in report.ignored
    _, report = import_with_report(
        tmp_path / "v2.pt", Options(num_frames=4, img_size=32, mask_tokens=(0, 5))
    )
    assert "released mask token 5 is all zeros" in report.text()
    with pytest.raises(CheckpointError, match=r"--mask-tokens 0,12: give 2 indices .*\(0\.\.9\)"):
        import_with_report(tmp_path / "v2.pt", Options(mask_tokens=(0, 12)))


def write_hugging_face(folder, encoder, predictor, heads=None, **change):
    folder.mkdir(exist_ok=True)
    tensors = hugging_face_tensors(encoder, predictor)
    for key, value in change.items():
        key = key.replace("__", ".")
        if value is None:
            tensors.pop(key)
        else:
            tensors[key] = value
    save_file(tensors, folder / "model.safetensors")
    if heads:
        config = {"model_type": "vjepa2", "crop_size": 32, "frames_per_clip": 64, **heads}
        (folder / "config.json").write_text(json.dumps(config))
    return folder / "model.safetensors"


def test_hugging_face_round_trip_reproduces_our_outputs(tmp_path):
    encoder, predictor, _ = our_models()
    file = write_hugging_face(tmp_path / "hf", encoder, predictor)
    imported, report = import_with_report(file, GEOMETRY)
    # The port holds the `encoder` only: the target encoder is a copy of it, and says so.
    assert_same_outputs(imported.eval(), encoder, predictor, encoder)
    assert "converted from the released `encoder`, not its `target_encoder`" in report.text()
    assert imported.config.model.pred_num_heads == 12


def test_hugging_face_folder_with_config_names_the_heads(tmp_path):
    cfg = ModelConfig(**{**vars(SMALL), "embed_dim": 48, "num_heads": 2, "pred_embed_dim": 384})
    encoder, predictor, _ = our_models(cfg)
    heads = {"num_attention_heads": 2, "pred_num_attention_heads": 12}
    folder = write_hugging_face(tmp_path / "hf", encoder, predictor, heads).parent
    imported, _ = import_with_report(folder, Options(num_frames=4))
    assert (imported.config.model.num_heads, imported.config.model.img_size) == (2, 32)
    assert_same_outputs(imported.eval(), encoder, predictor, encoder)


def test_widths_outside_the_table_need_heads(tmp_path):
    cfg = ModelConfig(**{**vars(SMALL), "embed_dim": 48, "num_heads": 2})
    encoder, predictor, target = our_models(cfg)
    write_vjepa2_pt(tmp_path / "odd.pt", encoder, predictor, target)
    with pytest.raises(CheckpointError, match=r"width 48 is not a released size .* --heads N"):
        import_with_report(tmp_path / "odd.pt", GEOMETRY)
    imported, _ = import_with_report(tmp_path / "odd.pt", Options(4, 32, heads=2))
    assert_same_outputs(imported.eval(), encoder, predictor, target)


def test_every_problem_of_a_hugging_face_file_is_listed_at_once(tmp_path):
    encoder, predictor, _ = our_models()
    file = write_hugging_face(
        tmp_path / "hf",
        encoder,
        predictor,
        encoder__layer__1__attention__value__weight=None,
        predictor__layer__0__mlp__fc2__bias=None,
        pooler__query_tokens=torch.zeros(1, 1, 384),
        encoder__layernorm__weight=torch.ones(383),
    )
    with pytest.raises(CheckpointError) as err:
        import_with_report(file, GEOMETRY)
    message = str(err.value)
    for expected in (
        "missing (2): encoder.layer.1.attention.value.weight, predictor.layer.0.mlp.fc2.bias",
        "unexpected (1): pooler.query_tokens",
        "shape mismatch (1): encoder.layernorm.weight: checkpoint (383,) vs model (384,)",
    ):
        assert expected in message


def test_every_problem_of_a_pt_file_is_listed_at_once(tmp_path):
    encoder, predictor, target = our_models()
    write_vjepa2_pt(tmp_path / "v2.pt", encoder, predictor, target)
    raw = load_checkpoint(tmp_path / "v2.pt")
    raw["encoder"].pop("module.backbone.blocks.1.norm2.bias")
    raw["target_encoder"]["module.backbone.head.weight"] = torch.zeros(3)
    raw["predictor"]["module.backbone.predictor_proj.bias"] = torch.zeros(5)
    atomic_save(raw, tmp_path / "broken.pt")
    with pytest.raises(CheckpointError) as err:
        import_with_report(tmp_path / "broken.pt", GEOMETRY)
    message = str(err.value)
    assert "encoder: missing (1): blocks.1.norm2.bias" in message
    assert "target_encoder: unexpected (1): head.weight" in message
    assert "predictor: shape mismatch (1): predictor_proj.bias: checkpoint (5,)" in message


def test_cli_writes_a_run_that_opens_like_our_own(tmp_path, capsys):
    encoder, predictor, target = our_models()
    write_vjepa2_pt(tmp_path / "vjepa2.pt", encoder, predictor, target)
    args = [str(tmp_path / "vjepa2.pt"), str(tmp_path / "run"), "--frames", "4"]
    assert main([*args, "--img-size", "32"]) == 0
    printed = capsys.readouterr().out
    assert "ignored encoder.pos_embed: a position table" in printed
    run = load_pretrained(tmp_path / "run")
    assert run.config.model.positions == "rope"
    with torch.no_grad():
        assert torch.equal(run.encoder(CLIPS), encoder(CLIPS))
    saved = load_checkpoint(tmp_path / "run")
    assert "encoder.pos_embed" in saved["import_report"]["ignored"]
    # An error is a message and exit status 1, not a traceback: forced to sin-cos, the file
    # lacks the tables such a model has.
    assert main([*args[:2], "--positions", "sincos"]) == 1
    assert "predictor: missing (1): predictor_pos_embed" in capsys.readouterr().err


def test_released_size_table_builds_the_released_shapes():
    """ViT-L / H / g with V-JEPA 2's predictor, on the meta device (no memory, no weights)."""
    sizes = {1024: (24, 4096), 1280: (32, 5120), 1408: (40, 6144)}
    for width, (depth, hidden) in sizes.items():
        cfg = ModelConfig(
            embed_dim=width,
            depth=depth,
            num_heads=RELEASED_HEADS[width],
            mlp_ratio=hidden / width,  # ViT-g: 48 / 11
            pred_embed_dim=384,
            pred_depth=12,
            pred_num_heads=12,
            pred_mlp_ratio=4.0,
            img_size=256,
            positions="rope",
        )
        with torch.device("meta"):
            encoder = build_encoder(cfg)
            predictor = build_predictor(cfg, encoder.grid_size, 2, None)
        assert encoder.blocks[0].mlp.fc1.out_features == hidden
        assert len(encoder.blocks) == depth
        assert predictor.predictor_blocks[0].mlp.fc1.out_features == 1536
    # Rotated channels per axis: heads of 64 (ViT-L, ViT-g) 20, of 80 (ViT-H) 26, the
    # predictor's heads of 32: 10.
    head_dims = {w: w // RELEASED_HEADS[w] for w in sizes}
    assert head_dims == {1024: 64, 1280: 80, 1408: 64}
    assert (axis_width(64), axis_width(80), axis_width(384 // 12)) == (20, 26, 10)
