"""The LINE adapter: the only code that talks to the LINE platform (Messaging API, data host).

Everything goes through the official ``line-bot-sdk`` v3 client, pointed at
``LINE_API_BASE`` / ``LINE_DATA_API_BASE`` (LINE's hosts in production, the sandbox in
development and tests). SDK errors are translated into :mod:`saas.line.errors`.
"""

from saas.line import client, errors  # noqa: F401  (``line.client.reply(...)``)
