"""One delivery's report: how many friends it reached and the conversions attributed to it.

Reach counts the delivery's receipts (the unique ``(clinic_id, delivery_id, friend_id)`` index
answers it without reading rows); conversions come from the attributions stored when they
happened. Clicks, opens and blocks join here as their capabilities store them.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from saas.analytics.models import Conversion
from saas.analytics.reports import KIND_SERIES, Chart, Series, rate
from saas.delivery.models import Delivery
from saas.extensions import db
from saas.receipts.models import FriendReceipt


@dataclass
class DeliveryReport:
    delivery: Delivery
    reach: int
    conversions: dict[str, int]

    @property
    def conversion_total(self) -> int:
        return sum(self.conversions.values())

    @property
    def conversion_rate(self) -> float | None:
        return rate(self.conversion_total, self.reach)

    def chart(self) -> Chart:
        from flask_babel import lazy_gettext as _l

        return Chart(
            "conversions",
            _l("この配信のコンバージョン"),
            _l("種類"),
            [str(label) for _kind, label, _color in KIND_SERIES],
            [Series("count", _l("件数"), [self.conversions.get(kind, 0) for kind, _l2, _c in KIND_SERIES], "#3e63dd")],
        )


def report(delivery: Delivery) -> DeliveryReport:
    """The delivery's reach and attributed conversions (the caller's tenant scope applies)."""
    reach = db.session.scalar(
        sa.select(sa.func.count()).where(
            FriendReceipt.clinic_id == delivery.clinic_id, FriendReceipt.delivery_id == delivery.id
        )
    )
    rows = db.session.execute(
        sa.select(Conversion.kind, sa.func.count())
        .where(Conversion.clinic_id == delivery.clinic_id, Conversion.received_delivery_id == delivery.id)
        .group_by(Conversion.kind)
    ).all()
    return DeliveryReport(delivery, reach or 0, dict(rows))
