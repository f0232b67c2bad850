"""Features: what the encoder's patch features look like. One PCA over every token of the clip
window chosen in Predict, its first three components shown as red, green and blue next to the
frames: parts of the scene the model treats alike get alike colours, in every frame.

Options: take the position component out before the PCA (tokens carry where in the clip they
are, and on a plain scene that can be the largest difference: the first component then flips
colour between two time steps), lay the map over the frames, and keep only the foreground by
thresholding the first component (as the DINOv2 PCA demos do).
"""

from __future__ import annotations

import json
from typing import Any

import gradio as gr
import numpy as np

from workbench.clip_table import physics_world_for
from workbench.context import AppContext
from workbench.features import (
    ENCODERS,
    POSITION_KEEP,
    POSITION_MEAN,
    POSITION_OPTIONS,
    POSITION_PROJECT,
    blend,
    check_unit,
    foreground_mask,
    foreground_rgb,
    patch_features,
    pca_rgb,
    position_mean,
    project_out_time,
    subtract_position_mean,
    time_share,
    token_map_to_frames,
)
from workbench.frames import enlarge, side_by_side, strip
from workbench.guard import user_errors
from workbench.paths import new_output_path
from workbench.predict import PLAYBACK_FPS, STRIP_PX, VIDEO_PX, clip_window, model_frames
from workbench.video_io import write_mp4

DEFAULT_ENCODER = next(iter(ENCODERS))
REFERENCE_CLIPS = 16  # physics-world clips whose mean token per position is "the position"
# First components with more of their variance between time steps than this are called
# a position component in the note.
POSITION_SHARE = 0.5
_position_means: dict[str, np.ndarray] = {}


class FeatureHandlers:
    def __init__(self, ctx: AppContext):
        self.ctx = ctx

    def _position_mean(self, bundle_key: str | None, bundle: Any, encoder: str) -> np.ndarray:
        """The mean token per position of the app's reference clips (cached per bundle file)."""
        identity = json.dumps([self.ctx.registry.identity(bundle_key), encoder], sort_keys=True)
        if identity not in _position_means:
            world = physics_world_for(bundle, REFERENCE_CLIPS)
            clips = [world[i]["clip"] for i in range(REFERENCE_CLIPS)]
            if len(_position_means) >= 8:
                _position_means.pop(next(iter(_position_means)))
            _position_means[identity] = position_mean(bundle, clips, encoder)
        return _position_means[identity]

    @user_errors
    def show(
        self,
        bundle_key: str | None,
        clip_key: str | None,
        start: int,
        step: int,
        encoder: str = DEFAULT_ENCODER,
        position: str = POSITION_KEEP,
        opacity: float = 1.0,
        foreground: bool = False,
        threshold: float = 0.5,
    ) -> tuple[np.ndarray, str, str]:
        """(strip: frames over PCA colours; side-by-side mp4; a note on the components)."""
        if encoder not in ENCODERS:
            raise ValueError(f"encoder {encoder!r}: choose one of {', '.join(ENCODERS)}")
        if position not in POSITION_OPTIONS:
            raise ValueError(
                f"position component {position!r}: choose one of {', '.join(POSITION_OPTIONS)}"
            )
        opacity = check_unit(opacity, "the map's opacity")
        threshold = check_unit(threshold, "the foreground threshold")
        bundle = self.ctx.registry.load(bundle_key)
        video = self.ctx.clips.get(clip_key)
        window = clip_window(video.frames, int(start), int(step), bundle.num_frames)
        frames = model_frames(bundle, window)
        tokens = patch_features(bundle, frames, ENCODERS[encoder])
        raw_share = time_share(tokens)
        if position == POSITION_MEAN:
            mean = self._position_mean(bundle_key, bundle, ENCODERS[encoder])
            tokens = subtract_position_mean(tokens, mean)
        elif position == POSITION_PROJECT:
            tokens = project_out_time(tokens)
        mask = foreground_mask(tokens, threshold) if foreground else None
        colours = pca_rgb(tokens) if mask is None else foreground_rgb(tokens, mask)
        geometry = bundle.geometry
        maps = token_map_to_frames(colours.rgb, geometry.tubelet_size, geometry.patch_size)
        maps = blend(frames, maps, opacity)
        movie = side_by_side([enlarge(frames, VIDEO_PX), enlarge(maps, VIDEO_PX)])
        path = write_mp4(movie, new_output_path("features", ".mp4"), PLAYBACK_FPS)
        shares = ", ".join(f"{share:.0%}" for share in colours.explained)
        note = (
            f"{encoder}: {colours.rgb[..., 0].size} tokens "
            f"({' x '.join(map(str, bundle.grid))}) of {window.shape[0]} frames from "
            f"{video.name}. Red, green, blue = principal components 1-3, explaining {shares} "
            "of the variance; one PCA for all frames. "
            + _position_note(position, raw_share, time_share(tokens))
        )
        if mask is not None:
            note += (
                f" Foreground: {mask.mean():.0%} of the tokens, those past {threshold:.2f} of "
                "component 1's range on its smaller side, coloured by a PCA of their own; the "
                "rest is black."
            )
        return strip([frames, maps], STRIP_PX), str(path), note


