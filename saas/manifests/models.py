"""Where a clinic's LINE secrets come from: environment-variable names, never the values."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from saas.common import Timestamped
from saas.extensions import db
from saas.tenancy.scoping import TenantOwned


class ChannelSecretSource(TenantOwned, Timestamped, db.Model):
    """The names of the environment variables a manifest reads the channel secrets from."""

    __table_args__ = (sa.UniqueConstraint("clinic_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    channel_secret_env: Mapped[str] = mapped_column(sa.String(100), default="")
    access_token_env: Mapped[str] = mapped_column(sa.String(100), default="")
