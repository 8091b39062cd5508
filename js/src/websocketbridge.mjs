/*
 * WebSocketBridge: the Channels 1.x JavaScript client.
 *
 * THE source of the client: js/build.mjs makes the ES module (lib/websocketbridge.mjs) and the
 * classic script (lib/websocketbridge.js, which sets window.channels.WebSocketBridge) from this
 * file, and copies both to channels_core/static/channels_core/js/, where Django serves them.
 * Edit this file, then run `node js/build.mjs`; a test fails while the built files are stale.
 *
 *   <script src="{% static 'channels_core/js/websocketbridge.js' %}"></script>   (classic script)
 *   import { WebSocketBridge } from "channels-core-bridge";                       (ES module)
 *
 *   const bridge = new channels.WebSocketBridge();   // or new WebSocketBridge() when imported
 *   bridge.connect("/ws/chat/");                    // relative: ws:// or wss:// from the page
 *   bridge.listen((data, stream) => { ... });        // frames that are not {stream, payload}
 *   bridge.demultiplex("values", (payload, stream) => { ... });
 *   bridge.send({say: "hi"});                        // JSON
 *   bridge.stream("values").send({action: "create", data: {...}});
 *   bridge.resumed((status) => { if (!status.recovered) reload(); });  // group history
 *
 * Group history (docs/topics/history.md): a frame {history: {group, epoch, offset}, text} is a
 * message of a group that keeps history; the bridge remembers the last position per group
 * (bridge.positions), hands `text` on as if it were the frame, and on every reconnection adds
 * ?since=GROUP:EPOCH:OFFSET per group to the URL, so the consumer can replay what was missed.
 * The status frame {history: {group, epoch, offset, recovered}} that ends a replay goes to
 * the resumed() callback; recovered: false means messages were lost (reload the state).
 *
 * The socket reconnects by itself after the connection drops, waiting
 * minReconnectionDelay ms, growing by reconnectionDelayGrowFactor up to
 * maxReconnectionDelay, at most maxRetries times in a row (options of
 * connect()); frames sent while it is down are queued (up to maxQueued)
 * and sent on reconnection. bridge.socket is that socket. Outside a browser
 * (Node < 22), pass a WebSocket class as the WebSocket option (e.g. the ws
 * package's); the default is the global WebSocket.
 *
 * When a WebSocket cannot open (a proxy or firewall that blocks them, no
 * WebSocket in the page), the socket falls back at once to Server-Sent
 * Events plus POST, then to long-polling (the fallbackTransports option,
 * default ["sse", "poll"]; [] for WebSockets only), which the interface
 * server serves under fallbackPrefix to the same consumers, the same URL
 * (?since= included) and the same frames (docs/topics/fallback-transports.md).
 * Once one has opened, reconnections use it alone. bridge.transport
 * (also bridge.socket.transport, and the open event's transport) says which
 * one is in use: "websocket", "sse" or "poll".
 *
 * Written in ES5 (var, prototypes) so that the classic script runs in any browser the page
 * supports; only the export statement at the end is ES2015.
 */
var root = typeof globalThis !== "undefined" ? globalThis : self;

var DEFAULTS = {
  minReconnectionDelay: 1000,
  maxReconnectionDelay: 10000,
  reconnectionDelayGrowFactor: 1.3,
  maxRetries: Infinity,
  maxQueued: 1000,
  WebSocket: null, // null: the global WebSocket, looked up at each (re)connection
  fallbackTransports: ["sse", "poll"], // tried in turn when a WebSocket cannot open; [] for none
  fallbackPrefix: "/_channels/", // where the interface server serves them (its --fallback-prefix)
  EventSource: null, // null: the global EventSource (for "sse")
  fetch: null, // null: the global fetch (for "sse" and "poll")
};

var MAX_POST_BYTES = 60000; // characters of frames per POST of the fallbacks (one frame always goes, whatever its size)

