"""The example as a user sees it: live room counts, times in the reader's zone, the socket's state, screenshots.

The screenshots in docs/images/ come from `test_screenshots_of_the_pages`: run it with UPDATE_SCREENSHOTS=1
to write them there (then commit them); without it they go to a temporary directory and are only checked
(a real picture of the page: its size, its dimensions, many different rows).
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from .harness import ROOT
from .test_example import log_has, say

DOCS_IMAGES = ROOT / "docs" / "images"
MAX_PNG_BYTES = 150_000  # each committed screenshot stays small


def open_page(browser, url: str, *, time_zone: str = "UTC", locale: str = "en-GB", width: int = 0, height: int = 0):
    """A page loaded with the reader's time zone and locale emulated (and a viewport size, if given)."""
    page = browser.page()
    page.call("Emulation.setTimezoneOverride", timezoneId=time_zone)
    page.call("Emulation.setLocaleOverride", locale=locale)
    if width:
        page.call(
            "Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=width < 600
        )
    page.goto(url)
    return page


def wait_open(page) -> None:
    page.wait_for("document.body.dataset.socket === 'open'")


def members(page, room: str) -> str:
    """The count the room list shows for `room` ('' while it is not listed)."""
    return page.evaluate(f"document.querySelector('[data-room={json.dumps(room)}] .count')?.dataset.members || ''")


def wait_members(page, room: str, count: int) -> None:
    page.wait_for(
        f"document.querySelector('[data-room={json.dumps(room)}] .count')?.dataset.members === '{count}'"
        f" && document.querySelector('[data-room={json.dumps(room)}] .count b').textContent === '{count}'"
    )


def test_room_list_counts_members_live_and_times_are_local(example, browser):
    rooms = open_page(browser, example.url + "/")
    wait_open(rooms)
    assert members(rooms, "kathmandu") == ""
    reader = open_page(browser, example.url + "/chat/kathmandu/", time_zone="Asia/Kathmandu")  # UTC+05:45
    wait_open(reader)
    wait_members(rooms, "kathmandu", 1)  # a room made after the list loaded appears, with its count
    other = open_page(browser, example.url + "/chat/kathmandu/")
    wait_open(other)
    wait_members(rooms, "kathmandu", 2)
    other.call("Page.close")  # closing the tab closes its socket: the disconnect leaves the group
    wait_members(rooms, "kathmandu", 1)

    # A reloaded list counts from the layer's groups too.
    fresh = open_page(browser, example.url + "/")
    assert members(fresh, "kathmandu") == "1"

    say(reader, "ada", "what time is it?")
    log_has(reader, "ada: what time is it?")
    iso, shown, title = reader.evaluate(
        "(() => { const t = document.querySelector('#log .msg time'); return [t.dateTime, t.textContent, t.title]; })()"
    )
    sent = datetime.fromisoformat(iso)
    assert sent.utcoffset().total_seconds() == 0, iso  # the server sends UTC
    assert shown == sent.astimezone(ZoneInfo("Asia/Kathmandu")).strftime("%H:%M"), (iso, shown)
    assert str(sent.astimezone(ZoneInfo("Asia/Kathmandu")).year) in title
    assert rooms.console_errors() == [] and reader.console_errors() == []


