// Drives services/ingest/form.js in headless Chromium (playwright-core, Debian's chromium):
// a page on an allowed origin submits with a double click (one lead), a page on another
// origin is refused by the browser (CORS). Serves both pages itself; prints one JSON line.
import { chromium } from "playwright-core";
import http from "node:http";

const { LEADBUS, FORM_KEY, GOOD_PORT, BAD_PORT, SHOTS } = process.env;
const page = `<!doctype html><html><head><meta charset="utf-8"><title>Shop</title>
<meta name="viewport" content="width=device-width"></head><body>
<h1>Call me back</h1>
<form id="lead-form">
  <label>Name <input name="name" required></label>
  <label>Phone <input name="phone"></label>
  <label>Email <input name="email" type="email"></label>
  <input name="website_url" tabindex="-1" autocomplete="off" style="display:none">
  <button type="submit">Call me</button>
  <p data-leadbus-status></p>
</form>
<script src="${LEADBUS}/form.js" data-leadbus-key="${FORM_KEY}" data-leadbus-form="#lead-form"></script>
</body></html>`;

function serve(port) {
  return new Promise((resolve) => {
    const s = http.createServer((req, res) => {
      res.writeHead(200, { "Content-Type": "text/html; charset=utf-8" });
      res.end(page);
    });
    s.listen(Number(port), "127.0.0.1", () => resolve(s));
  });
}

const servers = [await serve(GOOD_PORT), await serve(BAD_PORT)];
const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const result = {};
try {
  // 1. An allowed origin: fill in, double-click, wait for the answer.
  const ctx = await browser.newContext();
  const p = await ctx.newPage();
  const errors = [];
  p.on("pageerror", (e) => errors.push(String(e)));
  await p.goto(`http://127.0.0.1:${GOOD_PORT}/`);
  await p.fill("input[name=name]", "Web Form Lead");
  await p.fill("input[name=phone]", "9876501234");
  await p.fill("input[name=email]", "web@example.com");
  await p.dblclick("button[type=submit]");
  await p.waitForSelector("[data-leadbus-status][data-state=ok]", { timeout: 45000 });
  result.allowed = await p.textContent("[data-leadbus-status]");
  result.pageErrors = errors;
  await p.screenshot({ path: `${SHOTS}/form-allowed.png` });
  await ctx.close();

  // 2. Another origin: the browser refuses the answer (no Access-Control-Allow-Origin).
  const ctx2 = await browser.newContext();
  const q = await ctx2.newPage();
  await q.goto(`http://127.0.0.1:${BAD_PORT}/`);
  await q.fill("input[name=name]", "Other Site Lead");
  await q.fill("input[name=phone]", "9876505678");
  await q.click("button[type=submit]");
  await q.waitForSelector("[data-leadbus-status][data-state=error]", { timeout: 45000 });
  result.refused = await q.textContent("[data-leadbus-status]");
  await q.screenshot({ path: `${SHOTS}/form-refused.png` });
  await ctx2.close();
} finally {
  await browser.close();
  servers.forEach((s) => s.close());
}
console.log(JSON.stringify(result));
