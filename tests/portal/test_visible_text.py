"""Every portal page of the demo, read in Japanese as a receptionist reads it: no developer internals.

Each role signs in and follows every link and htmx URL it is shown; then every GET route of
``app.url_map`` that no link reached is opened with real demo rows in its URL. A page fails when
its visible text (text nodes and the values of text fields) shows ``None``, ``{{``, a raw LINE
user id or an ISO-8601 UTC timestamp. A route added tomorrow is walked without editing this file;
a route whose URL argument the walker cannot fill fails here until it is taught one.
"""

from __future__ import annotations

import re
from collections import Counter
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import pytest
from werkzeug.exceptions import HTTPException

from saas.extensions import db
from tests.helpers import login
from tests.portal.demo_portal import build_demo

INTERNALS = {
    "None": re.compile(r"(?<![A-Za-z])None(?![A-Za-z])"),
    "template variable": re.compile(r"\{\{"),
    "LINE user id": re.compile(r"(?<![0-9A-Za-z])U[0-9a-f]{32}(?![0-9a-f])"),
    "ISO-8601 time": re.compile(
        r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2})?(\.\d+)?(Z|[+-]00:?00)?|(?<![A-Za-z])UTC(?![A-Za-z])"
    ),
}
ROLES = [
    "platform@tsunagu.example",
    "agency@mirai.example",
    "hq@sakura.example",
    "owner@sakura.example",
    "sender@sakura.example",
    "responder@sakura.example",
    "analyst@sakura.example",
    "viewer@sakura.example",
]
NOT_PAGES = {"static", "vendor", "health.healthz", "portal.set_language", "members.sso_callback", "auth.logout"}
MAX_PAGES_PER_ROLE = 250
PAGES_PER_ENDPOINT = 3
TEXT_INPUTS = {None, "text", "search", "email", "tel", "url"}


SOURCE_TAGS = {"textarea", "code"}  # where a message's source, variables included, is edited or explained
VOID_TAGS = {"input", "img", "br", "hr", "meta", "link", "source", "wbr", "area", "col", "embed"}


class VisibleText(HTMLParser):
    """Text a person sees: text nodes outside script/style/template, and values of text fields.

    ``sources`` holds the text of editors and variable references (textarea, code, elements
    marked ``data-template-source``), where ``{{variables}}`` belong.
    """

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.sources: list[str] = []
        self.links: list[str] = []
        self._open: list[tuple[str, bool, bool]] = []  # (tag, hidden, source)

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "input" and attributes.get("type") in TEXT_INPUTS and attributes.get("value"):
            (self.sources if "data-template-source" in attributes else self.parts).append(attributes["value"])
        for name in ("href", "hx-get", "src"):
            if attributes.get(name):
                self.links.append(attributes[name])
        if tag not in VOID_TAGS:
            hidden = tag in ("script", "style", "template")
            source = tag in SOURCE_TAGS or "data-template-source" in attributes
            self._open.append((tag, hidden, source))

    def handle_endtag(self, tag):
        for index in range(len(self._open) - 1, -1, -1):
            if self._open[index][0] == tag:
                del self._open[index:]
                break

    def handle_data(self, data):
        if not data.strip() or any(hidden for _, hidden, _ in self._open):
            return
        (self.sources if any(source for *_, source in self._open) else self.parts).append(data.strip())


def read_page(html: str) -> VisibleText:
    parser = VisibleText()
    parser.feed(html)
    return parser


def internals_in(text: str, *, source: bool = False) -> list[str]:
    """What a receptionist should never read, found in a page's visible text (or its editors)."""
    found = []
    for name, pattern in INTERNALS.items():
        if source and name == "template variable":
            continue
        for match in pattern.finditer(text):
            start = max(match.start() - 30, 0)
            excerpt = " ".join(text[start : match.end() + 30].split())
            found.append(f"{name}: …{excerpt}…")
    return found


def test_the_checker_catches_each_internal_and_passes_japanese_text():
    assert internals_in("（None医師）") and internals_in("{{friend.display_name}}さま")
    assert internals_in("U" + "ab12" * 8) and internals_in("2026-12-01 02:13:45.120391 UTC")
    assert internals_in("2026-12-01T02:13:45+00:00")
    assert not internals_in("12月1日（火）9:00 代診：佐藤医師 予約 2026/12/01 11:13")


def test_variables_are_allowed_only_where_a_message_is_edited_or_explained():
    page = read_page(
        "<p>{{friend.display_name}}さま</p><textarea>{{clinic.name}}</textarea><code>{{clinic.phone}}</code>"
        '<div data-template-source><p>{{today.hours}}</p></div><input value="None"><script>{{x}}</script>'
    )
    assert page.parts == ["{{friend.display_name}}さま", "None"]
    assert page.sources == ["{{clinic.name}}", "{{clinic.phone}}", "{{today.hours}}"]


@pytest.fixture
def demo(sandbox, live_server, app):
    before = app.config.get("LINE_LOGIN_BASE")
    yield build_demo(sandbox, live_server)
    app.config["LINE_LOGIN_BASE"] = before


