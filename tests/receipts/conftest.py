"""Receipts reuse the pipeline tests' fast back-off and the conversation tests' responder override."""

from tests.delivery.conftest import fast_retries, sandbox_state  # noqa: F401
from tests.friends.conftest import first_responders  # noqa: F401
