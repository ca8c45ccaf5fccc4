"""Per-clinic LINE webhooks: verify, de-duplicate, store, enqueue, answer 200 fast.

Handling happens in workers (:mod:`saas.webhooks.jobs`), never inside the request.
"""
