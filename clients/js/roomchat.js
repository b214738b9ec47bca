// roomchat.js: a client for roomchat's WebSocket (subprotocol roomchat.v1), for
// browsers and for any runtime with a WebSocket (Node 22, Deno, Bun). One
// connection carries every subscription. When it drops the client reconnects by
// itself with jittered backoff and resumes each room after the last id it
// delivered, so a subscription sees every message once and in order (or a `gap`
// event where the server's history no longer holds what was missed). `publish`
// sends an idempotency key and, when the connection drops before the ack, sends
// again with the same key: a message is stored once. No dependencies, no build.
// Types: roomchat.d.ts. Guide: docs/client-js.md in the roomchat repository.

export const SUBPROTOCOL = "roomchat.v1";

const FIRST_TRY_MS = 1000; // the first reconnect comes within this...
const MOST_APART_MS = 10000; // ...then tries are never further apart than this
const PING_MS = 20000; // an idle connection is checked this often; silent for two checks, it is dropped
const PUBLISH_TIMEOUT_MS = 30000;
const IDS_KEPT = 2048; // ids remembered per room, so a replay after a `gap` never shows one twice
// No message is ever this id. A subscription that went live without one and must
// resume before its first message asks with it: the server answers `gap`, then
// all of its history, so nothing posted meanwhile is lost.
const BEFORE_HISTORY = "0-0";

/** How long to wait before reconnect attempt `attempt` (0 for the first): "full jitter",
 * so clients that lost the same server do not all come back in the same instant. */
export function reconnectDelay(attempt, random = Math.random) {
  return random() * Math.min(MOST_APART_MS, FIRST_TRY_MS * 2 ** attempt);
}

/** What the server refused, with its HTTP-like code (401, 403, 422, 429, 503...). */
export class RoomchatError extends Error {
  constructor(code, message, frame = undefined) {
    super(message);
    this.name = "RoomchatError";
    this.code = code;
    this.frame = frame;
  }
}

/** An idempotency key: 32 hex digits (crypto.randomUUID needs a secure context; this does not). */
function newKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function report(error) {
  setTimeout(() => { throw error; }); // an app's handler threw: say so, and carry on delivering
}

export class RoomchatClient extends EventTarget {
  #url;
  #userId;
  #token;
  #WebSocket;
  #ws = null; // the current socket, open or opening
  #ready = false; // open, authenticated, subscriptions sent
  #authing = false; // an `auth` frame awaits its answer
  #state = "connecting";
  #attempt = 0;
  #timer = 0;
  #pinger = 0;
  #heard = false;
  #rooms = new Map(); // roomId -> Subscription
  #publishes = new Map(); // ref -> unacknowledged publish, in the order they were made
  #refs = 0;

  /** `url`: the origin of roomchat's rest or html adapter (a page passes `location.origin`). */
  constructor(url, { userId = undefined, token = undefined, WebSocket: Socket = undefined } = {}) {
    super();
    const ws = new URL(url);
    ws.protocol = ws.protocol === "https:" || ws.protocol === "wss:" ? "wss:" : "ws:";
    ws.pathname = ws.pathname.replace(/\/+$/, "") + "/api/ws";
    ws.search = "";
    ws.hash = "";
    if (userId) ws.searchParams.set("userId", userId); // who this connection is in presence
    if (typeof (Socket ?? globalThis.WebSocket) !== "function") {
      throw new TypeError("no WebSocket here: pass options.WebSocket");
    }
    this.#url = ws.href;
    this.#userId = userId;
    this.#token = token;
    this.#WebSocket = Socket; // undefined: the global one at each connect (a polyfill may come later)
    this.#connect();
  }

