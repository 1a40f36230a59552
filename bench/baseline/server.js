// The original design, rebuilt as the baseline leadbus is measured against
// (bench/compare.sh): an Express server that answers POST /leads, keeps the
// lead in memory and calls it through Exotel's connect API from a setTimeout
// EXOTEL_CALL_DELAY_MS later. No store, no rate limit, no retries: what the
// original guide describes ("Scheduled calls are lost if server restarts").
// It skips the Zoho push, which the original made before scheduling the call.
"use strict";
const express = require("express");
const crypto = require("crypto");

const PORT = Number(process.env.PORT || 3000);
const DELAY = Number(process.env.EXOTEL_CALL_DELAY_MS || 60000);
const BASE = process.env.EXOTEL_BASE_URL || "https://api.exotel.com";
const SID = process.env.EXOTEL_ACCOUNT_SID || "sandbox";
const AUTH = "Basic " + Buffer.from(`${process.env.EXOTEL_API_KEY || "sandbox-key"}:` +
  `${process.env.EXOTEL_API_TOKEN || "sandbox-token"}`).toString("base64");
const KEYS = (process.env.API_KEYS || "").split(",").filter(Boolean);
const stats = { pending: 0, total: 0, byStatus: { pending: 0, success: 0, failed: 0, skipped: 0 } };

function formatPhone(raw) {
  const digits = String(raw || "").replace(/\D/g, "");
  if (digits.length === 10 && /^[6-9]/.test(digits)) return "0" + digits;
  if (digits.length === 12 && digits.startsWith("91")) return "0" + digits.slice(2);
  return null;
}

async function executeCall(callId, phone) {
  stats.pending--; stats.byStatus.pending--;
  const body = new URLSearchParams({ From: "08047000001", To: phone, CallerId: "08047000000",
    CallType: "trans", CustomField: callId });
  try {
    const r = await fetch(`${BASE}/v1/Accounts/${SID}/Calls/connect.json`, {
      method: "POST", headers: { Authorization: AUTH, "Content-Type": "application/x-www-form-urlencoded" },
      body });
    stats.byStatus[r.ok ? "success" : "failed"]++;
  } catch (e) {
    stats.byStatus.failed++;
  }
}

const app = express();
app.use(express.json({ limit: "64kb" }));
app.post("/leads", (req, res) => {
  if (!KEYS.includes(req.get("X-API-Key"))) return res.status(401).json({ success: false });
  const lead = req.body || {};
  if (!lead.name) return res.status(400).json({ success: false, error: "name is required" });
  const leadId = "ld_" + crypto.randomBytes(8).toString("hex");
  const phone = formatPhone(lead.phone);
  stats.total++;
  if (!phone) {
    stats.byStatus.skipped++;
  } else {
    stats.pending++; stats.byStatus.pending++;
    setTimeout(() => executeCall(`call_${leadId}`, phone), DELAY);
  }
  res.status(202).json({ success: true, leadId });
});
app.get("/exotel/stats", (req, res) => res.json({ success: true, stats }));
app.get("/healthz", (req, res) => res.json({ status: "ok" }));
app.listen(PORT, "127.0.0.1");
