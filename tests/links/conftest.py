from tests.delivery.conftest import fast_retries, sandbox_state  # noqa: F401  (same pipeline fixtures)