  /** "connecting", "connected", "reconnecting" or "closed"; each change is a `state` event. */
  get state() { return this.#state; }
  get connected() { return this.#state === "connected"; }

  /** Resolves once the server has `subscribed` the room (waiting for a connection if need be). */
  subscribe(roomId, { lastId = undefined, presence = false, onEvent = () => {} } = {}) {
    if (this.#state === "closed") return Promise.reject(new Error("the client is closed"));
    if (this.#rooms.has(roomId)) return Promise.reject(new Error(`already subscribed to ${roomId}`));
    const sub = new Subscription(this, roomId, lastId, presence, onEvent);
    this.#rooms.set(roomId, sub);
    if (this.#ready) this.#sendSubscribe(sub);
    return sub.started;
  }

  /** Resolves with the stored message once acknowledged; sent again with the same key after a
   * reconnect, so it is stored once. Rejects with a RoomchatError, or a TimeoutError past `timeout` ms. */
  publish(roomId, text, { key = newKey(), timeout = PUBLISH_TIMEOUT_MS, userId = this.#userId } = {}) {
    if (this.#state === "closed") return Promise.reject(new Error("the client is closed"));
    return new Promise((resolve, reject) => {
      const ref = String(++this.#refs);
      const frame = { type: "publish", roomId, text, ref, key };
      if (userId) frame.userId = userId; // under --auth jwt the token's `sub` unless it is an admin's
      const entry = { frame, resolve, reject, timer: 0, resend: false };
      entry.timer = setTimeout(() => {
        this.#publishes.delete(ref);
        const error = new Error(`no answer within ${timeout} ms (retry with the same key to be sure)`);
        error.name = "TimeoutError";
        reject(error);
      }, timeout);
      this.#publishes.set(ref, entry);
      if (this.#ready) this.#send(frame);
    });
  }

  /** Ends every subscription and publish and closes the connection for good. */
  close() {
    if (this.#state === "closed") return;
    this.#setState("closed");
    clearTimeout(this.#timer);
    this.#dropSocket(1000);
    for (const sub of this.#rooms.values()) sub._end("closed");
    this.#rooms.clear();
    for (const entry of this.#publishes.values()) this.#settle(entry, new Error("the client is closed"));
    this.#publishes.clear();
  }

  // -- the connection ------------------------------------------------------------

  #connect() {
    this.#timer = 0;
    let ws;
    try {
      ws = new (this.#WebSocket ?? globalThis.WebSocket)(this.#url, SUBPROTOCOL);
    } catch (error) {
      this.#emitError(0, `cannot open ${this.#url}: ${error}`);
      this.#retry();
      return;
    }
    this.#ws = ws;
    ws.onopen = () => { if (ws === this.#ws) this.#opened(); };
    ws.onclose = () => { if (ws === this.#ws) this.#lost(); };
    ws.onmessage = (event) => {
      if (ws !== this.#ws) return;
      this.#heard = true;
      let frame;
      try { frame = JSON.parse(event.data); } catch { return; } // the server only sends JSON
      this.#frame(frame);
    };
  }

  #opened() {
    this.#heard = true;
    this.#pinger = setInterval(() => this.#checkAlive(), PING_MS);
    if (this.#token === undefined || this.#token === null) this.#becomeReady();
    else this.#authenticate();
  }

  // The token goes in a first `auth` frame (a browser cannot set headers on a
  // WebSocket); the server answers frames in order, so nothing is sent before it.
  async #authenticate() {
    const ws = this.#ws;
    let token;
    try {
      token = typeof this.#token === "function" ? await this.#token() : this.#token;
    } catch (error) {
      this.#emitError(401, `the token callback failed: ${error}`);
      if (ws === this.#ws) this.#drop();
      return;
    }
    if (ws !== this.#ws) return;
    this.#authing = true;
    this.#send({ type: "auth", token });
  }

  #becomeReady() {
    this.#ready = true;
    this.#attempt = 0;
    this.#setState("connected");
    for (const sub of this.#rooms.values()) if (!sub._active) this.#sendSubscribe(sub);
    for (const { frame } of this.#publishes.values()) this.#send(frame);
  }

  #lost() {
    this.#dropSocket();
    if (this.#state === "closed") return;
    this.#setState("reconnecting");
    this.#retry();
  }

  #retry() {
    this.#timer = setTimeout(() => this.#connect(), reconnectDelay(this.#attempt++));
  }

  /** Forget the socket (its late events are ignored) and close it. */
  #dropSocket(code = undefined) {
    const ws = this.#ws;
    this.#ws = null;
    this.#ready = this.#authing = false;
    clearInterval(this.#pinger);
    for (const sub of this.#rooms.values()) sub._active = false;
    if (ws) {
      ws.onopen = ws.onclose = ws.onmessage = null;
      try { ws.close(code); } catch { /* already closing */ }
    }
  }

  /** Give up on this connection and reconnect (a dead socket may take minutes to say so). */
  #drop() {
    if (this.#ws) this.#lost();
  }

  #checkAlive() {
    if (!this.#heard) return this.#drop();
    this.#heard = false;
    this.#send({ type: "ping" });
  }

  #send(frame) {
    if (this.#ws && this.#ws.readyState === 1) this.#ws.send(JSON.stringify(frame));
  }

  #setState(state) {
    if (state === this.#state) return;
    this.#state = state;
    this.dispatchEvent(new CustomEvent("state", { detail: state }));
  }

  #emitError(code, message, roomId = undefined) {
    this.dispatchEvent(new CustomEvent("error", { detail: { code, message, roomId } }));
  }

  // -- the server's frames ---------------------------------------------------------

  #frame(frame) {
    const type = frame.type;
    if (type === "message") return this.#rooms.get(frame.message.roomId)?._deliver(frame, frame.message.id);
    if (type === "ack") return this.#acked(frame);
    if (type === "error") return this.#refused(frame);
    if (type === "authenticated") {
      const first = !this.#ready;
      this.#authing = false;
      if (first) return this.#becomeReady();
      for (const sub of this.#rooms.values()) if (!sub._active) this.#sendSubscribe(sub);
      for (const entry of this.#publishes.values()) {
        if (entry.resend) this.#send(entry.frame);
        entry.resend = false;
      }
      return;
    }
    const sub = this.#rooms.get(frame.roomId ?? frame.event?.roomId);
    if (!sub) return; // pong, unsubscribed, or a room let go meanwhile
    if (type === "subscribed") { // also after each resubscription: the room is live again
      sub._deliver(frame);
      return sub._started();
    }
    if (type === "lagged") return this.#resubscribe(sub); // too slow: the server ended it; resume at once
    if (type === "expired") return this.#expired(sub);
    if (type === "deleted") {
      this.#rooms.delete(sub.roomId);
      sub._deliver(frame);
      return sub._end("deleted");
    }
    // gap, presence, and what later servers add (edited, removed, typing: an id of their own)
    sub._deliver(frame, frame.event?.id);
  }

  #sendSubscribe(sub) {
    sub._active = true;
    const frame = { type: "subscribe", roomId: sub.roomId };
    const lastId = sub.lastId || (sub._begun ? BEFORE_HISTORY : undefined);
    if (lastId) frame.lastId = lastId;
    if (sub.presence) frame.presence = true;
    this.#send(frame);
  }

  #resubscribe(sub) {
    sub._active = false;
    if (this.#ready && !this.#authing) this.#sendSubscribe(sub);
  }

  // The token ran out: the server ended the room. A fresh token, then subscribe again
  // (a plain string token is sent again as it is: the server will say it is expired).
  #expired(sub) {
    sub._active = false;
    if (!this.#authing && this.#ready) this.#authenticate();
  }

  #acked(frame) {
    const entry = this.#publishes.get(frame.ref);
    if (!entry) return; // timed out meanwhile
    this.#publishes.delete(frame.ref);
    clearTimeout(entry.timer);
    entry.resolve(frame.message);
  }

  #refused(frame) {
    const { code, message } = frame;
    const entry = frame.ref === undefined ? undefined : this.#publishes.get(frame.ref);
    if (entry) return this.#publishRefused(entry, frame);
    const sub = frame.roomId === undefined ? undefined : this.#rooms.get(frame.roomId);
    if (sub) return this.#subscribeRefused(sub, frame);
    if (this.#authing) { // the token was refused: say so, and try again later with the callback's next one
      this.#emitError(code, message);
      return this.#drop();
    }
    this.#emitError(code, message);
  }

  #publishRefused(entry, frame) {
    const { code, message, ref } = frame;
    if (code === 401) { // expired since the connection opened: a fresh token, then again
      entry.resend = true;
      if (!this.#authing) this.#authenticate();
    } else if (code === 503 || code === 429) { // not stored: the same key again, a little later
      const wait = code === 429 && frame.retryAfter ? frame.retryAfter * 1000 : reconnectDelay(1);
      setTimeout(() => { if (this.#ready && this.#publishes.has(ref)) this.#send(entry.frame); }, wait);
    } else {
      this.#publishes.delete(ref);
      this.#settle(entry, new RoomchatError(code, message, frame));
    }
  }

  #subscribeRefused(sub, frame) {
    const { code, message } = frame;
    sub._active = false;
    if (code === 401) {
      if (!this.#authing) this.#authenticate();
    } else if (code === 503) { // the backend's feed was lost, or the server is full: resume later
      setTimeout(() => { if (!sub._active && this.#rooms.get(sub.roomId) === sub) this.#resubscribe(sub); },
        reconnectDelay(2));
    } else {
      this.#rooms.delete(sub.roomId);
      const error = new RoomchatError(code, message, frame);
      if (!sub._begun) return sub._end(error);
      sub._deliver(frame);
      sub._end(error);
    }
  }

  #settle(entry, error) {
    clearTimeout(entry.timer);
    entry.reject(error);
  }

  /** Used by Subscription.unsubscribe. */
  _unsubscribe(sub) {
    if (this.#rooms.get(sub.roomId) !== sub) return;
    this.#rooms.delete(sub.roomId);
    if (sub._active) this.#send({ type: "unsubscribe", roomId: sub.roomId });
    sub._end("unsubscribed");
  }
}

/** One room's subscription: every message once, in order, across reconnects. */
export class Subscription {
  #client;
  #onEvent;
  #seen = new Set();
  #resolve;
  #reject;
  #finish;

  constructor(client, roomId, lastId, presence, onEvent) {
    this.#client = client;
    this.roomId = roomId;
    this.lastId = lastId ?? null; // the last id delivered (or the one given): where a resume starts
    this.presence = presence;
    this.#onEvent = onEvent;
    this._active = false; // a `subscribe` is out on the current connection
    this._begun = false;
    this.started = new Promise((resolve, reject) => { this.#resolve = resolve; this.#reject = reject; });
    this.started.catch(() => {}); // the caller sees it; an unawaited refusal is no unhandled rejection
    /** Resolves with why it ended: "deleted", "unsubscribed", "closed", or a RoomchatError. */
    this.ended = new Promise((resolve) => { this.#finish = resolve; });
  }

  unsubscribe() { this.#client._unsubscribe(this); }

  _started() {
    if (this._begun) return;
    this._begun = true;
    this.#resolve(this);
  }

  _deliver(frame, id = undefined) {
    if (id !== undefined) {
      if (this.#seen.has(id)) return; // already delivered: a replay after a gap
      this.#seen.add(id);
      if (this.#seen.size > IDS_KEPT) this.#seen.delete(this.#seen.values().next().value);
      this.lastId = id;
    }
    try { this.#onEvent(frame); } catch (error) { report(error); }
  }

  _end(reason) {
    this._active = false;
    if (!this._begun) this.#reject(reason instanceof Error ? reason : new Error(`subscription ${reason}`));
    this.#finish(reason);
  }
}
