"""Demo tenants and staff for ``flask demo``: what a new user explores first."""

from __future__ import annotations

import sqlalchemy as sa

from saas.auth import services as auth_services
from saas.auth.models import User
from saas.auth.roles import Role
from saas.extensions import db
from saas.tenancy.models import Agency, Clinic, Organization, OrganizationKind
from saas.tenancy.services import add_membership

DEMO_PASSWORD = "tsunagu-demo-2026"

AGENCY = {"slug": "mirai-support", "name": "みらいメディカルサポート株式会社"}
ORGANIZATIONS = [
    {
        "slug": "sakura-kai",
        "name": "医療法人社団さくら会",
        "kind": OrganizationKind.MEDICAL_CORPORATION,
        "agency": True,
        "clinics": [
            {
                "slug": "sakura-shibuya",
                "name": "さくら内科クリニック 渋谷院",
                "specialty": "内科・小児科",
                "phone": "03-1234-5601",
                "address": "東京都渋谷区道玄坂1-2-3 さくらビル3F",
            },
            {
                "slug": "sakura-shinjuku",
                "name": "さくら内科クリニック 新宿院",
                "specialty": "内科",
                "phone": "03-1234-5602",
                "address": "東京都新宿区西新宿2-4-6 新宿メディカルモール5F",
            },
            {
                "slug": "sakura-shinagawa",
                "name": "さくら内科クリニック 品川院",
                "specialty": "内科・健診",
                "phone": "03-1234-5603",
                "address": "東京都港区港南2-1-1 品川駅前ビル2F",
            },
        ],
    },
    {
        "slug": "aoba-derm",
        "name": "あおば皮膚科クリニック",
        "kind": OrganizationKind.INDEPENDENT,
        "agency": True,
        "clinics": [
            {
                "slug": "aoba-hifuka",
                "name": "あおば皮膚科クリニック",
                "specialty": "皮膚科・美容皮膚科",
                "phone": "045-987-6543",
                "address": "神奈川県横浜市青葉区青葉台1-5-8",
            },
        ],
    },
    {
        "slug": "hikari-kenshin",
        "name": "ひかり健診センター",
        "kind": OrganizationKind.INDEPENDENT,
        "agency": False,
        "clinics": [
            {
                "slug": "hikari-kenshin",
                "name": "ひかり健診センター",
                "specialty": "健康診断・人間ドック",
                "phone": "06-6543-2100",
                "address": "大阪府大阪市北区梅田3-3-3 ひかりタワー8F",
            },
        ],
    },
]

# (email, name, role, scope slug kind, scope slug)
STAFF = [
    ("platform@tsunagu.example", "プラットフォーム管理者", Role.OWNER, "platform", None),
    ("agency@mirai.example", "代理店 運用担当", Role.ADMIN, "agency", "mirai-support"),
    ("hq@sakura.example", "さくら会 本部", Role.ADMIN, "organization", "sakura-kai"),
    ("owner@sakura.example", "渋谷院 院長", Role.OWNER, "clinic", "sakura-shibuya"),
    ("sender@sakura.example", "渋谷院 情報発信担当", Role.SENDER, "clinic", "sakura-shibuya"),
    ("responder@sakura.example", "渋谷院 受付（問い合わせ対応）", Role.RESPONDER, "clinic", "sakura-shibuya"),
    ("analyst@sakura.example", "渋谷院 分析担当", Role.ANALYST, "clinic", "sakura-shibuya"),
    ("viewer@sakura.example", "渋谷院 閲覧のみ", Role.VIEWER, "clinic", "sakura-shibuya"),
    ("staff@hikari.example", "ひかり健診 事務", Role.ADMIN, "clinic", "hikari-kenshin"),
]


def _get_or_create(model, slug: str, **fields):
    row = db.session.scalars(sa.select(model).where(model.slug == slug)).first()
    if row is None:
        row = model(slug=slug, **fields)
        db.session.add(row)
        db.session.flush()
    return row


def load_tenants() -> dict[str, object]:
    """Create the demo agency, organizations and clinics (idempotent); returns them by slug."""
    by_slug: dict[str, object] = {}
    agency = _get_or_create(Agency, AGENCY["slug"], name=AGENCY["name"])
    by_slug[agency.slug] = agency
    for spec in ORGANIZATIONS:
        organization = _get_or_create(
            Organization,
            spec["slug"],
            name=spec["name"],
            kind=spec["kind"],
            agency_id=agency.id if spec["agency"] else None,
        )
        by_slug[("organization", organization.slug)] = organization
        for clinic_spec in spec["clinics"]:
            clinic = _get_or_create(
                Clinic,
                clinic_spec["slug"],
                organization_id=organization.id,
                **{k: v for k, v in clinic_spec.items() if k != "slug"},
            )
            by_slug[clinic.slug] = clinic
    return by_slug


def load_staff(tenants: dict[str, object], password: str = DEMO_PASSWORD) -> list[User]:
    """Create one user per demo role (idempotent)."""
    users = []
    for email, name, role, scope, slug in STAFF:
        user = auth_services.get_user_by_email(email)
        if user is None:
            user = auth_services.create_user(email, name, password)
            target = {
                "platform": {},
                "agency": {"agency": tenants.get(slug)},
                "organization": {"organization": tenants.get(("organization", slug))},
                "clinic": {"clinic": tenants.get(slug)},
            }[scope]
            add_membership(user, role, **target)
        users.append(user)
    db.session.flush()
    return users
