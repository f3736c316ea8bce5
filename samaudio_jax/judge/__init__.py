"""The release's frozen quality and span models: SAM Audio Judge (SAJ) and PE-A-Frame.

Both are built from the same parts: a ModernBERT text encoder read at a configured hidden
layer (`modernbert.py`), the PE-Audio transformer with its convolutional patch embedder
(`pe_audio.py`) and the project's DACVAE encoder (`codec_encoder.py`). `judge.py` scores a
separation against its mixture and description; `frame.py` gives frame-level audio-text
logits and turns them into "+" spans. `config.py` reads the release's config.json,
`load.py` its weights (keymaps/judge.py names them), `processor.py` prepares audio and text.

Layering: this package sits below checkpoint/data and above codec/text/vision (it reuses the
codec's encoder); sample/, eval/ and cli/ use it.
"""
