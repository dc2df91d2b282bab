"""Frames of a stored instance's pixel data, as stored or decoded, and rendered as an image (WADO-RS).

Viewers such as OHIF decode compressed frames themselves (`transfer-syntax=*`):
they get the frame bytes exactly as stored. A client that asks for Explicit VR
Little Endian gets them decoded (pydicom with the pylibjpeg plugins the node
already has). Rendered images apply the instance's own modality and VOI LUT
(its window), as a PACS viewer would show it at first.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames
from pydicom.multival import MultiValue
from pydicom.pixels import apply_modality_lut, pixel_array
from pydicom.uid import UID, ExplicitVRLittleEndian


class FrameError(ValueError):
    """The frames asked for cannot be given; the message says why (the route picks the HTTP status)."""


@dataclass(frozen=True)
class Frames:
    transfer_syntax: str  # of the returned bytes (media type parameter `transfer-syntax`)
    frames: list[bytes]


def frame_count(ds: Dataset) -> int:
    return int(ds.get("NumberOfFrames") or 1)


def parse_frame_list(text: str, count: int, most: int) -> list[int]:
    """'1,3' as 1-based frame numbers, each checked against the instance's frame count, duplicates folded (first
    mention kept): '1,1,1' asked 3,000 times is one frame, not 3,000 copies of it. More than `most` distinct frames:
    FrameError (`http.max_frames_per_request`)."""
    try:
        numbers = list(dict.fromkeys(int(part) for part in text.split(",")))
    except ValueError:
        raise FrameError(f"frame list {text!r} is not a comma-separated list of numbers") from None
    if len(numbers) > most:
        raise FrameError(f"{len(numbers)} frames asked for, more than http.max_frames_per_request ({most})")
    outside = [n for n in numbers if not 1 <= n <= count]
    if outside:
        raise FrameError(f"frame(s) {outside[:10]} outside 1..{count}")
    return numbers


def native_frame(ds: Dataset, index: int) -> bytes:
    """Frame `index` (0-based) of uncompressed pixel data, including 1-bit data packed across frame boundaries."""
    pixels_per_frame = int(ds.Rows) * int(ds.Columns) * int(ds.get("SamplesPerPixel", 1))
    bits = int(ds.BitsAllocated)
    data = ds.PixelData
    if bits == 1:
        if pixels_per_frame % 8 == 0:
            size = pixels_per_frame // 8
            return bytes(data[index * size : (index + 1) * size])
        bits_array = np.unpackbits(np.frombuffer(data, np.uint8), bitorder="little")
        frame = bits_array[index * pixels_per_frame : (index + 1) * pixels_per_frame]
        return np.packbits(frame, bitorder="little").tobytes()
    size = pixels_per_frame * bits // 8
    return bytes(data[index * size : (index + 1) * size])


def stored_frames(ds: Dataset, numbers: list[int]) -> Frames:
    """The frames as stored: compressed ones as their codestreams, native ones as raw little endian bytes."""
    syntax = UID(ds.file_meta.TransferSyntaxUID)
    if syntax.is_encapsulated:
        everything = list(generate_frames(ds.PixelData, number_of_frames=frame_count(ds)))
        return Frames(str(syntax), [everything[n - 1] for n in numbers])
    if not syntax.is_little_endian:
        return decoded_frames(ds, numbers)
    return Frames(ExplicitVRLittleEndian, [native_frame(ds, n - 1) for n in numbers])


def decoded_frames(ds: Dataset, numbers: list[int]) -> Frames:
    """The frames decoded to Explicit VR Little Endian pixel bytes."""
    if UID(ds.file_meta.TransferSyntaxUID).is_encapsulated or not UID(ds.file_meta.TransferSyntaxUID).is_little_endian:
        try:
            frames = [pixel_array(ds, index=n - 1).astype(f"<{_dtype(ds)}").tobytes() for n in numbers]
        except Exception as exc:  # any codec failure: the client may still ask for the stored syntax
            raise FrameError(f"cannot decode {ds.file_meta.TransferSyntaxUID}: {exc}") from exc
        return Frames(ExplicitVRLittleEndian, frames)
    return Frames(ExplicitVRLittleEndian, [native_frame(ds, n - 1) for n in numbers])


def _dtype(ds: Dataset) -> str:
    kind = "i" if int(ds.get("PixelRepresentation", 0)) else "u"
    return f"{kind}{max(1, int(ds.BitsAllocated) // 8)}"


def rendered(ds: Dataset, number: int, media_type: str) -> bytes:
    """Frame `number` (1-based) as a PNG or JPEG: modality LUT, the instance's first window (else its range), 8 bits."""
    try:
        array = pixel_array(ds, index=number - 1)
    except Exception as exc:  # any codec failure
        raise FrameError(f"cannot decode {ds.file_meta.TransferSyntaxUID}: {exc}") from exc
    if array.ndim == 2:
        values = apply_modality_lut(array, ds).astype(np.float64)
        low, high = _window(ds) or (float(values.min()), float(values.max()))
        scaled = np.clip((values - low) * (255.0 / (high - low)), 0, 255) if high > low else np.zeros_like(values)
        if str(ds.get("PhotometricInterpretation", "")) == "MONOCHROME1":
            scaled = 255.0 - scaled
        image = Image.fromarray(scaled.astype(np.uint8), "L")
    else:
        image = Image.fromarray(array.astype(np.uint8), "RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG" if media_type == "image/jpeg" else "PNG")
    return buffer.getvalue()


def _window(ds: Dataset) -> tuple[float, float] | None:
    """The lowest and highest value of the instance's first window, if it has one."""
    if "WindowCenter" not in ds or "WindowWidth" not in ds:
        return None
    center, width = (float(v[0] if isinstance(v, MultiValue) else v) for v in (ds.WindowCenter, ds.WindowWidth))
    return center - width / 2, center + width / 2
