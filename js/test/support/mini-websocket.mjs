// A small RFC 6455 client with the browser WebSocket's shape (on* handlers, readyState, send, close),
// for the tests on a Node without a global WebSocket (Node 18, Debian bookworm's; Node 20 without
// --experimental-websocket). The tests also run the bridge over it where Node has its own, which
// exercises the bridge's WebSocket option. Text frames, ping/pong, fragments and the close handshake;
// no TLS, no extensions. Test support only: the package itself uses the platform's WebSocket.
import { request } from "node:http";
import { createHash, randomBytes } from "node:crypto";

const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

export class MiniWebSocket {
  constructor(url, protocols) {
    const target = new URL(url);
    if (target.protocol !== "ws:") {
      throw new Error(`MiniWebSocket: only ws:// URLs, not ${url}`);
    }
    this.url = url;
    this.readyState = 0;
    this.onopen = this.onclose = this.onmessage = this.onerror = null;
    this._buffer = Buffer.alloc(0);
    this._fragments = null;
    this._socket = null;
    const key = randomBytes(16).toString("base64");
    const headers = { Connection: "Upgrade", Upgrade: "websocket", "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": key };
    if (protocols) {
      headers["Sec-WebSocket-Protocol"] = [].concat(protocols).join(", ");
    }
    this._request = request({ host: target.hostname, port: target.port || 80, path: target.pathname + target.search, headers });
    this._request.on("upgrade", (response, socket, head) => {
      const accept = createHash("sha1").update(key + GUID).digest("base64");
      if (response.headers["sec-websocket-accept"] !== accept || this.readyState !== 0) {
        socket.destroy();
        this._fail();
        return;
      }
      this._socket = socket;
      socket.setNoDelay(true);
      socket.on("data", (chunk) => this._feed(chunk));
      socket.on("close", () => this._closed(1006, false));
      socket.on("error", () => {}); // "close" follows
      this.readyState = 1;
      this._call("onopen", { type: "open" });
      if (head.length) {
        this._feed(head);
      }
    });
    this._request.on("response", (response) => {
      response.resume();
      this._fail();
    });
    this._request.on("error", () => this._fail());
    this._request.end();
  }

  send(data) {
    if (this.readyState !== 1) {
      throw new Error("MiniWebSocket: not open");
    }
    this._write(0x1, Buffer.from(String(data)));
  }

  close(code = 1000, reason = "") {
    if (this.readyState === 0) {
      this._request.destroy();
      this._fail();
    } else if (this.readyState === 1) {
      this.readyState = 2;
      const payload = Buffer.alloc(2 + Buffer.byteLength(reason));
      payload.writeUInt16BE(code, 0);
      payload.write(reason, 2);
      this._write(0x8, payload);
      // The server answers with its close frame and ends the TCP connection; don't wait forever.
      setTimeout(() => this._socket.destroy(), 2000).unref();
    }
  }

  _call(name, event) {
    if (typeof this[name] === "function") {
      this[name](event);
    }
  }

  _fail() {
    if (this.readyState !== 3) {
      this.readyState = 3;
      this._call("onerror", { type: "error" });
      this._call("onclose", { type: "close", code: 1006, reason: "", wasClean: false });
    }
  }

  _closed(code, wasClean) {
    if (this.readyState !== 3) {
      this.readyState = 3;
      this._call("onclose", { type: "close", code, reason: "", wasClean });
    }
  }

  _write(opcode, payload) {
    // Client frames are masked (RFC 6455 5.3).
    const length = payload.length;
    const header = length < 126 ? Buffer.alloc(2) : length < 65536 ? Buffer.alloc(4) : Buffer.alloc(10);
    header[0] = 0x80 | opcode;
    if (length < 126) {
      header[1] = 0x80 | length;
    } else if (length < 65536) {
      header[1] = 0x80 | 126;
      header.writeUInt16BE(length, 2);
    } else {
      header[1] = 0x80 | 127;
      header.writeBigUInt64BE(BigInt(length), 2);
    }
    const mask = randomBytes(4);
    const masked = Buffer.alloc(length);
    for (let i = 0; i < length; i++) {
      masked[i] = payload[i] ^ mask[i & 3];
    }
    this._socket.write(Buffer.concat([header, mask, masked]));
  }

  _feed(chunk) {
    this._buffer = Buffer.concat([this._buffer, chunk]);
    for (;;) {
      const buffer = this._buffer;
      if (buffer.length < 2) {
        return;
      }
      let length = buffer[1] & 0x7f;
      let offset = 2;
      if (length === 126) {
        if (buffer.length < 4) return;
        length = buffer.readUInt16BE(2);
        offset = 4;
      } else if (length === 127) {
        if (buffer.length < 10) return;
        length = Number(buffer.readBigUInt64BE(2));
        offset = 10;
      }
      if (buffer[1] & 0x80) {
        offset += 4; // servers must not mask; the tests' server doesn't
      }
      if (buffer.length < offset + length) {
        return;
      }
      const fin = (buffer[0] & 0x80) !== 0;
      const opcode = buffer[0] & 0x0f;
      const payload = buffer.subarray(offset, offset + length);
      this._buffer = buffer.subarray(offset + length);
      this._frame(fin, opcode, Buffer.from(payload));
    }
  }

  _frame(fin, opcode, payload) {
    if (opcode === 0x8) {
      const code = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
      if (this.readyState === 1) {
        this.readyState = 2;
        this._write(0x8, payload.subarray(0, 2));
      }
      this._socket.end();
      this._closed(code, true);
    } else if (opcode === 0x9) {
      this._write(0xa, payload);
    } else if (opcode === 0x1 || opcode === 0x2 || opcode === 0x0) {
      const parts = opcode === 0x0 ? this._fragments : { opcode, chunks: [] };
      parts.chunks.push(payload);
      this._fragments = fin ? null : parts;
      if (fin) {
        const data = Buffer.concat(parts.chunks);
        this._call("onmessage", { type: "message", data: parts.opcode === 0x1 ? data.toString("utf8") : data });
      }
    }
  }
}
