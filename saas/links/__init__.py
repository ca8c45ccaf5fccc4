"""Clicks, always: every URL we send goes out as a short tracked link ``{PUBLIC_BASE_URL}/l/<code>``.

What is rewritten (saas.links.rewrite): ``uri`` actions anywhere in a message (template
buttons, Flex, imagemap ``linkUri``, quick replies), URLs in the text of text messages, and
rich menu ``uri`` areas. Deliveries of every kind (broadcast, segment, step, 1:1 push, coupons)
are rewritten by the planner (saas.delivery.planner), rich menus when deployed.

Per recipient or per link (``Delivery.track_clicks_per_friend``, the composer's
「友だちごとにクリックを計測」, on by default): per recipient, every friend gets codes of their
own, so a forwarded link still counts for the friend it was sent to, once in ``unique``. A
multicast carries one text for everybody, so such a delivery is sent as personalised push
chunks (``DeliveryRecipient`` rows, as for ``{{friend.display_name}}``): same billable count,
but one API call per friend instead of one per 500. Off, or an urgent notice (speed first),
or a rich menu: one code per URL, multicast kept, clicks counted per link only.

Tables for other capabilities (ids are 64-bit on Postgres; every index is led by clinic_id):

``tracked_link`` (:class:`~saas.links.models.TrackedLink`)
    ``clinic_id``, ``code`` (unique, 16 base62 characters from 95 random bits), ``url`` (the
    original), ``delivery_id`` or ``rich_menu_id`` (what sent it; step deliveries are
    deliveries of kind ``step``), ``friend_id`` (the recipient; NULL when shared), ``created_at``.
    A resend (「失敗分を再送」) sends the original's renderings again: its clicks count under
    the original delivery.
``link_click`` (:class:`~saas.links.models.LinkClick`)
    ``clinic_id``, ``link_id``, ``friend_id`` (the link's recipient, NULL for shared links),
    ``delivery_id`` (NULL for rich menus), ``clicked_at`` (naive UTC). One row per counted tap:
    HEAD requests, link previews (LINE's ``facebookexternalhit``/``line-poker`` crawler) and
    prefetches are redirected but not counted (saas.links.previews).

Reading them: :func:`saas.links.services.clicks_by_link` (per URL of a delivery: clicks,
unique friends, click rate) and :func:`saas.links.services.clicks_of_friend`.

The redirect (``GET /l/<code>``, saas.links.views) is public: no session, login or CSRF; one
lookup by the unique code and one INSERT, written at once rather than buffered in Redis (an
INSERT into an append-only table costs about what an RPUSH does, and a buffer would add a
flush job and lose clicks when Redis restarts). A counted tap then marks its clinic's Japan day
dirty for the analytics roll-ups (one Redis ``SADD``, best effort: measured +0.2 ms of CPU per tap,
0.78 → 0.97 ms in-process on Postgres). Only codes we created are reachable: nothing
in the request chooses the target, and an unknown code answers a 404 page.
"""
