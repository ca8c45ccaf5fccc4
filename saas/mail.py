"""Outgoing email behind one small function: SMTP when MAIL_SERVER is set, else an outbox folder.

Without a mail server (development, tests, a deployment not yet configured) each message is
written as an ``.eml`` file to MAIL_OUTBOX_DIR and a log line says where, so flows that send
mail (password reset) can be followed end to end on one machine.
"""

from __future__ import annotations

import logging
import smtplib
import uuid
from email.message import EmailMessage
from pathlib import Path

from flask import current_app

log = logging.getLogger(__name__)


def _message(to: str, subject: str, body: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = current_app.config["MAIL_FROM"]
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = f"<{uuid.uuid4()}@tsunagu>"
    message.set_content(body)
    return message


def _send_smtp(message: EmailMessage) -> None:
    config = current_app.config
    with smtplib.SMTP(config["MAIL_SERVER"], config["MAIL_PORT"], timeout=15) as smtp:
        if config["MAIL_USE_TLS"]:
            smtp.starttls()
        if config["MAIL_USERNAME"]:
            smtp.login(config["MAIL_USERNAME"], config["MAIL_PASSWORD"])
        smtp.send_message(message)


def _write_outbox(message: EmailMessage) -> Path:
    outbox = Path(current_app.config["MAIL_OUTBOX_DIR"])
    outbox.mkdir(parents=True, exist_ok=True)
    path = outbox / f"{uuid.uuid4().hex}.eml"
    path.write_bytes(bytes(message))
    return path


def send(to: str, subject: str, body: str) -> None:
    """Send one plain-text email (raises smtplib.SMTPException / OSError when SMTP fails)."""
    message = _message(to, subject, body)
    if current_app.config.get("MAIL_SERVER"):
        _send_smtp(message)
        return
    path = _write_outbox(message)
    log.warning("MAIL_SERVER is not set: email %r written to %s", subject, path)