def _position_note(position: str, raw_share: float, share: float) -> str:
    """What component 1 says about time, before and after the position option."""
    said = f"{raw_share:.0%} of component 1's variance lies between time steps in the raw features"
    if position == POSITION_KEEP:
        if raw_share > POSITION_SHARE:
            return (
                f"{said}: it encodes *when* a token is (its position in the clip), so colours "
                "flip between time steps; choose a way to remove the position component."
            )
        return f"{said}, so colours compare across time."
    how = {
        POSITION_MEAN: f"the mean token at each position over {REFERENCE_CLIPS} physics-world "
        "clips subtracted",
        POSITION_PROJECT: "the directions along which the per-time-step mean moves projected out",
    }[position]
    return f"{said}; with {how}, {share:.0%}."


def build(ctx: AppContext, bundle: gr.Dropdown, shared: dict[str, Any]) -> None:
    handlers = FeatureHandlers(ctx)
    gr.Markdown(
        "Patch features of the clip and frame window chosen in **Predict**, as colours: one PCA "
        "over all tokens of all frames, the first three components as red, green and blue. "
        "Tokens also carry their position in the clip, and on a plain scene the first component "
        "can encode *when* a token is (a colour flip between time steps): **Position component** "
        "subtracts the mean token of each position over reference clips, or projects out the "
        "directions along which the frames' mean feature moves, before the PCA; the note says "
        "how much of component 1 lies between time steps. **Foreground** keeps the tokens on "
        "the smaller side of a threshold on component 1 (as the DINOv2 PCA demos do)."
    )
    with gr.Row():
        encoder = gr.Radio(list(ENCODERS), value=DEFAULT_ENCODER, label="Features of")
        position = gr.Radio(list(POSITION_OPTIONS), value=POSITION_KEEP, label="Position component")
        run = gr.Button("Show features", variant="primary", elem_id="features-button")
    with gr.Row():
        opacity = gr.Slider(0.0, 1.0, value=1.0, step=0.05, label="Map opacity over the frames")
        foreground = gr.Checkbox(value=False, label="Foreground only")
        threshold = gr.Slider(
            0.0, 1.0, value=0.5, step=0.05, label="Foreground threshold on component 1"
        )
    with gr.Row():
        movie = gr.Video(label="Frames | PCA colours", autoplay=True, loop=True)
        note = gr.Markdown()
    picture = gr.Image(
        label="Frames (top) and PCA colours (bottom)",
        elem_id="features-strip",
        height=2 * STRIP_PX + 60,
    )
    run.click(
        handlers.show,
        [
            bundle,
            shared["clip_key"],
            shared["start"],
            shared["step"],
            encoder,
            position,
            opacity,
            foreground,
            threshold,
        ],
        [picture, movie, note],
        api_name="features",
    )
