"""Emergency symptoms in a patient's message: 119 / #7119 guidance at once, and the chat flagged
as urgent for staff. Each clinic keeps its own keyword list; None means the shipped default."""

from __future__ import annotations

from saas.autoreply.models import AutoReplySettings
from saas.autoreply.normalize import normalize

# Symptoms the Fire and Disaster Management Agency lists as reasons to call 119 at once.
DEFAULT_EMERGENCY_KEYWORDS = [
    "胸が痛",
    "胸の痛み",
    "胸が苦し",
    "息苦し",
    "息ができ",
    "呼吸が苦し",
    "呼吸困難",
    "意識がな",
    "意識がもうろう",
    "けいれん",
    "痙攣",
    "ひきつけ",
    "血が止まらな",
    "大量に出血",
    "吐血",
    "ろれつが回らな",
    "顔がゆがむ",
    "片側の手足",
    "激しい頭痛",
    "突然の激しい",
    "倒れて動かな",
    "アナフィラキシー",
]
EMERGENCY_REPLY = (
    "【緊急の可能性があります】\n"
    "胸の痛み・息苦しさ・意識がはっきりしないなど、命に関わるおそれがある症状のときは、"
    "このLINEを待たずに、すぐ119番に電話して救急車を呼んでください。\n"
    "救急車を呼ぶか迷うときは、救急安心センター「#7119」（実施地域のみ）に電話で相談できます。\n"
    "{clinic}へのご連絡はお電話（{phone}）でお願いします。このメッセージはスタッフにも届いています。"
)


def keywords_of(settings: AutoReplySettings) -> list[str]:
    """The clinic's emergency keywords (the shipped default when it never set its own)."""
    if settings.emergency_keywords is None:
        return list(DEFAULT_EMERGENCY_KEYWORDS)
    return list(settings.emergency_keywords)


def is_emergency(settings: AutoReplySettings, text: str) -> bool:
    """Whether the text mentions one of the clinic's emergency symptoms (spelling normalised)."""
    normalized = normalize(text)
    return any(word and normalize(word) in normalized for word in keywords_of(settings))


def emergency_reply(clinic) -> str:
    """The 119 / #7119 guidance with the clinic's name and phone."""
    phone = clinic.phone or "—"
    return EMERGENCY_REPLY.format(clinic=clinic.name, phone=phone)
