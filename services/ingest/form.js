/*
 * leadbus form.js: posts a page's lead form to leadbus with a form key.
 *
 *   <form id="lead-form">
 *     <input name="name" required> <input name="phone"> <input name="email">
 *     <input name="website_url" tabindex="-1" autocomplete="off" style="display:none">
 *     <button>Call me</button> <p data-leadbus-status></p>
 *   </form>
 *   <script src="https://leads.example.com/form.js" data-leadbus-key="FORM_KEY"
 *           data-leadbus-form="#lead-form" data-leadbus-source="Website"></script>
 *
 * One submission carries one Idempotency-Key: a double click, or a retry after
 * a network error, can never create a second lead. Fields other than leadbus's
 * go to `extra`, except the honeypot field (FORM_HONEYPOT_FIELD), sent as is.
 * The page's origin must be in CORS_ALLOWED_ORIGINS. Emits `leadbus:done` on
 * the form with {ok, status, leadId, error} in event.detail.
 */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script) return;
  var base = new URL(script.src).origin;
  var key = script.getAttribute("data-leadbus-key") || "";
  var form = document.querySelector(script.getAttribute("data-leadbus-form") || "form");
  var source = script.getAttribute("data-leadbus-source") || "Website";
  var honeypot = script.getAttribute("data-leadbus-honeypot") || "website_url";
  var known = ["name", "firstName", "lastName", "phone", "email", "company", "city", "notes", "source"];
  if (!form) return;

  var status = form.querySelector("[data-leadbus-status]");
  if (!status) {
    status = document.createElement("p");
    status.setAttribute("data-leadbus-status", "");
    form.appendChild(status);
  }
  status.setAttribute("role", "status");
  status.setAttribute("aria-live", "polite");

  var inFlight = false;
  var idempotencyKey = null; /* one per submission, kept until it succeeds */

  function newKey() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    var b = new Uint8Array(16);
    crypto.getRandomValues(b);
    return Array.prototype.map.call(b, function (x) { return ("0" + x.toString(16)).slice(-2); }).join("");
  }

  function show(text, state) {
    status.textContent = text;
    status.setAttribute("data-state", state);
  }

  function body() {
    var lead = { source: source }, extra = {};
    new FormData(form).forEach(function (value, name) {
      if (typeof value !== "string") return;
      if (known.indexOf(name) >= 0 || name === honeypot) lead[name] = value;
      else if (value !== "") extra[name] = value;
    });
    if (Object.keys(extra).length) lead.extra = extra;
    return JSON.stringify(lead);
  }

  function done(detail) {
    inFlight = false;
    form.dispatchEvent(new CustomEvent("leadbus:done", { detail: detail }));
  }

  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    if (inFlight) return; /* a second click while the first is on its way */
    inFlight = true;
    if (!idempotencyKey) idempotencyKey = newKey();
    show("Sending…", "sending");
    fetch(base + "/leads", {
      method: "POST",
      mode: "cors",
      headers: { "Content-Type": "application/json", "X-API-Key": key, "Idempotency-Key": idempotencyKey },
      body: body()
    }).then(function (res) {
      return res.json().catch(function () { return {}; }).then(function (answer) {
        if (res.status === 202 && answer.success) {
          idempotencyKey = null;
          form.reset();
          show("Thank you! We will call you shortly.", "ok");
          done({ ok: true, status: 202, leadId: answer.leadId });
          return;
        }
        var err = answer.error || {};
        var text = err.message || "The lead could not be sent.";
        if (err.fields) text += " " + Object.keys(err.fields).map(function (f) { return f + ": " + err.fields[f]; }).join("; ");
        if (res.status === 429) text = "Too many requests; please try again in " + (res.headers.get("Retry-After") || "a few") + " s.";
        if (res.status < 500 && res.status !== 429) idempotencyKey = null; /* a refusal: the next try is new */
        show(text, "error");
        done({ ok: false, status: res.status, error: err.code || "error" });
      });
    }).catch(function () {
      /* No answer (network, or CORS refused): the same key makes a retry safe. */
      show("Could not reach the server; please try again.", "error");
      done({ ok: false, status: 0, error: "network" });
    });
  });
})();
