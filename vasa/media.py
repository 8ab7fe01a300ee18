"""Frames from image and video files, with errors that name the file and say what is wrong.

Shared by the background videos of :func:`vasa.envs.randomize.load_video` and the video
datasets of :mod:`vasa.video.data` (which may import ``vasa.envs``, but not the other way
round, and stays free of JAX at import: hence a module of its own). Images and animated
GIF/WebP/PNG are read with Pillow, other video files with PyAV (``pip install 'vasa[video]'``).
A file that cannot be read raises :class:`MediaFileError` ("empty file (0 bytes)",
"truncated or corrupt video (...)", "frame 3 is 64x48 but frame 0 is 84x84 ..."), chained
to the reader's own exception.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence

import numpy as np

# Pillow's exceptions for files it cannot decode (SyntaxError: some of its older parsers)
_PILLOW_ERRORS = (OSError, ValueError, SyntaxError, EOFError)


class MediaFileError(ValueError):
    """A file that cannot be read as frames: ``path`` is the file (the exact image inside a
    folder), ``problem`` says what is wrong in plain words."""

    label = ""  # what the message calls the file, before its path

    def __init__(self, path: str, problem: str):
        super().__init__(f"{self.label}{path!r}: {problem}")
        self.path, self.problem = path, problem

    def __reduce__(self):  # pickles with (path, problem), not the formatted message
        return type(self), (self.path, self.problem)


def require_nonempty(path: str) -> None:
    """Raise :class:`MediaFileError` when ``path`` has 0 bytes (decoders give cryptic errors)."""
    if os.path.getsize(path) == 0:
        raise MediaFileError(path, "empty file (0 bytes)")


def _kind(path: str) -> str:
    return os.path.splitext(path)[1].lstrip(".").upper() or "image"


def stack_frames(frames: Sequence[np.ndarray], paths: str | Sequence[str],
                 numbers: Sequence[int] | None = None) -> np.ndarray:
    """``uint8 [F, H, W, 3]`` from frames that must share one size. ``paths``: the file of
    every frame (a folder of images), or one path for all (a video); ``numbers``: the frames'
    numbers for messages (default ``0..F-1``). A frame of another size than the first raises
    :class:`MediaFileError` naming its file."""
    numbers = range(len(frames)) if numbers is None else numbers
    per_frame = not isinstance(paths, str)
    for i, (frame, n) in enumerate(zip(frames, numbers)):
        if frame.shape != frames[0].shape:
            first = f" ({os.path.basename(paths[0])})" if per_frame else ""
            (h, w), (h0, w0) = frame.shape[:2], frames[0].shape[:2]
            raise MediaFileError(paths[i] if per_frame else paths,
                                 f"frame {n} is {h}x{w} but frame {numbers[0]}{first} is {h0}x{w0} "
                                 "(height x width); all frames must have one size")
    return np.stack(frames)


def read_image(path: str) -> np.ndarray:
    """One image as ``uint8 [H, W, 3]`` (Pillow)."""
    from PIL import Image

    require_nonempty(path)
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except _PILLOW_ERRORS as e:
        raise MediaFileError(path, f"truncated or corrupt {_kind(path)} ({type(e).__name__}: {e})") from e


def read_animation(path: str, max_frames: int | None = None) -> np.ndarray:
    """The frames of an animated (or still) GIF/WebP/PNG as ``uint8 [F, H, W, 3]`` (Pillow),
    at most ``max_frames``."""
    from PIL import Image, ImageSequence

    require_nonempty(path)
    frames = []
    try:
        with Image.open(path) as im:
            for frame in ImageSequence.Iterator(im):
                if max_frames is not None and len(frames) == max_frames:
                    break
                frames.append(np.asarray(frame.convert("RGB")))
    except _PILLOW_ERRORS as e:
        raise MediaFileError(path, f"truncated or corrupt {_kind(path)}: frame {len(frames)} cannot be decoded "
                                   f"({type(e).__name__}: {e})") from e
    return stack_frames(frames, path)


def read_video(path: str, max_frames: int | None = None) -> np.ndarray:
    """The frames of a video file (``.mp4``, ``.avi``, ``.webm``, ...) as ``uint8 [F, H, W, 3]``
    (PyAV, the first video stream), at most ``max_frames``. Raises ``ImportError`` when PyAV
    is not installed (a setup problem, not a bad file)."""
    hint = (f"decoding {path!r} needs PyAV: pip install 'vasa[video]' (or imageio[pyav]); "
            "or convert it to a folder of images")
    if importlib.util.find_spec("av") is None:
        raise ImportError(hint)
    try:
        import av
    except ImportError as e:
        raise ImportError(hint) from e

    require_nonempty(path)
    frames = []
    try:
        with av.open(path) as container:
            if not container.streams.video:
                raise MediaFileError(path, "holds no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                if max_frames is not None and len(frames) == max_frames:
                    break
                frames.append(frame.to_ndarray(format="rgb24"))
    except MediaFileError:
        raise
    except (av.error.FFmpegError, OSError, ValueError, EOFError, IndexError) as e:  # FFmpeg's many error types
        raise MediaFileError(path, f"truncated or corrupt video ({type(e).__name__}: {e})") from e
    if not frames:
        raise MediaFileError(path, "truncated or corrupt video: it holds no frames")
    return stack_frames(frames, path)
