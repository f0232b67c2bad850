"""Frozen-feature pixel decoder: what V-JEPA predicts under a mask, turned back into pixels.

For the app and notebooks:

    from decoder.bundle import STARTER_PATH, load_bundle
    from decoder.masks import TemporalExtent
    from decoder.render import render_prediction

    bundle = load_bundle()                          # the committed starter (or any bundle path)
    clip = bundle.fit_clip(frames)                  # uint8 [T, H, W, 3] or [3, T, H, W], any size
    mask = bundle.painted_mask(painted_hw, TemporalExtent.from_frame(4))  # or .frames(a, b)
    shown = render_prediction(bundle, clip, mask)   # frames, masks and the surprise curve
    preset, index = bundle.preset_mask("multiblock-long", seed=0)
    shown = render_prediction(bundle, clip, preset, index)  # a preset uses its own mask token

Command line: `python -m decoder RUN_OR_CHECKPOINT [key=value ...]` fits a decoder on a frozen
run (decoder/fit.py); `python -m decoder.starter` rebuilds the committed starter bundle.
"""
