// /docs: Swagger UI (pip's swagger-ui-bundle, served at /static/swagger-ui/) over the
// OpenAPI document the page carries in a JSON block, so it renders with no fetch first.
// A file of its own: the page's Content-Security-Policy allows no inline script.
"use strict";

const spec = JSON.parse(document.getElementById("openapi").textContent);
window.SwaggerUIBundle({
  spec,
  dom_id: "#swagger-ui",
  deepLinking: true,
  docExpansion: "list",
  defaultModelsExpandDepth: 1,
  tryItOutEnabled: false,
  validatorUrl: null, // never ask the public validator: the page uses no other origin
});
