/* The example's page helpers: local times, and the socket's state in the top bar and a banner. */
(function () {
  "use strict";

  // undefined locale and time zone: the reader's own (the browser's settings).
  var TIME = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
  var DAY_TIME = new Intl.DateTimeFormat(undefined, {
    month: "short", day: "numeric", hour: "2-digit", minute: "2-digit",
  });
  var FULL = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "long" });

  /* A <time> element for an ISO 8601 instant from the server (UTC): the time of day if it is today
   * where the reader is, else the date too; the full date, time and zone on hover. */
  function timeElement(iso) {
    var el = document.createElement("time");
    var when = new Date(iso);
    el.dateTime = iso;
    if (isNaN(when.getTime())) {
      return el;
    }
    var sameDay = when.toDateString() === new Date().toDateString(); // both in the reader's zone
    el.textContent = (sameDay ? TIME : DAY_TIME).format(when);
    el.title = FULL.format(when);
    return el;
  }

  var BANNER = {
    first: "Can't reach the server. Retrying\u2026",
    lost: "Connection lost. Reconnecting\u2026",
    offline: "Disconnected. Reload the page to try again.",
    back: "Back online.",
  };

  /* Show `bridge`'s socket state: the top bar's #status (connecting, open, reconnecting, offline),
   * body[data-socket] for styles, and #banner while it is down. `hint` is added to the banner
   * (what the page does meanwhile); `onOpen` runs at each (re)connection. */
  function watch(bridge, options) {
    options = options || {};
    var status = document.getElementById("status");
    var banner = document.getElementById("banner");
    var everOpen = false;
    var hideTimer = null;

    function show(state) {
      document.body.setAttribute("data-socket", state);
      if (status) {
        status.textContent = state;
        status.parentNode.setAttribute("data-state", state);
      }
    }
    function say(kind, text) {
      if (!banner) {
        return;
      }
      clearTimeout(hideTimer);
      banner.setAttribute("data-state", kind);
      banner.textContent = text;
      banner.hidden = false;
    }

    show("connecting");
    bridge.socket.addEventListener("open", function () {
      show("open");
      if (banner && !banner.hidden) {
        say("back", BANNER.back);
        hideTimer = setTimeout(function () { banner.hidden = true; banner.setAttribute("data-state", ""); }, 1500);
      }
      everOpen = true;
      if (options.onOpen) {
        options.onOpen();
      }
    });
    bridge.socket.addEventListener("close", function () {
      // The bridge decides after this event whether it retries (maxRetries): look once it has.
      setTimeout(function () {
        if (bridge.socket.gaveUp) {
          show("offline");
          say("offline", BANNER.offline);
        } else {
          show("reconnecting");
          say("lost", (everOpen ? BANNER.lost : BANNER.first) + (options.hint ? " " + options.hint : ""));
        }
      }, 0);
    });
  }

  window.example = { timeElement: timeElement, watch: watch };
  window.watch = watch; // the name the pages used before
})();
