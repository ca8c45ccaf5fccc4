"""LINE's limits on message objects, in one place.

From the Messaging API reference (developers.line.biz/en/reference/messaging-api/) and the
OpenAPI file in /work/shared/reference/line-openapi/messaging-api.yml, which states only a few
of them (maxItems 5 messages, 13 quick-reply items, 2000-char icon URLs, 300-char postback data).
"""

MAX_MESSAGES = 5
TEXT_MAX = 5000
URL_MAX = 2000
URI_ACTION_MAX = 1000
ALT_TEXT_MAX = {"template": 400, "flex": 1500}
BUTTONS_TITLE_MAX = 40
BUTTONS_TEXT_MAX = 160
BUTTONS_TEXT_MAX_WITH_IMAGE_OR_TITLE = 60
BUTTONS_ACTIONS_MAX = 4
ACTION_LABEL_MAX = 20
ACTION_TEXT_MAX = 300
POSTBACK_DATA_MAX = 300
QUICK_REPLY_ITEMS_MAX = 13
SENDER_NAME_MAX = 20
FLEX_BUBBLE_BYTES_MAX = 30_000
FLEX_CAROUSEL_BYTES_MAX = 50_000
FLEX_CAROUSEL_BUBBLES_MAX = 12
STICKER_ID_PATTERN = r"^[0-9]{1,20}$"

MESSAGE_TYPES = ("text", "image", "sticker", "flex", "template")
# Made by saas.coupons (LINE's coupon API gives the id), never typed in the composer: accepted, not offered.
COUPON_TYPE = "coupon"
DELIVERY_TAG_MAX = 30  # coupon message
TEMPLATE_TYPES = ("buttons",)
BUTTON_ACTION_TYPES = ("message", "uri", "postback")
QUICK_REPLY_ACTION_TYPES = ("message", "postback", "camera", "cameraRoll", "location")
FLEX_COMPONENT_TYPES = ("box", "text", "image", "button", "separator", "filler", "icon", "span", "video")


def utf16_length(text: str) -> int:
    """Length as LINE counts it: UTF-16 code units (an emoji outside the BMP counts two)."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def cut_to_utf16(text: str, max_units: int) -> str:
    """The longest prefix of ``text`` within ``max_units`` UTF-16 code units (never half an emoji)."""
    if len(text) * 2 <= max_units:
        return text
    units = 0
    for index, char in enumerate(text):
        units += 2 if ord(char) > 0xFFFF else 1
        if units > max_units:
            return text[:index]
    return text
