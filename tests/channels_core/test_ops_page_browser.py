"""The operations page in headless Chromium, against the example's real processes on the real Redis.

The Procfile's interface-server and runworker serve the example (which has
`channels_core.ops` installed and routed, as a user would). A staff member
logs in through the admin's own login form, finds the page on the admin
index, and watches a group's size change as the test opens and closes chat
sockets, without reloading; logging out in another tab closes the page's
socket. A non-staff session is sent to the login page, and the socket
refuses it, a foreign Origin and no session at all.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from websockets.exceptions import InvalidStatus

from channels_core.layers import RedisChannelLayer
from tests.example.harness import ROOT, Example
from tests.interface_server.ws_support import ws_connect
from tests.support.browser import Browser, BrowserError

pytestmark = pytest.mark.slow

ARTIFACTS = Path(os.environ.get("ARTIFACTS_DIR", ROOT / "artifacts"))
PAGE = "/admin/channels_ops/operations/"
SOCKET = "/admin/channels-ops/ws/"
STAFF = ("opsadmin", "ops-pw-4d2a9c")

MAKE_USERS = f"""
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.auth.models import User
from django.contrib.sessions.backends.db import SessionStore
User.objects.create_user({STAFF[0]!r}, password={STAFF[1]!r}, is_staff=True)
member = User.objects.create_user("member", password="member-pw-77f1")
session = SessionStore()
session.update({{SESSION_KEY: str(member.pk), HASH_SESSION_KEY: member.get_session_auth_hash(),
                BACKEND_SESSION_KEY: "django.contrib.auth.backends.ModelBackend"}})
session.create()
print(session.session_key)
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory, redis_url_for_module, prefix_for_module):
    """The example on the Procfile's processes over the shared Redis (a private prefix), with two users."""
    example = Example(tmp_path_factory.mktemp("ops"), redis_url_for_module, prefix_for_module)
    try:
        example.start_procfile()
        member_session = example.manage("shell", "-c", MAKE_USERS).stdout.strip().splitlines()[-1]
        yield example, member_session
    finally:
        example.stop()
        layer = RedisChannelLayer(hosts=[redis_url_for_module], prefix=prefix_for_module)
        try:
            layer.flush()
        finally:
            layer.close()


@pytest.fixture(scope="module")
def redis_url_for_module():
    from tests.conftest import REDIS_URL

    return REDIS_URL


@pytest.fixture(scope="module")
def prefix_for_module():
    import uuid

    return f"t{uuid.uuid4().hex[:10]}:"


@pytest.fixture(scope="module")
def browser():
    with Browser(width=1200, height=1300) as browser:  # tall enough for the whole page in the screenshot
        yield browser


def navigate(page, action: str, timeout: float = 30.0) -> None:
    """Run JavaScript that navigates (a form submit) and wait until the next page has loaded."""
    page.events.clear()
    page.evaluate(f"setTimeout(() => {{ {action} }}, 0); true")
    deadline = time.monotonic() + timeout
    while not any(e.get("method") == "Page.loadEventFired" for e in page.events):
        if time.monotonic() > deadline:
            raise BrowserError(f"no page loaded {timeout}s after: {action}")
        try:
            page.events.append(json.loads(page.ws.recv(timeout=1)))
        except TimeoutError:
            pass


def log_in(page, url: str, username: str, password: str) -> None:
    page.goto(f"{url}/admin/login/?next={PAGE}")
    navigate(
        page,
        f"document.getElementById('id_username').value = {json.dumps(username)};"
        f"document.getElementById('id_password').value = {json.dumps(password)};"
        "document.getElementById('login-form').submit();",
    )


def group_members(page, group: str) -> str:
    """The members cell of `group`'s row as the page shows it now ('' if the group is not listed)."""
    selector = json.dumps(f'#ops-groups tr[data-group="{group}"] [data-field="members"]')
    return page.evaluate(f"(document.querySelector({selector}) || {{textContent: ''}}).textContent")


