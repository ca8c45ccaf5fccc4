"""Clinic logos: uploads checked by size and by what the bytes are (not the file name), kept under the
instance folder with an unguessable name and served publicly (LINE and patients' phones load them)."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

from flask import current_app
from PIL import Image, UnidentifiedImageError

MAX_BYTES = 1024 * 1024
FORMATS = {"PNG": "png", "JPEG": "jpg"}
MAX_SIDE = 2000


class LogoProblem(ValueError):
    """The upload is not a logo we accept; the message says why, in Japanese."""


def folder() -> Path:
    path = Path(current_app.instance_path) / "logos"
    path.mkdir(parents=True, exist_ok=True)
    return path


def check(data: bytes) -> str:
    """The file extension for a valid logo, or LogoProblem."""
    if not data:
        raise LogoProblem("ファイルが選ばれていません")
    if len(data) > MAX_BYTES:
        raise LogoProblem("ロゴは1MB以下の画像にしてください")
    try:
        with Image.open(io.BytesIO(data)) as image:
            kind, size = image.format, image.size
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise LogoProblem("PNGまたはJPEGの画像を選んでください") from error
    if kind not in FORMATS:
        raise LogoProblem("PNGまたはJPEGの画像を選んでください")
    if max(size) > MAX_SIDE:
        raise LogoProblem(f"画像は縦横{MAX_SIDE}ピクセル以下にしてください")
    return FORMATS[kind]


def save(clinic_id: int, data: bytes) -> str:
    """Store a checked logo; returns its file name (content-addressed, so caches never go stale)."""
    extension = check(data)
    name = f"{clinic_id}-{hashlib.sha256(data).hexdigest()[:24]}.{extension}"
    (folder() / name).write_bytes(data)
    return name
