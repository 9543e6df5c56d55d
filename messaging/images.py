"""Images sent in chat: decode a data URL, validate by decoding with Pillow, re-encode.

Only real PNG, JPEG, GIF and WebP pass, whatever name or MIME type they claim. Re-encoding
drops EXIF (GPS included) and every other metadata chunk; the pixel limit is checked from
the header before any pixel is decoded, which defeats decompression bombs. Files that carry
something else besides the picture (HTML or script appended or hidden in a comment: polyglots)
are refused outright. Pure Python and Pillow, no ORM.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
from dataclasses import dataclass

from django.conf import settings
from PIL import Image, ImageOps, UnidentifiedImageError

from chatsite.errors import ChatError

FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif", "WEBP": "image/webp"}
DATA_URL = re.compile(r"data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?:;[\w.+-]+=[\w.+-]+)*;base64,", re.ASCII)
# Markup that has no business inside a picture: the tell-tale of a polyglot file.
MARKUP = re.compile(rb"<(?:script|html[\s>]|body[\s>]|svg[\s>]|iframe|object|embed|\?php|!doctype)", re.IGNORECASE)
THUMB_SIZE = (320, 320)
MAX_FRAMES = 300


@dataclass(frozen=True)
class ProcessedImage:
    data: bytes
    content_type: str
    width: int
    height: int
    thumbnail: bytes
    thumbnail_type: str


def _bad(detail: str) -> ChatError:
    return ChatError("bad_request", detail)


def decode_data_url(value: str) -> bytes:
    """The bytes of a base64 data URL, refusing anything over the size limit before decoding it."""
    match = DATA_URL.match(value)
    if not match:
        raise _bad("An image must be sent as a base64 data URL (data:image/...;base64,...).")
    payload = value[match.end() :]
    limit = settings.CHAT_IMAGE_MAX_BYTES
    if len(payload) * 3 // 4 > limit + 3:
        raise ChatError("too_large", f"Images can be at most {limit / 1_000_000:.1f} MB.")
    try:
        raw = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise _bad("The image data is not valid base64.") from None
    if len(raw) > limit:
        raise ChatError("too_large", f"Images can be at most {limit / 1_000_000:.1f} MB.")
    if not raw:
        raise _bad("The image is empty.")
    return raw


def process_image(raw: bytes) -> ProcessedImage:
    """Validate `raw` as a PNG, JPEG, GIF or WebP picture and re-encode it without metadata."""
    if len(raw) > settings.CHAT_IMAGE_MAX_BYTES:
        raise ChatError("too_large", f"Images can be at most {settings.CHAT_IMAGE_MAX_BYTES / 1_000_000:.1f} MB.")
    if MARKUP.search(raw):
        raise _bad("This file holds markup or script besides the image, so it is refused.")
    try:
        with Image.open(io.BytesIO(raw), formats=list(FORMATS)) as image:
            _check_header(image, raw)
            image.load()
            return _reencode(image)
    except ChatError:
        raise
    except UnidentifiedImageError:
        raise _bad("This is not a PNG, JPEG, GIF or WebP image.") from None
    except Image.DecompressionBombError:
        raise ChatError("too_large", "The image has too many pixels.") from None
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise _bad(
            f"The image could not be decoded ({error.__class__.__name__}): it may be truncated or corrupt."
        ) from None


def _check_header(image: Image.Image, raw: bytes) -> None:
    if image.format not in FORMATS:
        raise _bad("This is not a PNG, JPEG, GIF or WebP image.")
    width, height = image.size
    frames = getattr(image, "n_frames", 1)
    if width < 1 or height < 1:
        raise _bad("The image has no pixels.")
    if (
        width * height > settings.CHAT_IMAGE_MAX_PIXELS
        or frames > MAX_FRAMES
        or width * height * frames > 4 * settings.CHAT_IMAGE_MAX_PIXELS
    ):
        raise ChatError("too_large", f"The image has too many pixels ({width}×{height}, {frames} frame(s)).")
    if problem := _end_problem(image.format, raw):
        raise _bad(problem)


def _end_problem(kind: str, raw: bytes) -> str | None:
    """What is wrong with where the file ends: no end marker (truncated), or bytes after it
    (how polyglots usually hide a payload). None when the file ends where the image does."""
    if kind == "WEBP":
        declared = int.from_bytes(raw[4:8], "little") + 8
        if len(raw) < declared:
            return "The image is truncated."
        return "The file has data after the end of the image, so it is refused." if len(raw) > declared + 1 else None
    marker, size = {"PNG": (b"IEND", 8), "JPEG": (b"\xff\xd9", 2), "GIF": (b"\x3b", 1)}[kind]
    end = raw.rfind(marker)
    if end < 0:
        return "The image is truncated."
    if raw[end + size :].strip(b"\x00"):
        return "The file has data after the end of the image, so it is refused."
    return None


def _reencode(image: Image.Image) -> ProcessedImage:
    """Save the pixels again, and nothing else: no EXIF, no text chunks, no ICC blobs."""
    kind = image.format
    animated = getattr(image, "n_frames", 1) > 1
    out = io.BytesIO()
    if kind == "JPEG":
        image = ImageOps.exif_transpose(image).convert("RGB")  # keep what the camera meant, drop the EXIF
        image.save(out, "JPEG", quality=90, optimize=True)
    elif kind == "PNG":
        image.save(out, "PNG")
    elif kind == "GIF":
        image.save(out, "GIF", save_all=animated)
    else:
        image.save(out, "WEBP", save_all=animated, quality=90, exif=b"", xmp=b"", icc_profile=None)
    width, height = image.size
    return ProcessedImage(
        data=out.getvalue(),
        content_type=FORMATS[kind],
        width=width,
        height=height,
        thumbnail=_thumbnail(image),
        thumbnail_type="image/webp",
    )


def _thumbnail(image: Image.Image) -> bytes:
    if getattr(image, "n_frames", 1) > 1:
        image.seek(0)
    frame = image.convert("RGBA" if image.mode in ("RGBA", "LA", "P", "PA") else "RGB")
    frame.thumbnail(THUMB_SIZE)
    out = io.BytesIO()
    frame.save(out, "WEBP", quality=80)
    return out.getvalue()