def wait_members(page, group: str, expected: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while (shown := group_members(page, group)) != expected:
        if time.monotonic() > deadline:
            raise AssertionError(f"group {group} shows {shown!r} members, expected {expected!r}")
        time.sleep(0.1)


def test_staff_watch_live_figures_until_they_log_out(site, browser):
    example, _ = site
    page = browser.page()
    log_in(page, example.url, *STAFF)
    assert page.evaluate("location.pathname") == PAGE
    page.wait_for("window.channelsOps && window.channelsOps.updates > 0")
    assert page.evaluate("document.getElementById('ops-connection').dataset.state") == "live"
    # The example's own processes, from their leases.
    page.wait_for("document.querySelector('#ops-processes tr[data-kind=\"interface-server\"]') !== null")
    page.wait_for("document.querySelector('#ops-processes tr[data-kind=\"worker\"]') !== null")
    assert page.evaluate("document.getElementById('ops-count-workers').textContent") == "1"
    page.evaluate("window.notReloaded = true")

    room, group = "opslive", "chat-opslive"
    assert group_members(page, group) == ""
    sockets = [ws_connect(f"{example.url.replace('http', 'ws')}/ws/chat/{room}/")]
    wait_members(page, group, "1")
    sockets.append(ws_connect(f"{example.url.replace('http', 'ws')}/ws/chat/{room}/"))
    wait_members(page, group, "2")
    # The summary's open WebSockets add up the servers' loads (as of their last lease renewal).
    shown = page.evaluate(
        "[document.getElementById('ops-count-websockets').textContent, Array.from(document.querySelectorAll("
        "'#ops-processes tr[data-kind=\"interface-server\"] [data-field=load]')).map(td => +td.dataset.websocket)]"
    )
    assert shown[0] == str(sum(shown[1])) and shown[1] != []
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    assert page.screenshot(ARTIFACTS / "ops_page.png").stat().st_size > 5000
    for ws in sockets:
        ws.close()
    wait_members(page, group, "")  # left the group on disconnect: no longer listed
    assert page.evaluate("window.notReloaded") is True
    assert page.evaluate("window.channelsOps.roundTripMs") > 0

    # In another tab, the admin index lists the page; logging out there closes the open page's socket.
    other = browser.page()
    other.goto(example.url + "/admin/")
    assert other.evaluate(f"document.querySelector('a[href=\"{PAGE}\"]').textContent") == "Operations"
    navigate(other, "document.getElementById('logout-form').submit();")
    # The page's tab is in the background now: it asks nothing until it shows again.
    assert page.evaluate("document.hidden") is True
    updates = page.evaluate("window.channelsOps.updates")
    time.sleep(2.5)  # more than one refresh interval (2 s)
    assert page.evaluate("window.channelsOps.updates") == updates
    page.call("Page.bringToFront")  # shown again: it asks at once, and the session is gone
    page.wait_for("document.getElementById('ops-connection').dataset.state === 'closed'")
    assert page.console_errors() == []


def test_a_session_that_is_not_staff_is_sent_to_the_login_page(site, browser):
    example, member_session = site
    page = browser.page()
    page.call("Network.setCookie", name="sessionid", value=member_session, url=example.url)
    page.goto(example.url + PAGE)
    assert page.evaluate("location.pathname") == "/admin/login/"
    assert page.evaluate("location.search") == f"?next={PAGE}"
    assert page.evaluate("window.channelsOps") is None  # the page's script never ran


def test_anonymous_requests_are_redirected_and_unwanted_sockets_refused(site):
    example, member_session = site
    opener = urllib.request.build_opener(NoRedirect)
    with pytest.raises(urllib.error.HTTPError) as redirect:
        opener.open(example.url + PAGE, timeout=10)
    assert redirect.value.code == 302 and redirect.value.headers["Location"] == f"/admin/login/?next={PAGE}"

    url, origin = example.url.replace("http", "ws") + SOCKET, example.url
    member_cookie = {"Cookie": f"sessionid={member_session}"}
    for kwargs in ({"origin": origin}, {"origin": origin, "additional_headers": member_cookie}):
        with pytest.raises(InvalidStatus) as refused:
            ws_connect(url, **kwargs)
        assert refused.value.response.status_code == 403, kwargs


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None
