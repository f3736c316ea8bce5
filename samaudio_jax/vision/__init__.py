"""Visual prompts: the PE-Core vision tower and masked video at the latent frame rate.

pe.py        PEVisionTower (PE-Core-L14-336 by default; sizes from config.vision)
video.py     decode a video, pick the nearest frame per latent frame, mask, resize, normalise
features.py  FrameEncoder (jitted, batched over frames), per-clip features, batch features
factory.py   the tower from a release's vision_encoder.* keys (keymaps/vision.py), FrameEncoder from config
"""
