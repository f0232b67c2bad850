"""Features: what the encoder's patch features look like. One PCA over every token of the clip
window chosen in Predict, its first three components shown as red, green and blue next to the
frames: parts of the scene the model treats alike get alike colours, in every frame."""

from __future__ import annotations

from typing import Any

import gradio as gr
import numpy as np

from workbench.context import AppContext
from workbench.features import ENCODERS, patch_features, pca_rgb, token_map_to_frames
from workbench.frames import enlarge, side_by_side, strip
from workbench.guard import user_errors
from workbench.paths import new_output_path
from workbench.predict import PLAYBACK_FPS, STRIP_PX, VIDEO_PX, clip_window, model_frames
from workbench.video_io import write_mp4

DEFAULT_ENCODER = next(iter(ENCODERS))


class FeatureHandlers:
    def __init__(self, ctx: AppContext):
        self.ctx = ctx

    @user_errors
    def show(
        self,
        bundle_key: str | None,
        clip_key: str | None,
        start: int,
        step: int,
        encoder: str = DEFAULT_ENCODER,
    ) -> tuple[np.ndarray, str, str]:
        """(strip: frames over PCA colours; side-by-side mp4; a note on the components)."""
        if encoder not in ENCODERS:
            raise ValueError(f"encoder {encoder!r}: choose one of {', '.join(ENCODERS)}")
        bundle = self.ctx.registry.load(bundle_key)
        video = self.ctx.clips.get(clip_key)
        window = clip_window(video.frames, int(start), int(step), bundle.num_frames)
        frames = model_frames(bundle, window)
        colours = pca_rgb(patch_features(bundle, frames, ENCODERS[encoder]))
        geometry = bundle.geometry
        maps = token_map_to_frames(colours.rgb, geometry.tubelet_size, geometry.patch_size)
        movie = side_by_side([enlarge(frames, VIDEO_PX), enlarge(maps, VIDEO_PX)])
        path = write_mp4(movie, new_output_path("features", ".mp4"), PLAYBACK_FPS)
        shares = ", ".join(f"{share:.0%}" for share in colours.explained)
        note = (
            f"{encoder}: {colours.rgb[..., 0].size} tokens "
            f"({' x '.join(map(str, bundle.grid))}) of {window.shape[0]} frames from "
            f"{video.name}. Red, green, blue = principal components 1-3, explaining {shares} "
            "of the variance; one PCA for all frames, so colours compare across time."
        )
        return strip([frames, maps], STRIP_PX), str(path), note


def build(ctx: AppContext, bundle: gr.Dropdown, shared: dict[str, Any]) -> None:
    handlers = FeatureHandlers(ctx)
    gr.Markdown(
        "Patch features of the clip and frame window chosen in **Predict**, as colours: one PCA "
        "over all tokens of all frames, the first three components as red, green and blue."
    )
    with gr.Row():
        encoder = gr.Radio(list(ENCODERS), value=DEFAULT_ENCODER, label="Features of")
        run = gr.Button("Show features", variant="primary", elem_id="features-button")
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
        [bundle, shared["clip_key"], shared["start"], shared["step"], encoder],
        [picture, movie, note],
        api_name="features",
    )
