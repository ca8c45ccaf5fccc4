"""Which tables hold a patient's data, and what export and erasure do with each (APPI).

Every table with a LINE user id or a friend id is registered here with :func:`patient_table`:
the patient's export then includes its rows, and erasure deletes them, or anonymises them
(blanking the named columns and replacing the LINE user id) where the rows must stay for
counts and billing. ``tests/privacy/test_coverage.py`` finds such tables from the metadata and
fails for one that is not registered — so a table you add (coupons, form answers, inflow
sources…) needs one line, in your capability or in ``DEFAULTS`` below::

    from saas.privacy.coverage import ANONYMISE, DELETE, patient_table

    patient_table("coupon_use", keys=("friend_id",), erase=DELETE, section="coupons")
    patient_table("form_answer", keys=("line_user_id",), erase=ANONYMISE, blank={"answers": {}})

``KEEP`` is for rows that hold nothing about the person beyond the link to the (anonymised)
friend; say why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DELETE, ANONYMISE, KEEP = "delete", "anonymise", "keep"
PATIENT_KEYS = ("line_user_id", "friend_id")  # column names that identify the patient
FRIEND_LISTS = ("friend_ids",)  # JSON lists of friend ids (a send's recipients): matched by membership


@dataclass(frozen=True)
class PatientTable:
    table: str
    keys: tuple[str, ...]  # columns matched against the friend's LINE user id / id
    erase: str  # DELETE, ANONYMISE or KEEP
    section: str  # name of the export section
    blank: dict[str, Any] = field(default_factory=dict)  # ANONYMISE: column -> value after erasure
    why: str = ""  # KEEP: why nothing needs removing


_REGISTRY: dict[str, PatientTable] = {}


def patient_table(
    table: str,
    *,
    keys: tuple[str, ...],
    erase: str,
    section: str | None = None,
    blank: dict[str, Any] | None = None,
    why: str = "",
) -> PatientTable:
    """Declare that ``table`` holds patients' data, matched on ``keys``."""
    if erase not in (DELETE, ANONYMISE, KEEP):
        raise ValueError(f"erase must be delete, anonymise or keep, not {erase!r}")
    if erase == KEEP and not why:
        raise ValueError(f"{table}: say why its rows can stay after erasure")
    entry = PatientTable(table, tuple(keys), erase, section or table, dict(blank or {}), why)
    _REGISTRY[table] = entry
    return entry


# The tables of the capabilities that exist today, in erasure order (children first).
DEFAULTS = (
    PatientTable("message", ("friend_id",), DELETE, "messages"),
    PatientTable("webhook_event", ("line_user_id",), DELETE, "events"),
    PatientTable("friend_tag", ("friend_id",), DELETE, "tags"),
    PatientTable("friend_field_value", ("friend_id",), DELETE, "fields"),
    PatientTable("friend_attribute", ("friend_id",), DELETE, "attribute_rows"),  # attributes' index rows
    PatientTable("consent_change", ("friend_id",), DELETE, "consent_changes"),
    PatientTable("chat_send", ("friend_id",), DELETE, "chat_sends"),
    PatientTable("conversation", ("friend_id",), DELETE, "conversation"),
    PatientTable("conversation_state", ("line_user_id",), DELETE, "conversation_state"),
    PatientTable("booking", ("friend_id", "line_user_id"), ANONYMISE, "bookings", {"patient_name": ""}),
    # The rendered, personalised messages (with the patient's name) are a copy of their data.
    PatientTable("delivery_recipient", ("friend_id", "line_user_id"), ANONYMISE, "deliveries", {"messages": []}),
    PatientTable(
        "delivery_chunk",
        ("friend_ids",),
        KEEP,
        "delivery_chunks",
        why="friend ids and the shared message only; the friend row they point at is anonymised",
    ),  # fmt: skip
    PatientTable(
        "delivery", ("friend_id",), KEEP, "single_deliveries", why="staff's template; the rendered copy is erased"
    ),
    # Inflow-source scans stay for the source statistics, without the LINE user id.
    PatientTable("source_scan", ("friend_id", "line_user_id"), ANONYMISE, "source_scans"),
    PatientTable("rule_reminder", ("friend_id",), KEEP, "reminders", why="ids and dates only; the friend is erased"),
)


def registered() -> dict[str, PatientTable]:
    """Every registered table (defaults first, then what capabilities added)."""
    return {entry.table: entry for entry in DEFAULTS} | _REGISTRY


def patient_columns(table) -> list[str]:
    """The columns of a table that identify a patient: LINE user ids and friend ids/foreign keys."""
    return [
        column.name
        for column in table.columns
        if column.name in PATIENT_KEYS + FRIEND_LISTS
        or "line_user" in column.name
        or any(fk.column.table.name == "friend" for fk in column.foreign_keys)
    ]


def uncovered(metadata) -> dict[str, list[str]]:
    """Tables (other than ``friend`` itself) whose patient columns are not all registered keys."""
    known = registered()
    missing = {}
    for table in metadata.sorted_tables:
        columns = patient_columns(table)
        if table.name == "friend" or not columns:
            continue
        entry = known.get(table.name)
        left = [c for c in columns if entry is None or c not in entry.keys]
        if left:
            missing[table.name] = left
    return missing
