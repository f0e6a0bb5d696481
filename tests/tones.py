"""Test audio for live broadcasts: a sequence of tones made here, and the tones found again
in what a listener wrote (decoded by ffmpeg, each window's loudest candidate by Goertzel)."""

from __future__ import annotations

import array
import math
import shutil
import subprocess
import wave
from pathlib import Path

RATE = 48_000
#: the tones of a test broadcast, in order: far enough apart for Goertzel at 8 kHz
FREQUENCIES = tuple(range(300, 300 + 100 * 24, 100))


def write_tones(path: Path, seconds_each: float = 1.0,
                frequencies: tuple[int, ...] = FREQUENCIES) -> Path:
    """A mono 16-bit WAV of each frequency for **seconds_each** seconds, in order."""
    samples = array.array("h")
    count = int(RATE * seconds_each)
    for freq in frequencies:
        step = 2 * math.pi * freq / RATE
        samples.extend(int(12000 * math.sin(step * i)) for i in range(count))
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(samples.tobytes())
    return path


def decode(path: Path, rate: int = 8000) -> array.array:
    """The Ogg/Opus file at **path** as mono 16-bit samples at **rate** (ffmpeg).

    :raises subprocess.CalledProcessError: ffmpeg cannot decode it
    """
    ffmpeg = shutil.which("ffmpeg")
    assert ffmpeg, "ffmpeg is part of the set-up (scripts/setup.sh)"
    done = subprocess.run([ffmpeg, "-hide_banner", "-loglevel", "error", "-i", str(path),
                           "-ac", "1", "-ar", str(rate), "-f", "s16le", "pipe:1"],
                          capture_output=True, check=True, timeout=120)
    samples = array.array("h")
    samples.frombytes(done.stdout[:len(done.stdout) // 2 * 2])
    return samples


def _power(window, freq: float, rate: int) -> float:
    coeff = 2 * math.cos(2 * math.pi * freq / rate)
    s1 = s2 = 0.0
    for x in window:
        s1, s2 = x + coeff * s1 - s2, s1
    return s1 * s1 + s2 * s2 - coeff * s1 * s2


def tones_heard(path: Path, frequencies: tuple[int, ...] = FREQUENCIES, rate: int = 8000,
                window_s: float = 0.25) -> list[int]:
    """The tones in the file, in the order heard: each window's loudest frequency, kept
    when two windows in a row agree and it is well above silence, repeats collapsed."""
    samples = decode(path, rate)
    size = int(rate * window_s)
    loudest = []
    for start in range(0, len(samples) - size + 1, size):
        window = samples[start:start + size]
        energy = sum(x * x for x in window) / size
        if energy < 1e5:  # silence (a gap, or the codec's start)
            loudest.append(None)
            continue
        powers = {f: _power(window, f, rate) for f in frequencies}
        loudest.append(max(powers, key=powers.get))
    heard: list[int] = []
    for a, b in zip(loudest, loudest[1:]):
        if a is not None and a == b and (not heard or heard[-1] != a):
            heard.append(a)
    return heard


def in_order(heard: list[int], frequencies: tuple[int, ...] = FREQUENCIES) -> bool:
    """Every tone heard is a tone of the broadcast, and they come in the broadcast's order."""
    index = [frequencies.index(f) for f in heard if f in frequencies]
    return len(index) == len(heard) and index == sorted(index) and len(set(index)) == len(index)