/* ws://host/path?q -> http://host{prefix}{transport}/path?q: the consumer sees the same path and query. */
function fallbackUrls(url, prefix, transport) {
  var match = /^(wss?):\/\/([^/?#]+)([^#]*)/i.exec(url);
  if (!match) {
    throw new Error("WebSocketBridge: cannot fall back from " + url);
  }
  var rest = match[3] || "/";
  if (rest.charAt(0) !== "/") {
    rest = "/" + rest;
  }
  var base = (match[1].toLowerCase() === "wss" ? "https://" : "http://") + match[2] + prefix.replace(/\/+$/, "");
  return { open: base + "/" + transport + rest, session: base + "/s/" };
}

function toBase64(data) {
  var bytes = ArrayBuffer.isView(data)
    ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
    : new Uint8Array(data);
  var text = "";
  for (var i = 0; i < bytes.length; i++) {
    text += String.fromCharCode(bytes[i]);
  }
  return root.btoa(text);
}

function fromBase64(text) {
  var raw = root.atob(text);
  var bytes = new Uint8Array(raw.length);
  for (var i = 0; i < raw.length; i++) {
    bytes[i] = raw.charCodeAt(i);
  }
  return bytes.buffer;
}

/*
 * A socket over Server-Sent Events + POST ("sse") or long-polling ("poll") with the shape of a
 * browser WebSocket (readyState, on* handlers, send, close), so that ReconnectingSocket treats it
 * as one. The wire protocol: docs/topics/fallback-transports.md.
 */
function FallbackSocket(url, transport, options) {
  this.url = url;
  this.transport = transport;
  this.readyState = 0;
  this.onopen = null;
  this.onclose = null;
  this.onmessage = null;
  this.onerror = null;
  var fetchFunction = options.fetch || root.fetch;
  if (typeof fetchFunction !== "function") {
    throw new Error("WebSocketBridge: no fetch here for the " + transport + " transport");
  }
  this._fetch = function (target, init) {
    return fetchFunction.call(root, target, init);
  };
  var EventSourceClass = options.EventSource || root.EventSource;
  if (transport === "sse" && typeof EventSourceClass !== "function") {
    throw new Error("WebSocketBridge: no EventSource here for the sse transport");
  }
  this._urls = fallbackUrls(url, options.fallbackPrefix, transport);
  this._session = null;
  this._lastId = 0;
  this._seq = 0;
  this._out = [];
  this._posting = false;
  this._closeCode = null;
  this._source = null;
  if (transport === "sse") {
    this._openStream(EventSourceClass);
  } else {
    this._openPoll();
  }
}

FallbackSocket.prototype._call = function (name, event) {
  if (typeof this[name] === "function") {
    this[name](event);
  }
};

FallbackSocket.prototype._request = function (method, what, body) {
  var init = { method: method, credentials: "same-origin" };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers = { "Content-Type": "text/plain;charset=UTF-8" }; // a "simple" request: no CORS preflight
  }
  return this._fetch(what.charAt(0) === "/" || /^https?:/.test(what) ? what : this._urls.session + this._session + "/" + what, init);
};

FallbackSocket.prototype._opened = function (session) {
  this._session = session;
  this.readyState = 1;
  this._call("onopen", { type: "open", transport: this.transport });
};

FallbackSocket.prototype._openStream = function (EventSourceClass) {
  var self = this;
  var source = new EventSourceClass(this._urls.open);
  this._source = source;
  source.addEventListener("session", function (event) {
    if (self.readyState === 0) {
      self._opened(JSON.parse(event.data).session);
    }
  });
  source.onmessage = function (event) {
    self._events([JSON.parse(event.data)]);
  };
  source.onerror = function () {
    // EventSource would reconnect by itself, as a new socket whose old one the consumer never saw
    // end: the ReconnectingSocket decides instead, as it does for a WebSocket.
    source.close();
    self._lost();
  };
};

FallbackSocket.prototype._openPoll = function () {
  var self = this;
  this._request("GET", this._urls.open)
    .then(function (response) {
      if (response.status !== 200) {
        throw new Error("refused: " + response.status);
      }
      return response.json();
    })
    .then(function (opened) {
      if (self.readyState !== 0) {
        self._session = opened.session; // close() was called meanwhile: end it on the server too
        self._request("POST", "close", { code: self._closeCode || 1000 }).catch(function () {});
        return;
      }
      self._opened(opened.session);
      self._events(opened.events);
      self._poll(0);
    })
    .catch(function () {
      self._lost();
    });
};

FallbackSocket.prototype._poll = function (failures) {
  var self = this;
  if (this.readyState === 3) {
    return;
  }
  this._request("GET", "poll?ack=" + this._lastId)
    .then(function (response) {
      if (response.status !== 200) {
        var error = new Error("poll: " + response.status);
        error.status = response.status;
        throw error;
      }
      return response.json();
    })
    .then(function (body) {
      self._events(body.events);
      self._poll(0);
    })
    .catch(function (error) {
      if (self.readyState === 3) {
        return;
      }
      if (error.status || failures >= 3) {
        self._lost(); // 404: the server ended the session (it did not hear from us in time)
        return;
      }
      // A poll lost on the way: ask again (events not acknowledged come again; duplicates are skipped).
      setTimeout(function () { self._poll(failures + 1); }, 500 * (failures + 1));
    });
};

FallbackSocket.prototype._events = function (events) {
  for (var i = 0; i < events.length && this.readyState !== 3; i++) {
    var event = events[i];
    if (event.id <= this._lastId) {
      continue; // sent again because a poll's answer was lost: already delivered
    }
    this._lastId = event.id;
    if (event.close !== undefined) {
      this._end(event.close, true);
    } else {
      this._call("onmessage", { type: "message", data: event.text !== undefined ? event.text : fromBase64(event.bytes) });
    }
  }
};

FallbackSocket.prototype.send = function (data) {
  if (this.readyState !== 1) {
    throw new Error("WebSocketBridge: the " + this.transport + " socket is not open");
  }
  if (typeof data !== "string" && !(data instanceof ArrayBuffer) && !ArrayBuffer.isView(data)) {
    throw new Error("WebSocketBridge: the " + this.transport + " transport sends strings, ArrayBuffers and typed arrays (not Blobs)");
  }
  this._out.push(typeof data === "string" ? { text: data } : { bytes: toBase64(data) });
  this._flush();
};

/* One POST at a time, numbered: the server takes them in order and once each, whatever happens on the way. */
FallbackSocket.prototype._flush = function () {
  if (this._posting || this.readyState === 3) {
    return;
  }
  if (!this._out.length) {
    if (this._closeCode !== null) {
      this._request("POST", "close", { code: this._closeCode }).catch(function () {});
      this._end(this._closeCode, true);
    }
    return;
  }
  var frames = [];
  var size = 0;
  while (this._out.length && (!frames.length || size + (this._out[0].text || this._out[0].bytes).length < MAX_POST_BYTES)) {
    var frame = this._out.shift();
    size += (frame.text || frame.bytes).length;
    frames.push(frame);
  }
  this._seq += 1;
  this._posting = true;
  this._post({ seq: this._seq, frames: frames }, 0);
};

FallbackSocket.prototype._post = function (body, failures) {
  var self = this;
  this._request("POST", "send", body)
    .then(function (response) {
      if (response.status !== 204) {
        var error = new Error("send: " + response.status);
        error.status = response.status;
        throw error;
      }
      self._posting = false;
      self._flush();
    })
    .catch(function (error) {
      if (self.readyState === 3) {
        return;
      }
      if (error.status || failures >= 3) {
        // Refused (a frame too big, the session gone): the server closes the socket and says why on the
        // stream or the next poll; if that does not come within a second, the socket is lost.
        setTimeout(function () { self._lost(); }, 1000);
        return;
      }
      setTimeout(function () { self._post(body, failures + 1); }, 500 * (failures + 1)); // the same seq: taken once
    });
};

FallbackSocket.prototype.close = function (code) {
  if (this.readyState >= 2) {
    return;
  }
  this._closeCode = code || 1000;
  var connecting = this.readyState === 0;
  this.readyState = 2;
  if (connecting) {
    if (this._source) {
      this._end(this._closeCode, false); // the stream ends: the server sends the disconnect
    }
    return; // a poll that opens meanwhile is closed as soon as it answers
  }
  this._flush(); // frames sent before close() go first, then the close
};

FallbackSocket.prototype._end = function (code, clean) {
  if (this.readyState === 3) {
    return;
  }
  this.readyState = 3;
  if (this._source) {
    this._source.close();
  }
  this._call("onclose", { type: "close", code: code, reason: "", wasClean: clean });
};

FallbackSocket.prototype._lost = function () {
  if (this.readyState === 3) {
    return;
  }
  var opened = this.readyState !== 0;
  this.readyState = 3;
  if (this._source) {
    this._source.close();
  }
  if (!opened) {
    this._call("onerror", { type: "error" });
  }
  this._call("onclose", { type: "close", code: 1006, reason: "", wasClean: false });
};

function resolveUrl(url) {
  if (url && /^wss?:\/\//i.test(url)) {
    return url;
  }
  var location = root.location;
  if (!location) {
    // Outside a page there is nothing to resolve a path against.
    throw new Error("WebSocketBridge.connect(): " + (url ? "'" + url + "'" : "no URL") + " needs a page; pass a ws:// or wss:// URL");
  }
  if (!url) {
    url = location.pathname;
  }
  var scheme = location.protocol === "https:" ? "wss://" : "ws://";
  if (url.charAt(0) !== "/") {
    var base = location.pathname.replace(/[^/]*$/, "");
    url = base + url;
  }
  return scheme + location.host + url;
}

/* A WebSocket that comes back after the connection drops. */
function ReconnectingSocket(url, protocols, options, urlFor) {
  this.url = url;
  this.urlFor = urlFor || null; // the URL of each (re)connection from this.url (the bridge adds ?since=)
  this.protocols = protocols;
  this.options = {};
  for (var key in DEFAULTS) {
    this.options[key] = options && options[key] !== undefined ? options[key] : DEFAULTS[key];
  }
  this.retries = 0;
  this.queue = [];
  this.transport = "websocket"; // or "sse", "poll": the one in use (or being tried)
  this.worked = null; // the transport that last opened: reconnections start with it
  this.closedByUser = false;
  this.gaveUp = false;
  this.ws = null;
  this.timer = null;
  this.onopen = null;
  this.onclose = null;
  this.onmessage = null;
  this.onerror = null;
  this._listeners = { open: [], close: [], message: [], error: [] };
  this._open();
}

ReconnectingSocket.prototype._emit = function (type, event) {
  var handler = this["on" + type];
  if (typeof handler === "function") {
    handler.call(this, event);
  }
  var listeners = this._listeners[type].slice();
  for (var i = 0; i < listeners.length; i++) {
    listeners[i].call(this, event);
  }
};

ReconnectingSocket.prototype.addEventListener = function (type, listener) {
  this._listeners[type].push(listener);
};

ReconnectingSocket.prototype.removeEventListener = function (type, listener) {
  this._listeners[type] = this._listeners[type].filter(function (l) { return l !== listener; });
};

/* "websocket", then the fallbacks, in the order tried. */
ReconnectingSocket.prototype._transports = function () {
  return ["websocket"].concat(this.options.fallbackTransports || []);
};

/* A socket of `transport` for `url` (a WebSocket, or a FallbackSocket); throws when this platform has none. */
ReconnectingSocket.prototype._makeSocket = function (transport, url) {
  if (transport !== "websocket") {
    return new FallbackSocket(url, transport, this.options);
  }
  var Socket = this.options.WebSocket || root.WebSocket;
  if (typeof Socket !== "function") {
    throw new Error("WebSocketBridge: no WebSocket here; pass one as the WebSocket option (Node < 22: the ws package)");
  }
  return this.protocols ? new Socket(url, this.protocols) : new Socket(url);
};

ReconnectingSocket.prototype._open = function () {
  var self = this;
  var url = this.urlFor ? this.urlFor(this.url) : this.url;
  var transports = this._transports();
  var ws = null;
  // From the current transport on, the first this platform can make (no WebSocket in the page: the next).
  for (var i = Math.max(0, transports.indexOf(this.transport)); ws === null; i++) {
    try {
      ws = this._makeSocket(transports[i], url);
      this.transport = transports[i];
    } catch (error) {
      if (i + 1 >= transports.length) {
        throw error;
      }
    }
  }
  var transport = this.transport;
  var opened = false;
  this.ws = ws;
  ws.onopen = function (event) {
    opened = true;
    self.retries = 0;
    self.worked = transport;
    try {
      event.transport = transport;
    } catch (error) {
      // A frozen event object: socket.transport says it too.
    }
    var queued = self.queue;
    self.queue = [];
    for (var i = 0; i < queued.length; i++) {
      ws.send(queued[i]);
    }
    self._emit("open", event);
  };
  ws.onmessage = function (event) { self._emit("message", event); };
  var lost = false;
  ws.onerror = function (event) {
    self._emit("error", event);
    if (ws.readyState === 0) {
      // A connection that failed to open: the standard follows with "close", but Node 20's
      // WebSocket (undici before nodejs/undici#3566) never does and stays CONNECTING, which would
      // end the reconnections. Count it as lost now; the close event, if it comes, is then ignored.
      ws.onclose({ type: "close", code: 1006, reason: "", wasClean: false });
    }
  };
  ws.onclose = function (event) {
    if (lost) {
      return;
    }
    lost = true;
    self._emit("close", event);
    if (self.closedByUser) {
      return;
    }
    var next = transports[transports.indexOf(transport) + 1];
    if (!opened && next !== undefined && self.worked === null) {
      // Could not open, and nothing ever did: the next transport at once (a blocked WebSocket is not a
      // server that is down). Once one has opened, failures are outages or refusals: it alone is retried.
      self.transport = next;
      self.timer = setTimeout(function () { self.timer = null; self._open(); }, 0);
      return;
    }
    self.transport = self.worked || transports[0];
    if (self.retries >= self.options.maxRetries) {
      self.gaveUp = true;
      return;
    }
    var delay = Math.min(
      self.options.minReconnectionDelay * Math.pow(self.options.reconnectionDelayGrowFactor, self.retries),
      self.options.maxReconnectionDelay
    );
    self.retries += 1;
    self.timer = setTimeout(function () { self.timer = null; self._open(); }, delay);
  };
};

Object.defineProperty(ReconnectingSocket.prototype, "readyState", {
  // CLOSED while a reconnection waits, whatever the lost WebSocket says (see onerror above).
  get: function () { return this.ws && this.timer === null ? this.ws.readyState : 3; },
});

ReconnectingSocket.prototype.send = function (data) {
  if (this.ws && this.ws.readyState === 1) {
    this.ws.send(data);
  } else if (!this.closedByUser && !this.gaveUp) {
    if (this.queue.length >= this.options.maxQueued) {
      throw new Error("WebSocketBridge: " + this.queue.length + " frames already wait for the connection");
    }
    this.queue.push(data);
  } else {
    throw new Error("WebSocketBridge: the socket is closed");
  }
};

ReconnectingSocket.prototype.close = function (code, reason) {
  this.closedByUser = true;
  if (this.timer !== null) {
    clearTimeout(this.timer);
    this.timer = null;
  }
  if (this.ws) {
    this.ws.close(code || 1000, reason);
  }
};

/* The bridge: JSON frames, and {stream, payload} multiplexing. */
function WebSocketBridge(options) {
  this.options = options || {};
  this.socket = null;
  this.streams = {};
  this.default_cb = null;
  this.positions = {}; // group -> {epoch, offset}: the last history position seen (sent back on reconnection)
  this.resume_cb = null;
}

/* url with ?since=GROUP:EPOCH:OFFSET for each group position known. */
function withSince(url, positions) {
  var parts = [];
  for (var group in positions) {
    if (Object.prototype.hasOwnProperty.call(positions, group)) {
      var p = positions[group];
      parts.push("since=" + encodeURIComponent(group + ":" + p.epoch + ":" + p.offset));
    }
  }
  return parts.length ? url + (url.indexOf("?") < 0 ? "?" : "&") + parts.join("&") : url;
}

WebSocketBridge.prototype.connect = function (url, protocols, options) {
  var merged = {};
  var key;
  for (key in this.options) { merged[key] = this.options[key]; }
  for (key in options || {}) { merged[key] = options[key]; }
  var self = this;
  this.socket = new ReconnectingSocket(resolveUrl(url), protocols, merged, function (base) {
    return withSince(base, self.positions);
  });
  this.socket.addEventListener("message", function (event) { self._dispatch(event); });
  return this;
};

WebSocketBridge.prototype._dispatch = function (event) {
  var msg;
  try {
    msg = JSON.parse(event.data);
  } catch (error) {
    if (root.console) {
      root.console.warn("WebSocketBridge: a frame that is not JSON was ignored", event.data);
    }
    return;
  }
  if (msg !== null && typeof msg === "object" && msg.history && typeof msg.history.group === "string") {
    this._history(msg);
    return;
  }
  if (msg !== null && typeof msg === "object" && msg.stream !== undefined) {
    var streamCb = this.streams[msg.stream];
    if (streamCb) {
      streamCb(msg.payload, msg.stream);
    }
  } else if (this.default_cb) {
    this.default_cb(msg, null);
  }
};

/* A frame of a group with history: remember its position, then hand its text on (or the status to resumed()). */
WebSocketBridge.prototype._history = function (msg) {
  var h = msg.history;
  var known = this.positions[h.group];
  if (h.recovered === undefined && known && known.epoch === h.epoch && h.offset <= known.offset) {
    return; // seen already (the server never sends one twice; this guards the app all the same)
  }
  this.positions[h.group] = { epoch: h.epoch, offset: h.offset };
  if (h.recovered !== undefined) {
    if (this.resume_cb) {
      this.resume_cb({ group: h.group, epoch: h.epoch, offset: h.offset, recovered: h.recovered });
    }
  } else if (typeof msg.text === "string") {
    this._dispatch({ data: msg.text });
  }
};

/* cb({group, epoch, offset, recovered}) after each join to a group with history (see the top). */
WebSocketBridge.prototype.resumed = function (cb) {
  this.resume_cb = cb || null;
  return this;
};

Object.defineProperty(WebSocketBridge.prototype, "transport", {
  // "websocket", "sse" or "poll": what the socket uses (or tries) now; null before connect().
  get: function () { return this.socket ? this.socket.transport : null; },
});

WebSocketBridge.prototype._needSocket = function (what) {
  if (!this.socket) {
    throw new Error("WebSocketBridge." + what + "(): call connect() first");
  }
};

WebSocketBridge.prototype.listen = function (cb) {
  this._needSocket("listen");
  this.default_cb = cb || null;
  return this;
};

WebSocketBridge.prototype.demultiplex = function (stream, cb) {
  this._needSocket("demultiplex");
  this.streams[stream] = cb;
  return this;
};

WebSocketBridge.prototype.send = function (msg) {
  this._needSocket("send");
  this.socket.send(JSON.stringify(msg));
};

WebSocketBridge.prototype.stream = function (name) {
  var self = this;
  return {
    send: function (payload) {
      self.send({ stream: name, payload: payload });
    },
  };
};

// build.mjs: the classic script replaces everything from this line on.
export { WebSocketBridge, ReconnectingSocket };
export default WebSocketBridge;
