// roomchat's pages: the home form and the chat room, the room on roomchat.js
// (the same client every app uses, served beside this file). No framework, no
// inline script (the pages' Content-Security-Policy forbids it), and every
// text goes into the page through textContent, never as HTML.
import { RoomchatClient } from "./roomchat.js";

{
  const NAME_KEY = "roomchat.name";
  const TOKEN_KEY = "roomchat.token"; // this tab's token under --auth jwt (sessionStorage)
  const TOKEN_COOKIE = "roomchat_token"; // how the page's own GET carries it (the WebSocket sends an auth frame)
  const JWT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;
  const FIRST = "0-0"; // never a message id: "everything in history", for an empty page
  const POLL_MS = 15000; // how often the number of listeners is refreshed

  const savedName = () => {
    try { return localStorage.getItem(NAME_KEY) || ""; } catch { return ""; }
  };
  const saveName = (name) => {
    try { localStorage.setItem(NAME_KEY, name); } catch { /* private mode: not remembered */ }
  };

  // -- the token (--auth jwt) --------------------------------------------------
  // A page is opened as /room/{id}#token=<jwt>: the fragment never reaches the
  // server or its logs. The token is kept for this tab only, and taken out of
  // the address bar so it is not bookmarked, shared or left in the history.
  let memoryToken = ""; // when sessionStorage is unavailable

  function adoptToken() {
    const found = new URLSearchParams(location.hash.slice(1)).get("token") || "";
    if (!found) return "";
    history.replaceState(null, "", location.pathname + location.search);
    if (!JWT.test(found)) return "";
    memoryToken = found;
    try { sessionStorage.setItem(TOKEN_KEY, found); } catch { /* kept in memory */ }
    return found;
  }

  function currentToken() {
    try { return sessionStorage.getItem(TOKEN_KEY) || memoryToken; } catch { return memoryToken; }
  }

  // Same-site requests only (SameSite=Strict), and set again before each
  // connection opens, so two tabs with two tokens each connect as their own.
  function setCookie(token) {
    const secure = location.protocol === "https:" ? "; Secure" : "";
    document.cookie = `${TOKEN_COOKIE}=${token}; path=/; SameSite=Strict${secure}`;
  }

  // The name shown is the token's `sub`; the server checks the signature.
  function subjectOf(token) {
    try {
      const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      const bytes = Uint8Array.from(atob(part.padEnd(Math.ceil(part.length / 4) * 4, "=")), (c) => c.charCodeAt(0));
      const sub = JSON.parse(new TextDecoder().decode(bytes)).sub;
      return typeof sub === "string" ? sub : "";
    } catch {
      return "";
    }
  }

  const page = document.body.dataset.page;
  if (page === "home") home();
  if (page === "room") room();

  function home() {
    const form = document.getElementById("join");
    const name = document.getElementById("name");
    const roomField = document.getElementById("room");
    if (document.body.dataset.auth === "token") {
      const fresh = adoptToken();
      if (fresh) {
        setCookie(fresh);
        // The list was rendered for a visitor without a token: ask again with it.
        if (document.getElementById("rooms-need-token")) location.reload();
      }
      roomField.focus();
      return;
    }
    name.value = savedName();
    (name.value ? roomField : name).focus();
    form.addEventListener("submit", () => saveName(name.value.trim()));
  }

  function room() {
    const roomId = document.body.dataset.room;
    const log = document.getElementById("log");
    const scroller = document.getElementById("scroller");
    const status = document.getElementById("status");
    const listeners = document.getElementById("listeners");
    const people = document.getElementById("people");
    const present = new Set();
    let anonymous = 0;
    const form = document.getElementById("composer");
    const nameField = document.getElementById("name");
    const textField = document.getElementById("text");
    const sendButton = document.getElementById("send");
    const error = document.getElementById("error");

    const tokenNeeded = document.getElementById("token-needed");
    const byToken = document.body.dataset.auth === "token";
    let token = "";

    const seen = new Set();
    let lastId = document.body.dataset.lastId || FIRST; // where the subscription resumes
    let client = null;
    let pollTimer = 0;
    let over = false; // deleted or stopped: nothing reconnects

    const clock = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
    const full = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });

    function localTime(el) {
      const when = new Date(el.dateTime);
      if (Number.isNaN(when.getTime())) return;
      el.textContent = clock.format(when);
      el.title = full.format(when);
    }

    function markMine(li) {
      li.classList.toggle("mine", li.dataset.user === nameField.value.trim());
    }

    function nearBottom() {
      return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 120;
    }

    function toBottom() {
      scroller.scrollTop = scroller.scrollHeight;
    }

    function append(li, follow) {
      const empty = document.getElementById("empty");
      if (empty) empty.remove();
      log.append(li);
      if (follow) toBottom();
    }

    function show(message) {
      lastId = message.id;
      if (seen.has(message.id)) return; // rendered by the server already
      seen.add(message.id);
      const follow = nearBottom() || message.userId === nameField.value.trim();
      const li = document.createElement("li");
      li.className = "message";
      li.dataset.id = message.id;
      li.dataset.user = message.userId;
      const meta = document.createElement("div");
      meta.className = "meta";
      // Each name and text isolated: bidirectional characters in one cannot reorder the page around it.
      const author = document.createElement("bdi");
      author.className = "author";
      author.textContent = message.userId;
      const time = document.createElement("time");
      time.dateTime = message.time;
      time.textContent = message.time.slice(11, 16);
      localTime(time);
      meta.append(author, " ", time);
      const text = document.createElement("p");
      text.className = "text";
      text.dir = "auto";
      text.textContent = message.text;
      li.append(meta, text);
      markMine(li);
      append(li, follow);
    }

    function notice(text, kind) {
      const li = document.createElement("li");
      li.className = "notice" + (kind ? " " + kind : "");
      li.textContent = text;
      append(li, nearBottom());
      return li;
    }

    function setState(state, text) {
      status.dataset.state = state;
      status.textContent = text;
    }

    // -- the live room, through roomchat.js ----------------------------------------
    // One client per name: it reconnects with backoff and resumes after the last
    // message shown by itself; a new name is a new client, resumed from there.

    let refusedName = ""; // the server takes no presence under it: listen anonymously until it changes

    function start() {
      if (client) client.close();
      const name = nameField.value.trim();
      const userId = !byToken && name && name !== refusedName ? name : undefined;
      if (token) setCookie(token);
      const current = client = new RoomchatClient(location.origin, { userId, token: token ? () => token : null });
      current.addEventListener("state", ({ detail }) => {
        if (current !== client || over) return;
        if (detail === "reconnecting") {
          setState("reconnecting", "Reconnecting…");
          if (byToken) allowed();
        }
      });
      current.addEventListener("error", ({ detail }) => {
        if (current === client && detail.code === 401) stop("Your token has expired or is not valid: open a fresh link.");
      });
      current.subscribe(roomId, { lastId, presence: true, onEvent }).catch((refusal) => {
        if (current !== client || !refusal.code) return;
        if (refusal.code === 422 && userId) { // our name: sending will say what is wrong with it
          refusedName = userId;
          start();
        } else if (refusal.code === 403) stop("Your token does not open this room.");
        else stop(refusal.message);
      });
    }

    function onEvent(event) {
      if (event.type === "message") show(event.message);
      else if (event.type === "subscribed") { // live again: what it replays follows
        setState("connected", "Connected");
        refreshListeners();
      }
      else if (event.type === "presence") arrivals(event);
      else if (event.type === "gap") {
        // Our last message is no longer in the server's history (it restarted or
        // trimmed it): everything it still has follows. Only worth saying if we
        // had shown something.
        if (seen.size > 0) notice("Some messages may be missing here: the server no longer has them.", "gap");
      } else if (event.type === "deleted") roomDeleted();
      else if (event.type === "error") stop(event.code === 403 ? "Your token does not open this room." : event.message);
    }

    function roomDeleted() {
      over = true;
      client.close();
      clearInterval(pollTimer);
      setState("deleted", "Room deleted");
      listeners.textContent = "– listening";
      const li = notice("This room was deleted. ", "deleted");
      const again = document.createElement("a");
      again.href = location.pathname;
      again.textContent = "Start it again";
      li.append(again);
    }

    // A WebSocket hides the status of a refused upgrade: under --auth jwt ask
    // once why, so a missing, expired or too narrow token is said, not retried forever.
    async function allowed() {
      let status = 0;
      try {
        status = (await fetch(`/room/${encodeURIComponent(roomId)}/info`, { headers: headers() })).status;
      } catch { /* unreachable: keep trying */ }
      if (status === 401) stop(token ? "Your token has expired or is not valid: open a fresh link." : "");
      else if (status === 403) stop("Your token does not open this room.");
      return status !== 401 && status !== 403;
    }

    async function connectIfAllowed() {
      if (await allowed()) start();
    }

    // No token, or one that no longer works: say so and stop (the page keeps what it shows).
    function stop(reason) {
      over = true;
      if (client) client.close();
      clearInterval(pollTimer);
      setState("stopped", reason ? "Stopped" : "Needs a token");
      closeComposer();
      if (reason) showError(reason);
    }

    function closeComposer() {
      textField.disabled = true;
      sendButton.disabled = true;
    }

    // No token under --auth jwt: say so; the room may still be readable (--anonymous-read).
    function withoutToken() {
      if (tokenNeeded) tokenNeeded.hidden = false;
      closeComposer();
      connectIfAllowed();
    }

    function headers() {
      const sent = { Accept: "application/json" };
      if (token) sent.Authorization = `Bearer ${token}`;
      return sent;
    }

    async function refreshListeners() {
      if (over) return;
      refreshPresence();
      try {
        const answer = await fetch(`/room/${encodeURIComponent(roomId)}/info`, { headers: headers() });
        if (!answer.ok || over) return;
        const info = await answer.json();
        listeners.textContent = `${info.listeners} listening`;
      } catch { /* the connection's state already says what is wrong */ }
    }

    // -- who is here --------------------------------------------------------------
    // The connection names us and the subscription asks for presence events (at
    // most one a second per room: a reconnect storm is folded away by the server).
    // The list itself is fetched on every (re)connect and poll, since events
    // carry no anonymous count.

    async function refreshPresence() {
      try {
        const answer = await fetch(`/room/${encodeURIComponent(roomId)}/presence`, { headers: headers() });
        if (!answer.ok) return;
        const found = await answer.json();
        present.clear();
        for (const user of found.users) present.add(user.userId);
        anonymous = found.anonymous;
        showPresent();
      } catch { /* the connection's state already says what is wrong */ }
    }

    function arrivals(change) {
      const me = nameField.value.trim();
      for (const user of change.joined) {
        present.add(user);
        if (user !== me) notice(`${user} joined`, "presence");
      }
      for (const user of change.left) {
        present.delete(user);
        if (user !== me) notice(`${user} left`, "presence");
      }
      showPresent();
    }

    function showPresent() {
      const names = [...present].sort();
      const items = names.map((user) => {
        const li = document.createElement("li");
        const name = document.createElement("bdi"); // isolated, like every name on the page
        name.textContent = user;
        li.append(name);
        return li;
      });
      if (anonymous) {
        const li = document.createElement("li");
        li.className = "anonymous";
        li.textContent = `${anonymous} anonymous`;
        items.push(li);
      }
      people.replaceChildren(...items);
    }

    // -- sending ---------------------------------------------------------------

    function showError(text, field) {
      error.textContent = text ? text.charAt(0).toUpperCase() + text.slice(1) : "";
      (field || textField).setAttribute("aria-invalid", text ? "true" : "false");
      if (!text) nameField.setAttribute("aria-invalid", "false");
    }

    // The server names the WebSocket's fields; the page names the form's (as a form post is answered).
    function reasonOf(refusal) {
      return refusal.message.replace(/^userId\b/, "user").replace(/^text\b/, "message");
    }

    function resize() {
      textField.style.height = "auto";
      textField.style.height = Math.min(textField.scrollHeight, 200) + "px";
    }

    async function send() {
      const user = nameField.value.trim();
      const text = textField.value;
      if (!user) {
        showError("Choose a name first.", nameField);
        nameField.focus();
        return;
      }
      if (!text.trim() || !client) return;
      if (!byToken) saveName(user);
      sendButton.disabled = true;
      try {
        // Under a token the server posts as its `sub`. While the connection is down the
        // post waits for it, and is stored once however many times it is sent.
        await client.publish(roomId, text, { userId: byToken ? undefined : user });
        if (textField.value === text) {
          textField.value = "";
          resize();
        }
        showError("");
      } catch (refusal) {
        if (refusal.name === "TimeoutError") showError("Could not send: the server cannot be reached.");
        else if (refusal.code) {
          const reason = reasonOf(refusal);
          showError(reason, /^user/.test(reason) ? nameField : textField);
        }
      } finally {
        if (!over) sendButton.disabled = false;
        textField.focus();
      }
    }

    // -- wiring ----------------------------------------------------------------

    for (const li of log.querySelectorAll("li.message")) {
      seen.add(li.dataset.id);
      localTime(li.querySelector("time"));
    }
    if (byToken) {
      token = adoptToken() || currentToken();
      nameField.value = subjectOf(token);
      window.addEventListener("hashchange", () => {
        // A fresh link opened in this tab: carry on with its token.
        const fresh = adoptToken();
        if (!fresh) return;
        token = fresh;
        over = false;
        nameField.value = subjectOf(token);
        textField.disabled = false;
        sendButton.disabled = false;
        showError("");
        if (tokenNeeded) tokenNeeded.hidden = true;
        for (const li of log.querySelectorAll("li.message")) markMine(li);
        clearInterval(pollTimer);
        pollTimer = setInterval(refreshListeners, POLL_MS);
        setState("reconnecting", "Reconnecting…");
        connectIfAllowed();
      });
    } else {
      nameField.value = savedName();
    }
    for (const li of log.querySelectorAll("li.message")) markMine(li);
    nameField.addEventListener("change", () => {
      const name = nameField.value.trim();
      if (name) saveName(name);
      if (client && !over && !byToken) { // be present under the new name
        setState("reconnecting", "Reconnecting…");
        start();
      }
      for (const li of log.querySelectorAll("li.message")) markMine(li);
    });
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      send();
    });
    textField.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        form.requestSubmit();
      }
    });
    textField.addEventListener("input", resize);
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") refreshListeners();
    });
    pollTimer = setInterval(refreshListeners, POLL_MS);

    toBottom();
    (nameField.value ? textField : nameField).focus();
    if (byToken && !token) withoutToken();
    else if (byToken) connectIfAllowed();
    else start();
  }
}
