"""Sampling: separating sounds with a trained flow network.

solvers.py     ODE solvers (euler, midpoint, heun, rk4: torchdiffeq's rules in lax.scan;
               tsit5 / dopri5: diffrax, adaptive)
options.py     SeparateOptions: one call's options, checked and resolved against the model
separate.py    separate(): the stages from inputs to a SeparationResult
runner.py      the jitted batch (encode, ODE, decode) and the candidates' ranking
compile_cache.py  JAX's persistent compilation cache, set for one call
batching.py    length buckets, padding, span anchors, batch-independent noise
audio_io.py    reading any audio as mono at the codec rate; atomic WAV writes
long_audio.py  overlapping chunks cross-faded for inputs longer than a segment
rankers.py     candidate rankers (interface, sound activity, ensembles)
loading.py     Separator; load(any checkpoint source) and save (the release layout)
"""
