// /docs: renders /openapi.json. A file of its own: the page's Content-Security-Policy allows no inline script.
"use strict";

fetch("/openapi.json").then((r) => r.json()).then((doc) => {
  document.getElementById("title").textContent = doc.info.title + " " + doc.info.version;
  document.getElementById("description").textContent = doc.info.description;
  const ops = document.getElementById("ops");
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const method of ["get", "post", "delete"]) {
      const op = item[method];
      if (!op) continue;
      const box = document.createElement("details");
      box.className = "op";
      const summary = document.createElement("summary");
      const verb = document.createElement("span");
      verb.className = "method " + method;
      verb.textContent = method;
      const code = document.createElement("code");
      code.textContent = path;
      summary.append(verb, code, " — " + op.summary);
      const body = document.createElement("pre");
      body.textContent = JSON.stringify(op, null, 2);
      box.append(summary, body);
      ops.append(box);
    }
  }
});
