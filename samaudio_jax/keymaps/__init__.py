"""Key maps: the release's (and Hugging Face's) tensor names <-> this package's parameter paths.

One declarative style for every part (rules.py): a list of KeyRule(release key, our parameter
path, transform), where the transform is a reshape/transpose that maps a tensor exactly both
ways. flow.py (the DiT), codec.py (DACVAE, `audio_codec.*`), vision.py (PE-Core,
`vision_encoder.*`), t5.py (the Hugging Face T5 encoder).

This package is the lowest persistence layer: it imports no module of this project (rules are
built from config values or by walking a module's attributes), and nothing here reads or
writes files. The component factories (model/factory.py, codec/factory.py, vision/factory.py,
text/t5_import.py) apply the rules; checkpoint/ arranges parts into directory layouts.
"""
