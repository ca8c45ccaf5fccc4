"""Printable QR material for a source: an A4 poster for the waiting room and a small card
(91 × 55 mm, the size of a 診察券 or a 予約確認書 slip). fpdf2 with the project's Japanese font."""

from __future__ import annotations

import io

import segno
from fpdf import FPDF
from fpdf.enums import Align, WrapMode

from saas.fonts import JapaneseFontMissing, japanese_font_path

LINE_GREEN = (6, 199, 85)
INK = (34, 34, 34)
CALL_TO_ACTION = "LINEで友だち追加"
HOW_TO = "スマートフォンのカメラ、またはLINEアプリの「ホーム」→「友だち追加」→「QRコード」で読み取ってください。"
DEFAULT_MESSAGE = "休診のお知らせやご予約をLINEで受け取れます。"
CARD_SIZE = (91, 55)  # mm


FontMissing = JapaneseFontMissing  # no Japanese font: the poster would print empty boxes


def qr_png(url: str, scale: int = 12) -> bytes:
    """The QR code of ``url`` as a PNG (error correction M, quiet zone of 4 modules)."""
    out = io.BytesIO()
    segno.make(url, error="m", micro=False).save(out, kind="png", scale=scale, border=4)
    return out.getvalue()


def _document(format_) -> FPDF:
    path = japanese_font_path("bold")  # raises JapaneseFontMissing, which says how to install it
    pdf = FPDF(orientation="portrait", unit="mm", format=format_)
    pdf.set_auto_page_break(False)
    pdf.add_font("jp", fname=str(path))
    pdf.set_margins(0, 0, 0)
    pdf.add_page()
    return pdf


def _centered(pdf: FPDF, y: float, size: float, text: str, color=INK, margin: float = 15) -> float:
    """Write wrapped, centred text from ``y``; returns the y below it."""
    pdf.set_font("jp", size=size)
    pdf.set_text_color(*color)
    pdf.set_xy(margin, y)
    pdf.multi_cell(pdf.w - 2 * margin, size * 0.5, text, align=Align.C, wrapmode=WrapMode.CHAR)
    return pdf.get_y()


def poster_pdf(clinic_name: str, url: str, message: str = "") -> bytes:
    """A4 poster: the clinic's name on a LINE-green band, the call to action, the QR, how to scan."""
    pdf = _document("A4")
    pdf.set_fill_color(*LINE_GREEN)
    pdf.rect(0, 0, pdf.w, 48, style="F")
    _centered(pdf, 16, 26, clinic_name, color=(255, 255, 255))
    y = _centered(pdf, 62, 34, CALL_TO_ACTION, color=LINE_GREEN)
    y = _centered(pdf, y + 4, 16, message or DEFAULT_MESSAGE)
    side = 110
    pdf.image(io.BytesIO(qr_png(url)), x=(pdf.w - side) / 2, y=y + 8, w=side, h=side)
    _centered(pdf, y + side + 16, 12, HOW_TO, margin=25)
    return bytes(pdf.output())


def card_pdf(clinic_name: str, url: str, message: str = "") -> bytes:
    """A 91 × 55 mm card: QR on the left, clinic name and call to action on the right."""
    pdf = _document(CARD_SIZE)
    side = 43
    pdf.image(io.BytesIO(qr_png(url, scale=8)), x=4, y=(pdf.h - side) / 2, w=side, h=side)
    left, width = 4 + side + 2, pdf.w - side - 10
    pdf.set_font("jp", size=9)
    pdf.set_text_color(*INK)
    pdf.set_xy(left, 9)
    pdf.multi_cell(width, 4.5, clinic_name, wrapmode=WrapMode.CHAR)
    pdf.set_font("jp", size=12)
    pdf.set_text_color(*LINE_GREEN)
    pdf.set_xy(left, pdf.get_y() + 3)
    pdf.multi_cell(width, 6, CALL_TO_ACTION, wrapmode=WrapMode.CHAR)
    pdf.set_font("jp", size=7)
    pdf.set_text_color(*INK)
    pdf.set_xy(left, pdf.get_y() + 2)
    pdf.multi_cell(width, 3.6, message or DEFAULT_MESSAGE, wrapmode=WrapMode.CHAR)
    return bytes(pdf.output())
