"""LINE's statistics synced into our tables (opens, clicks, followers, demographics) and blocks
attributed to the deliveries that preceded them. See ``saas/insights/README.md``."""
