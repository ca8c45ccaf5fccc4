"""What other capabilities hear from coupons.

``coupon_used`` is the goal 「クーポン利用」 of step delivery: a scenario aiming at the use of a
coupon stops for the patient who used it. It calls ``saas.steps.triggers.on_goal`` when step
delivery is installed (it is built beside coupons), and does nothing otherwise.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging

from saas.extensions import db
from saas.friends.models import Friend

log = logging.getLogger(__name__)
STEP_TRIGGERS = "saas.steps.triggers"


def _steps_installed() -> bool:
    return importlib.util.find_spec("saas.steps") is not None and importlib.util.find_spec(STEP_TRIGGERS) is not None


def coupon_used(clinic_id: int, coupon_id: int, friend_id: int | None) -> None:
    """After a redemption is committed: tell step delivery the goal ``coupon_used`` was reached."""
    if friend_id is None or not _steps_installed():
        return
    friend = db.session.get(Friend, friend_id)
    if friend is None:
        return
    try:
        importlib.import_module(STEP_TRIGGERS).on_goal(friend, "coupon_used", coupon_id=coupon_id)
        db.session.commit()
    except Exception:  # the redemption is done; a scenario left running is the lesser harm
        db.session.rollback()
        log.exception("step goal coupon_used failed for clinic %s coupon %s", clinic_id, coupon_id)