def _is_walkable(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme not in ("", "http") or (parts.netloc and parts.netloc != "localhost"):
        return False
    return not (
        parts.path.startswith(("/static/", "/vendor/", "/language/", "/_sandbox", "/webhooks/"))
        or parts.path.endswith((".csv", ".json", ".png"))
        or "lang=" in parts.query
        or parts.path == "/auth/logout"
    )


class Walk:
    """Pages opened by one signed-in client, and what was wrong on each."""

    def __init__(self, client, app) -> None:
        self.client, self.app = client, app
        self.seen: set[str] = set()
        self.endpoints: set[str] = set()
        self.problems: list[str] = []

    def endpoint_of(self, url: str) -> str:
        try:
            return self.app.url_map.bind("localhost").match(urlsplit(url).path, method="GET")[0]
        except HTTPException:
            return ""  # a link to a missing page: reported by its status when opened

    def open(self, url: str, who: str) -> list[str]:
        """Open one page; returns the links it shows."""
        self.seen.add(url)
        self.endpoints.add(self.endpoint_of(url))
        response = self.client.get(url)
        if response.status_code >= 500:
            self.problems.append(f"{who} GET {url}: {response.status_code}")
        if "text/html" not in response.content_type:
            return []
        page = read_page(response.get_data(as_text=True))
        found = internals_in("\n".join(page.parts)) + internals_in("\n".join(page.sources), source=True)
        for problem in dict.fromkeys(found):
            self.problems.append(f"{who} GET {url}: {problem}")
        return [urljoin(url, link).replace("http://localhost", "") for link in page.links]

    def crawl(self, start: str, who: str) -> None:
        """Breadth first from ``start``; each endpoint a few times (other ids, other filters)."""
        queue, opened = [start], Counter()
        while queue and len(self.seen) < MAX_PAGES_PER_ROLE:
            url = queue.pop(0)
            endpoint = self.endpoint_of(url)
            if url in self.seen or opened[endpoint] >= PAGES_PER_ENDPOINT:
                continue
            opened[endpoint] += 1
            queue += [link for link in self.open(url, who) if _is_walkable(link) and link not in self.seen]


def _argument_values(demo, argument: str) -> list:
    values = {
        "clinic": [demo.clinic.slug],
        "clinic_slug": [demo.clinic.slug],
        "index": [0],
        "level": ["organization"],
        "kind": ["organizations", "agencies"],
        "slug": [demo.clinic.organization.slug],
        "token": ["not-an-invitation"],
        "fmt": ["json"],
        "name": ["no-such-logo.png"],
        "code": ["0000000000000000"],  # a short link (saas.links) nobody was sent: its 404 page is read
        **demo.ids,
    }
    if argument not in values and argument.endswith("_id"):
        return [1]  # a route the demo has no row for yet: its page (or 404 page) is still read
    if argument not in values:
        pytest.fail(f"the walker does not know a value for <{argument}>: add one to _argument_values")
    return values[argument]


def _urls_of_rule(rule, demo) -> list[str]:
    urls = [{}]
    for argument in sorted(rule.arguments):
        urls = [{**url, argument: value} for url in urls for value in _argument_values(demo, argument)]
    return [rule.build(values)[1] for values in urls]


def test_every_portal_page_of_the_demo_reads_as_japanese_without_internals(app, demo):
    problems, endpoints, clients = [], set(), {}
    for email in ROLES:
        clients[email] = client = app.test_client()
        assert login(client, demo.users[email], "tsunagu-demo-2026").status_code in (200, 302)
        walk = Walk(client, app)
        walk.crawl("/", email)
        walk.crawl(f"/c/{demo.clinic.slug}/", email)
        problems += walk.problems
        endpoints |= walk.endpoints
    owner = clients["owner@sakura.example"]
    assert owner.get(f"/c/{demo.clinic.slug}/").status_code == 200, "the owner is still signed in"
    walk = Walk(owner, app)
    for rule in app.url_map.iter_rules():
        if "GET" in rule.methods and rule.endpoint not in NOT_PAGES and rule.endpoint not in endpoints:
            for url in _urls_of_rule(rule, demo):
                walk.open(url, "owner (route not linked)")
    problems += walk.problems
    db.session.rollback()
    assert not problems, "\n".join(problems)
    assert {"inbox.conversation", "delivery.detail", "schedule.edit_closure", "audit.index"} <= endpoints
    _receptionist_reads_deliveries_and_the_audit_log(owner, demo)


def _receptionist_reads_deliveries_and_the_audit_log(owner, demo) -> None:
    sent, segment, later = demo.ids["delivery_id"]
    finished = owner.get(f"/c/{demo.clinic.slug}/deliveries/{sent}").get_data(as_text=True)
    assert "配信をキャンセル" not in finished, "a finished delivery offers nothing to cancel"
    assert "山田 花子さま、インフルエンザ予防接種" in finished and "表示例" in finished
    assert "［友だちの表示名］さま" in finished  # the title says what the variable stands for
    assert "配信をキャンセル" in owner.get(f"/c/{demo.clinic.slug}/deliveries/{later}").get_data(as_text=True)
    conditions = owner.get(f"/c/{demo.clinic.slug}/deliveries/{segment}").get_data(as_text=True)
    assert "「インフルエンザ予防接種」 いずれかが付いている" in conditions and "tag_ids" not in conditions
    audit = owner.get(f"/c/{demo.clinic.slug}/audit/?action=delivery.send").get_data(as_text=True)
    audit += owner.get(f"/c/{demo.clinic.slug}/audit/?action=conversation.view").get_data(as_text=True)
    assert 'title="delivery.send"' in audit and ">配信を送信<" in audit and ">チャットを閲覧<" in audit
