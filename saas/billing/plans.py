"""Tsunagu's prices as data (plans.yaml), and making Stripe's products and prices match them."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

PLANS_FILE = Path(__file__).with_name("plans.yaml")


@dataclass(frozen=True)
class Plan:
    key: str
    name: str
    description: str
    lookup_key: str
    currency: str
    unit_amount: int
    interval: str = "month"


@cache
def _catalogue(path: Path = PLANS_FILE) -> tuple[str, dict[str, Plan]]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    plans = {entry["key"]: Plan(**entry) for entry in data["plans"]}
    if data["default_plan"] not in plans:
        raise ValueError(f"{path}: default_plan {data['default_plan']!r} is not one of {sorted(plans)}")
    return data["default_plan"], plans


def plans() -> dict[str, Plan]:
    """Every plan by key."""
    return _catalogue()[1]


def get_plan(key: str | None = None) -> Plan:
    """The plan with this key (the default plan when None)."""
    default, found = _catalogue()
    return found[key or default]


def price_id(client, plan: Plan) -> str:
    """The Stripe price of the plan: found by lookup key, created (with its product) when missing."""
    existing = client.v1.prices.list(params={"lookup_keys": [plan.lookup_key], "active": True, "limit": 1}).data
    if existing and existing[0].unit_amount == plan.unit_amount and existing[0].currency == plan.currency:
        return existing[0].id
    product = existing[0].product if existing else None
    if product is None:
        created = client.v1.products.create(
            params={"name": plan.name, "description": plan.description, "metadata": {"tsunagu_plan": plan.key}}
        )
        product = created.id
    price = client.v1.prices.create(
        params={
            "product": product,
            "currency": plan.currency,
            "unit_amount": plan.unit_amount,
            "recurring": {"interval": plan.interval},
            "lookup_key": plan.lookup_key,
            "transfer_lookup_key": bool(existing),
            "nickname": plan.name,
            "metadata": {"tsunagu_plan": plan.key},
        }
    )
    return price.id
