"""Build a corpus of real sounds (not our synthesiser) from Debian packages, reproducibly.

    apt-get install espeak-ng fluidsynth fluid-soundfont-gm sound-theme-freedesktop alsa-utils
    python bench/real_corpus.py --out /tmp/real_corpus          # full corpus (~1 min)
    python bench/real_corpus.py --out /tmp/small --small        # a few files (tests)

Writes OUT/wav/*.wav (16 kHz mono) and OUT/train.jsonl, OUT/test.jsonl (make-shards
manifests). Nothing is downloaded: every sound comes from the installed packages.

Classes (description / category):
- "a person speaking" / speech: espeak-ng (formant synthesis) in several languages and
  voice variants, reading sentences; plus the recorded human voices that ship with
  sound-theme-freedesktop (audio-channel-*.oga) and alsa-utils (Front_Left.wav ...).
  Held out: whole voices (a voice/variant pair in test never speaks in train) and the
  recordings of one package (alsa-utils' voice is test only).
- "a musical instrument playing a melody" / instrument: random melodies (seeded) rendered
  by fluidsynth with the FluidR3 General MIDI soundfont; held out: new melodies, and two
  programs (instruments) that are test only.
- "drums playing a beat" / music: random GM drum-kit patterns (channel 10), held out:
  new patterns.
- "a notification chime" / sfx: the freedesktop sound theme's recorded effects; every
  fourth file (sorted by name) is test only.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import struct
import subprocess
import sys

import numpy as np

RATE = 16000
SOUNDFONT = "/usr/share/sounds/sf2/FluidR3_GM.sf2"
FREEDESKTOP = "/usr/share/sounds/freedesktop/stereo"
ALSA = "/usr/share/sounds/alsa"

SPEECH = "a person speaking"
INSTRUMENT = "a musical instrument playing a melody"
DRUMS = "drums playing a beat"
CHIME = "a notification chime"

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Please close the window before the rain starts.",
    "Seven green bottles were standing on the wall.",
    "We will meet at the station at half past four.",
    "The river was cold and the stones were slippery.",
    "Could you pass me the salt and the pepper please?",
    "She sells sea shells by the sea shore every summer.",
    "A large ship sailed slowly into the harbour at dawn.",
    "The children laughed as the clown fell off his bike.",
    "Turn left at the bakery and walk for two minutes.",
    "My grandfather planted these apple trees long ago.",
    "The library opens at nine and closes at six.",
    "Thunder rolled across the valley all night long.",
    "He forgot his umbrella on the train again today.",
    "Numbers one two three four five six seven eight.",
    "Good morning, this is your captain speaking.",
]
LANGS = ["en", "en-us", "en-gb-scotland", "de", "fr", "es", "it", "nl", "pt", "pl"]
VARIANTS = ["m1", "m3", "m7", "f1", "f2", "f4", "klatt", "croak"]
# GM programs: piano, e-piano, glockenspiel, organ, nylon guitar, steel guitar, bass,
# violin, cello, strings, trumpet, alto sax, oboe, clarinet, flute, lead synth.
PROGRAMS_TRAIN = [0, 4, 9, 19, 24, 33, 40, 48, 56, 65, 71, 73, 80]
PROGRAMS_TEST_ONLY = [25, 42, 68]
DRUM_NOTES = [35, 36, 38, 40, 42, 44, 46, 49, 51, 45, 48, 39, 54, 56]


def _midi_file(events, path, tempo_us=500000):
    """A type-0 MIDI file from (tick, bytes) events (480 ticks per quarter note)."""
    body = bytearray(b"\x00\xff\x51\x03" + tempo_us.to_bytes(3, "big"))
    last = 0
    for tick, data in sorted(events, key=lambda e: (e[0], e[1][0] & 0xF0 == 0x90)):
        delta, last = tick - last, tick
        var = [delta & 0x7F]
        while delta > 0x7F:
            delta >>= 7
            var.insert(0, 0x80 | (delta & 0x7F))
        body += bytes(var) + data
    body += b"\x00\xff\x2f\x00"
    with open(path, "wb") as f:
        f.write(b"MThd" + struct.pack(">IHHH", 6, 0, 1, 480))
        f.write(b"MTrk" + struct.pack(">I", len(body)) + body)


def _render(mid, wav):
    subprocess.run(
        ["fluidsynth", "-ni", "-q", "-g", "0.6", "-r", str(RATE), "-F", wav, SOUNDFONT, mid],
        check=True,
        capture_output=True,
    )


def melody(rng, program, path):
    """2-4 s: a random walk on a major/minor scale, random note lengths, one program."""
    scale = [0, 2, 4, 5, 7, 9, 11] if rng.random() < 0.5 else [0, 2, 3, 5, 7, 8, 10]
    root = int(rng.integers(48, 67))
    events, tick, degree = [(0, bytes([0xC0, program]))], 0, int(rng.integers(0, 7))
    end = int(rng.uniform(2.0, 4.0) * 960)  # 120 bpm: 960 ticks per second
    while tick < end:
        degree = int(np.clip(degree + rng.integers(-2, 3), -3, 10))
        note = root + 12 * (degree // 7) + scale[degree % 7]
        length = int(rng.choice([240, 480, 480, 960]))
        velocity = int(rng.integers(70, 120))
        events += [(tick, bytes([0x90, note, velocity])), (tick + length, bytes([0x80, note, 0]))]
        tick += length
    _midi_file(events, path)


def drums(rng, path):
    """2-4 s of a random 16th-note pattern on 3-5 drum sounds (channel 10)."""
    kit = rng.choice(DRUM_NOTES, size=int(rng.integers(3, 6)), replace=False)
    pattern = rng.random((len(kit), 16)) < rng.uniform(0.15, 0.45, (len(kit), 1))
    pattern[0, 0] = True
    steps = int(rng.uniform(2.0, 4.0) * 8)  # 16ths at 120 bpm: 8 per second
    program = int(rng.choice([0, 8, 16, 24, 25, 32, 40]))
    events = [(0, bytes([0xC9, program]))]
    for s in range(steps):
        for k, note in enumerate(kit):
            if pattern[k, s % 16]:
                v = int(rng.integers(60, 127))
                events += [
                    (s * 120, bytes([0x99, int(note), v])),
                    (s * 120 + 100, bytes([0x89, int(note), 0])),
                ]
    _midi_file(events, path)


def _speak(voice, text, wav, rng):
    speed = str(int(rng.integers(130, 190)))
    pitch = str(int(rng.integers(30, 70)))
    subprocess.run(
        ["espeak-ng", "-v", voice, "-s", speed, "-p", pitch, "-w", wav, text],
        check=True,
        capture_output=True,
    )


def build(out, small=False, seed=0):
    for tool in ("espeak-ng", "fluidsynth"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not found: apt-get install espeak-ng fluidsynth ...")
    if not os.path.isfile(SOUNDFONT):
        raise SystemExit(f"{SOUNDFONT} not found: apt-get install fluid-soundfont-gm")
    rng = np.random.default_rng(seed)
    wav_dir = os.path.join(out, "wav")
    os.makedirs(wav_dir, exist_ok=True)
    rows = {"train": [], "test": []}

    def add(split, path, description, category):
        rows[split].append(
            {"path": os.path.relpath(path, out), "description": description, "category": category}
        )

    # speech: held-out voices
    langs = LANGS[:3] if small else LANGS
    variants = VARIANTS[:3] if small else VARIANTS
    voices = [f"{lang}+{v}" for lang in langs for v in variants]
    order = rng.permutation(len(voices))
    test_voices = {voices[i] for i in order[: max(2, len(voices) // 5)]}
    per_voice = 1 if small else 3
    for voice in voices:
        split = "test" if voice in test_voices else "train"
        for k in range(per_voice):
            text = SENTENCES[int(rng.integers(len(SENTENCES)))]
            wav = os.path.join(wav_dir, f"speech_{voice.replace('+', '_')}_{k}.wav")
            _speak(voice, text, wav, rng)
            add(split, wav, SPEECH, "speech")
    if not small:
        for f in sorted(glob.glob(f"{FREEDESKTOP}/audio-channel-*.oga")):
            add("train", f, SPEECH, "speech")
        for f in sorted(glob.glob(f"{ALSA}/*.wav")):
            if "Noise" not in f:
                add("test", f, SPEECH, "speech")

    # instruments: new melodies; some programs only in test
    n_mel = (1, 1) if small else (6, 2)
    programs = PROGRAMS_TRAIN[:3] if small else PROGRAMS_TRAIN
    for program in programs:
        for split, count in zip(("train", "test"), n_mel):
            for k in range(count):
                mid = os.path.join(wav_dir, f"inst_{program}_{split}_{k}.mid")
                melody(rng, program, mid)
                _render(mid, mid[:-4] + ".wav")
                os.remove(mid)
                add(split, mid[:-4] + ".wav", INSTRUMENT, "instrument")
    for program in [] if small else PROGRAMS_TEST_ONLY:
        mid = os.path.join(wav_dir, f"inst_{program}_test_only.mid")
        melody(rng, program, mid)
        _render(mid, mid[:-4] + ".wav")
        os.remove(mid)
        add("test", mid[:-4] + ".wav", INSTRUMENT, "instrument")

    # drums: new patterns
    for split, count in zip(("train", "test"), (2, 1) if small else (60, 16)):
        for k in range(count):
            mid = os.path.join(wav_dir, f"drums_{split}_{k}.mid")
            drums(rng, mid)
            _render(mid, mid[:-4] + ".wav")
            os.remove(mid)
            add(split, mid[:-4] + ".wav", DRUMS, "music")

    # notification chimes: recorded files, every fourth held out
    chimes = [f for f in sorted(glob.glob(f"{FREEDESKTOP}/*.oga")) if "audio-channel" not in f]
    if chimes:
        chimes = chimes[:4] if small else chimes
        for i, f in enumerate(chimes):
            add("test" if i % 4 == 3 else "train", f, CHIME, "sfx")
    for split, items in rows.items():
        with open(os.path.join(out, f"{split}.jsonl"), "w") as f:
            for row in items:
                f.write(json.dumps(row) + "\n")
    return {k: len(v) for k, v in rows.items()}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--small", action="store_true", help="a few files per class (tests)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    counts = build(args.out, args.small, args.seed)
    print(f"real corpus: {counts} -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