def png_facts(path: Path) -> tuple[int, int, int]:
    """A PNG's width, height and number of distinct pixel rows (a blank or one-colour picture has few)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
    chunks, offset = [], 8
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        if data[offset + 4 : offset + 8] == b"IDAT":
            chunks.append(data[offset + 8 : offset + 8 + length])
        offset += 12 + length
    raw = zlib.decompress(b"".join(chunks))
    channels = {2: 3, 6: 4}[colour]  # Chromium writes RGB or RGBA, 8 bits
    assert depth == 8
    stride = 1 + width * channels
    # Rows are filtered: compare them unfiltered would need the filters; the filtered bytes still differ
    # between different rows and repeat for runs of identical rows, which is all this counts.
    rows = {raw[i * stride + 1 : (i + 1) * stride] for i in range(height)}
    return width, height, len(rows)


def check_screenshot(path: Path, width: int, height: int) -> None:
    size = path.stat().st_size
    assert 8_000 < size < MAX_PNG_BYTES, f"{path.name}: {size} bytes"
    got_width, got_height, distinct = png_facts(path)
    assert (got_width, got_height) == (width, height), path.name
    assert distinct > 40, f"{path.name}: {distinct} distinct rows: a blank page?"


def test_screenshots_of_the_pages(example, browser, tmp_path):
    """Rooms with live counts, a conversation, the phone layout and the banner while the server is down."""
    out = DOCS_IMAGES if os.environ.get("UPDATE_SCREENSHOTS") == "1" else tmp_path
    out.mkdir(parents=True, exist_ok=True)
    example.manage(
        "shell",
        "-c",
        "from chat.models import Message, Room\n"
        "for slug in ('design', 'lobby', 'random'): Room.objects.get_or_create(slug=slug)\n"
        "lobby = Room.objects.get(slug='lobby')\n"
        "for author, text in [('ada', 'Morning all! Is the new build out?'),"
        " ('grace', 'Deployed ten minutes ago: release, web and worker are up.'),"
        " ('ada', 'Great, the room list counts people live now.')]:\n"
        "    Message.objects.create(room=lobby, author=author, text=text)\n",
    )
    size = {"width": 1000, "height": 620}
    chat = open_page(browser, example.url + "/chat/lobby/", time_zone="Europe/Paris", **size)
    wait_open(chat)
    others = [open_page(browser, f"{example.url}/chat/{room}/") for room in ("lobby", "random")]
    for page in others:
        wait_open(page)
    say(chat, "grace", "And the times are in your own time zone.")
    log_has(chat, "grace: And the times are in your own time zone.")

    rooms = open_page(browser, example.url + "/", **size)
    wait_open(rooms)
    wait_members(rooms, "lobby", 2)
    wait_members(rooms, "random", 1)
    assert members(rooms, "design") == "0"
    check_screenshot(rooms.screenshot(out / "rooms.png"), **size)
    check_screenshot(chat.screenshot(out / "chat.png"), **size)

    phone = {"width": 390, "height": 700}
    mobile = open_page(browser, example.url + "/chat/lobby/", time_zone="America/New_York", locale="en-US", **phone)
    wait_open(mobile)
    assert mobile.evaluate("document.documentElement.scrollWidth") <= phone["width"]  # nothing overflows sideways
    check_screenshot(mobile.screenshot(out / "mobile.png"), **phone)

    example.processes["web"].stop()
    chat.wait_for("!document.getElementById('banner').hidden")
    assert chat.evaluate("document.getElementById('status').textContent") == "reconnecting"
    assert "Reconnecting" in chat.evaluate("document.getElementById('banner').textContent")
    assert chat.evaluate("document.documentElement.scrollHeight <= innerHeight")  # the banner pushes nothing off
    say(chat, "grace", "Sent while offline")  # queued by the bridge
    check_screenshot(chat.screenshot(out / "reconnecting.png"), **size)
    example.start("web")
    chat.wait_for("document.getElementById('status').textContent === 'open'", timeout=30)
    log_has(chat, "grace: Sent while offline")
    chat.wait_for("document.getElementById('banner').hidden", timeout=5)  # "Back online." then gone
    for page in (rooms, mobile, *others):
        page.wait_for("document.body.dataset.socket === 'open'", timeout=30)
    # The three lobby pages rejoined, the sockets of the stopped server are gone: 3, not 6.
    wait_members(rooms, "lobby", 3)
    assert members(open_page(browser, example.url + "/"), "lobby") == "3"
    assert chat.console_errors() == [] and rooms.console_errors() == []
