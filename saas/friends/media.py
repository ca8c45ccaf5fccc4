"""Patients' images, video, audio and files: fetched from LINE's content API, kept encrypted.

LINE keeps a message's content only for a limited time, so it is fetched by a job right after
the message is stored (``saas.friends.jobs.fetch_message_media``) and kept in ``MessageMedia``
as a Fernet token (the key of every other secret at rest). Content LINE does not host (an
``external`` content provider) or larger than ``MEDIA_MAX_BYTES`` is not fetched.
"""

from __future__ import annotations

import base64
import logging

import sqlalchemy as sa
from flask import current_app

from saas import line
from saas.common import utcnow
from saas.extensions import db
from saas.friends.models import MediaState, Message, MessageMedia
from saas.line.errors import LineError

log = logging.getLogger(__name__)

MEDIA_KINDS = ("image", "video", "audio", "file")
DEFAULT_MAX_BYTES = 20 * 1024 * 1024


def note_pending(message: Message, content: dict) -> MessageMedia:
    """Record that this message's content is to be fetched (or why it will not be)."""
    media = MessageMedia(message_id=message.id, state=MediaState.PENDING, file_name=_file_name(content))
    provider = content.get("contentProvider") if isinstance(content.get("contentProvider"), dict) else {}
    if provider.get("type") == "external":
        media.state, media.error = MediaState.FAILED, "hosted outside LINE"
    size = content.get("fileSize")
    if isinstance(size, int) and size > max_bytes():
        media.state, media.size = MediaState.TOO_LARGE, size
    db.session.add(media)
    db.session.flush()
    return media


def _file_name(content: dict) -> str:
    name = content.get("fileName")
    return name[:255] if isinstance(name, str) else ""


def max_bytes() -> int:
    return int(current_app.config.get("MEDIA_MAX_BYTES") or DEFAULT_MAX_BYTES)


def fetch(clinic, media: MessageMedia) -> None:
    """Download the content from LINE and store it encrypted; a failure is recorded, not raised."""
    message = db.session.get(Message, media.message_id)
    if media.state != MediaState.PENDING or message is None or not message.line_message_id:
        return
    try:
        content = line.client.message_content(clinic, message.line_message_id)
    except LineError as exc:
        if exc.retryable:
            raise  # LINE in trouble: the job's retry fetches it later
        media.state, media.error = MediaState.FAILED, exc.message[:500]
        db.session.commit()
        return
    _store(media, content.data, content.content_type)


def _store(media: MessageMedia, data: bytes, content_type: str) -> None:
    media.size, media.content_type, media.fetched_at = len(data), content_type, utcnow()
    if len(data) > max_bytes():
        media.state = MediaState.TOO_LARGE
    else:
        media.content, media.state = base64.b64encode(data).decode(), MediaState.STORED
    db.session.commit()


def content_of(media: MessageMedia) -> bytes:
    """The decrypted bytes of stored media."""
    return base64.b64decode(media.content or "")


def media_by_message(message_ids: list[int]) -> dict[int, MessageMedia]:
    """The media rows of these messages (current tenant scope), without loading their content."""
    if not message_ids:
        return {}
    rows = db.session.scalars(
        sa.select(MessageMedia)
        .where(MessageMedia.message_id.in_(message_ids))
        .options(sa.orm.defer(MessageMedia.content))
    )
    return {row.message_id: row for row in rows}
