"""Fast retries for the pipeline, as in tests/delivery."""

from tests.delivery.conftest import fast_retries  # noqa: F401
