// Validate rendered Kubernetes objects against the API schemas bundled in the npm package
// kubernetes-models (no cluster needed), and check what leadbus's manifests promise: every
// container non-root, read-only root, no privilege escalation, probes, a preStop pause and
// resource limits.
// Usage: kubectl kustomize DIR | node validate.js -      (exit 1 on any failure)
"use strict";
const fs = require("fs");
const path = require("path");
const { pathToFileURL } = require("url");
const YAML = require("yaml");
// kubernetes-models is an ES module: import it from where npm installed it (NODE_PATH).
const modelsDir = path.join(process.env.NODE_PATH || "node_modules", "kubernetes-models");
async function model(apiVersion, kind) {
  const pkg = JSON.parse(fs.readFileSync(path.join(modelsDir, "package.json"), "utf8"));
  const entry = pkg.exports[`./${apiVersion}`];
  if (!entry) return null;
  const mod = await import(pathToFileURL(path.join(modelsDir, entry.import || entry)).href);
  return mod[kind] || null;
}
// Custom resources have no schema in kubernetes-models: the fields leadbus relies on, checked here.
const crds = {
  "monitoring.coreos.com/v1 ServiceMonitor": (o) => {
    const s = o.spec || {};
    if (!s.selector || typeof s.selector !== "object") return "spec.selector missing";
    if (!Array.isArray(s.endpoints) || s.endpoints.length === 0) return "spec.endpoints missing";
    for (const e of s.endpoints) if (!e.port && !e.targetPort) return "an endpoint has no port";
    return null;
  },
  // cert-manager v1 (https://cert-manager.io/docs/reference/api-docs/): the bus certificates.
  "cert-manager.io/v1 Issuer": (o) => {
    const s = o.spec || {};
    const kinds = ["selfSigned", "ca", "acme", "vault", "venafi"].filter((k) => k in s);
    if (kinds.length !== 1) return `exactly one issuer type expected, found [${kinds}]`;
    if (s.ca && typeof s.ca.secretName !== "string") return "spec.ca.secretName missing";
    return null;
  },
  "cert-manager.io/v1 Certificate": (o) => {
    const s = o.spec || {};
    const usages = ["signing", "digital signature", "content commitment", "key encipherment",
      "key agreement", "data encipherment", "cert sign", "crl sign", "encipher only",
      "decipher only", "any", "server auth", "client auth", "code signing", "email protection",
      "s/mime", "ipsec end system", "ipsec tunnel", "ipsec user", "timestamping", "ocsp signing",
      "microsoft sgc", "netscape sgc"];
    if (typeof s.secretName !== "string" || !s.secretName) return "spec.secretName missing";
    if (!s.issuerRef || typeof s.issuerRef.name !== "string") return "spec.issuerRef.name missing";
    if (!s.commonName && !(s.dnsNames || []).length) return "neither commonName nor dnsNames";
    for (const n of s.dnsNames || []) if (typeof n !== "string" || !/^[a-z0-9*]([a-z0-9.-]*[a-z0-9])?$/.test(n)) return `bad dnsName ${n}`;
    for (const u of s.usages || []) if (!usages.includes(u)) return `unknown usage ${u}`;
    const pk = s.privateKey || {};
    if (pk.algorithm && !["RSA", "ECDSA", "Ed25519"].includes(pk.algorithm)) return `privateKey.algorithm ${pk.algorithm}`;
    if (pk.rotationPolicy && !["Never", "Always"].includes(pk.rotationPolicy)) return `privateKey.rotationPolicy ${pk.rotationPolicy}`;
    for (const d of ["duration", "renewBefore"]) if (s[d] !== undefined && !/^([0-9]+(\.[0-9]+)?(h|m|s|ms))+$/.test(s[d])) return `${d} ${s[d]} is not a Go duration`;
    return null;
  },
};
async function main() {
const text = fs.readFileSync(process.argv[2] === "-" ? 0 : process.argv[2], "utf8");
let bad = 0, checked = 0;
const fail = (what, why) => { bad++; console.log(`FAIL ${what}: ${why}`); };
for (const doc of YAML.parseAllDocuments(text)) {
  const o = doc.toJS();
  if (!o) continue;
  const what = `${o.kind}/${o.metadata && o.metadata.name}`;
  const crd = crds[`${o.apiVersion} ${o.kind}`];
  if (crd) {
    const why = crd(o);
    if (why) fail(what, why); else { checked++; console.log(`OK   ${what} (custom resource)`); }
    continue;
  }
  let Model;
  try { Model = await model(o.apiVersion, o.kind); } catch (e) { Model = null; }
  if (!Model) { fail(what, `no schema for ${o.apiVersion} ${o.kind}`); continue; }
  try { new Model(o).validate(); } catch (e) { fail(what, e.message); continue; }
  checked++;
  const pod = o.spec && o.spec.template && o.spec.template.spec;
  if (!pod) { console.log(`OK   ${what}`); continue; }
  if (!(pod.securityContext && pod.securityContext.runAsNonRoot)) fail(what, "pod may run as root");
  if (!pod.terminationGracePeriodSeconds) fail(what, "no terminationGracePeriodSeconds");
  for (const c of pod.containers) {
    const sc = c.securityContext || {};
    if (!sc.readOnlyRootFilesystem) fail(what, `${c.name}: writable root filesystem`);
    if (sc.allowPrivilegeEscalation !== false) fail(what, `${c.name}: privilege escalation allowed`);
    if (!c.livenessProbe || !c.readinessProbe) fail(what, `${c.name}: probes missing`);
    if (!(c.lifecycle && c.lifecycle.preStop)) fail(what, `${c.name}: no preStop pause`);
    if (!c.resources || !c.resources.limits || !c.resources.requests) fail(what, `${c.name}: no resources`);
  }
  console.log(`OK   ${what}`);
}
console.log(`${checked} objects valid, ${bad} problems`);
process.exit(bad || checked === 0 ? 1 : 0);
}
main();
