// What the rendered manifests must say, beyond schema validity (tests/integration/k8s_manifests.sh).
//   node k8s_assert.js check base|production RENDERED.yaml
//       exit 1 with one FAIL line per broken promise
//   node k8s_assert.js env RENDERED.yaml WORKLOAD POD-NAME
//       the environment Kubernetes would give the container of StatefulSet/Deployment WORKLOAD
//       (ConfigMaps resolved, fieldRef metadata.name = POD-NAME), as NAME=value lines; the
//       Secret is not in the rendering and is left out (the caller adds its own).
//   node k8s_assert.js pods RENDERED.yaml DIR
//       every pod the workloads make, with its environment in DIR/<pod>.env (k8s_run.sh)
"use strict";
const fs = require("fs");
const YAML = require("yaml");

const [mode, a1, a2, a3, a4] = process.argv.slice(2);
const load = (f) => YAML.parseAllDocuments(fs.readFileSync(f, "utf8")).map((d) => d.toJS()).filter(Boolean);

// Who dials whom on the bus (services/*: app_sources_add / app_bus_endpoints).
const BUS = {
  ingest: { ports: [7401, 7402], subscribers: ["zoho-sync", "call-scheduler", "stats"] },
  "zoho-sync": { ports: [7411, 7412], subscribers: ["stats"] },
  "call-scheduler": { ports: [7421, 7422], subscribers: ["dialer", "stats"] },
  dialer: { ports: [7431, 7432], subscribers: ["zoho-sync", "call-scheduler", "stats"] },
};
const HTTP_PUBLIC = { ingest: true, dialer: true, stats: true }; // routes in the Ingress

let bad = 0;
const fail = (msg) => { bad++; console.log(`FAIL ${msg}`); };
const ok = (msg) => console.log(`ok   ${msg}`);

function matches(sel, labels) {
  if (!sel) return false;
  for (const [k, v] of Object.entries(sel.matchLabels || {})) if ((labels || {})[k] !== v) return false;
  for (const e of sel.matchExpressions || []) {
    const has = labels && Object.prototype.hasOwnProperty.call(labels, e.key);
    if (e.operator === "In" && !(has && e.values.includes(labels[e.key]))) return false;
    if (e.operator === "NotIn" && has && e.values.includes(labels[e.key])) return false;
    if (e.operator === "Exists" && !has) return false;
    if (e.operator === "DoesNotExist" && has) return false;
  }
  return true;
}

function workloads(objs) {
  return objs.filter((o) => o.kind === "StatefulSet" || o.kind === "Deployment");
}
const component = (w) => w.spec.template.metadata.labels["app.kubernetes.io/component"];

function containerEnv(objs, w, podName) {
  const c = w.spec.template.spec.containers[0];
  const env = {};
  for (const src of c.envFrom || []) {
    if (!src.configMapRef) continue;
    const cm = objs.find((o) => o.kind === "ConfigMap" && o.metadata.name === src.configMapRef.name);
    if (!cm) throw new Error(`${w.metadata.name}: ConfigMap ${src.configMapRef.name} is not rendered`);
    Object.assign(env, cm.data || {});
  }
  for (const e of c.env || []) {
    if (e.value !== undefined) env[e.name] = e.value;
    else if (e.valueFrom && e.valueFrom.fieldRef && e.valueFrom.fieldRef.fieldPath === "metadata.name")
      env[e.name] = podName;
  }
  return env;
}

function check(variant, objs) {
  const ws = workloads(objs);
  const byComp = Object.fromEntries(ws.map((w) => [component(w), w]));
  const services = objs.filter((o) => o.kind === "Service");

  // ---- every reference resolves
  for (const w of ws) {
    const c = w.spec.template.spec.containers[0];
    for (const src of c.envFrom || []) {
      if (src.configMapRef && !objs.some((o) => o.kind === "ConfigMap" && o.metadata.name === src.configMapRef.name))
        fail(`${w.metadata.name}: envFrom ConfigMap ${src.configMapRef.name} is not rendered`);
    }
    const secret = (c.envFrom || []).find((s) => s.secretRef && s.secretRef.name === "leadbus-secrets");
    if (w.kind === "StatefulSet" && !secret) fail(`${w.metadata.name}: does not read the leadbus-secrets Secret`);
    if (variant === "production" && secret && secret.secretRef.optional !== undefined)
      fail(`${w.metadata.name}: the Secret reference says optional: ${secret.secretRef.optional}`);
  }
  for (const s of services) {
    if (!ws.some((w) => matches({ matchLabels: s.spec.selector }, w.spec.template.metadata.labels)))
      fail(`Service ${s.metadata.name} selects no workload`);
  }
  if (variant === "production") ok("every StatefulSet requires the leadbus-secrets Secret (no optional)");

  // ---- ingest: replicas with their own stream names, dialled one by one through a headless Service
  const ing = byComp.ingest;
  const replicas = ing.spec.replicas;
  const headless = services.find((s) => s.metadata.name === ing.spec.serviceName);
  if (!headless || headless.spec.clusterIP !== "None") fail(`leadbus-ingest's serviceName ${ing.spec.serviceName} is not a headless Service`);
  else {
    if (!matches({ matchLabels: headless.spec.selector }, ing.spec.template.metadata.labels)) fail("the headless Service does not select the ingest pods");
    const ports = headless.spec.ports.map((p) => p.port).sort();
    if (JSON.stringify(ports) !== JSON.stringify([7401, 7402])) fail(`the headless Service's ports are ${ports}`);
    ok(`headless Service ${headless.metadata.name} governs leadbus-ingest (${replicas} replicas)`);
  }
  const lb = services.find((s) => s.metadata.name === "leadbus-ingest");
  if (!lb || lb.spec.clusterIP === "None" || lb.spec.ports.some((p) => p.port !== 3000))
    fail("the leadbus-ingest Service should be a ClusterIP for HTTP only (a subscriber must never reach one replica at random)");
  const nameVar = (ing.spec.template.spec.containers[0].env || []).find((e) => e.name === "BUS_INGEST_NAME");
  if (!nameVar || !nameVar.valueFrom || !nameVar.valueFrom.fieldRef || nameVar.valueFrom.fieldRef.fieldPath !== "metadata.name")
    fail("BUS_INGEST_NAME does not come from the pod name (Downward API, metadata.name)");
  else ok("each ingest pod's stream name is its pod name (BUS_INGEST_NAME from metadata.name)");
  if (!(ing.spec.template.spec.topologySpreadConstraints || []).length) fail("ingest has no topology spread");
  // Found by DNS, not listed: `kubectl scale` changes nothing else (services/common/bus_discover.h).
  if (headless && !headless.spec.publishNotReadyAddresses)
    fail("the headless Service hides not-ready and terminating replicas from discovery (publishNotReadyAddresses)");
  const retain = ing.spec.persistentVolumeClaimRetentionPolicy || {};
  if ((retain.whenScaled || "Retain") !== "Retain") fail("a replica scaled down loses its volume (and its undelivered events)");
  const discover = headless ? `dns:${headless.metadata.name}:7401:7402` : "?";
  for (const sub of BUS.ingest.subscribers) {
    const env = containerEnv(objs, byComp[sub], `${byComp[sub].metadata.name}-0`);
    if (env.BUS_INGEST_DISCOVER !== discover) fail(`${sub}: BUS_INGEST_DISCOVER=${env.BUS_INGEST_DISCOVER}, expected ${discover}`);
    for (const v of ["BUS_INGEST_PUB", "BUS_INGEST_REPLAY", "BUS_INGEST_NAME"])
      if (v in env) fail(`${sub}: ${v} is set: a list of replicas that scaling would leave stale`);
    if (!(Number(env.BUS_DISCOVER_INTERVAL_MS) >= 1000)) fail(`${sub}: BUS_DISCOVER_INTERVAL_MS=${env.BUS_DISCOVER_INTERVAL_MS}`);
  }
  ok(`the subscribers find the ingest replicas through DNS (${discover}), however many there are`);
  const names = [...Array(replicas).keys()].map((i) => containerEnv(objs, ing, `leadbus-ingest-${i}`).BUS_INGEST_NAME);
  if (new Set(names).size !== replicas) fail(`ingest stream names are not unique: ${names}`);

  // ---- disruption budgets: ingest keeps one replica; budgets do not overlap; none blocks forever
  const pdbs = objs.filter((o) => o.kind === "PodDisruptionBudget");
  if (!pdbs.length) fail("no PodDisruptionBudget");
  for (const w of ws) {
    const mine = pdbs.filter((p) => matches(p.spec.selector, w.spec.template.metadata.labels));
    if (w.kind === "StatefulSet" && mine.length !== 1) fail(`${w.metadata.name}: under ${mine.length} PodDisruptionBudgets, expected 1`);
    for (const p of mine) {
      if (p.spec.minAvailable !== undefined && p.spec.minAvailable >= w.spec.replicas)
        fail(`${p.metadata.name}: minAvailable ${p.spec.minAvailable} with ${w.spec.replicas} replicas blocks every drain`);
    }
  }
  ok(`PodDisruptionBudgets: ${pdbs.map((p) => p.metadata.name).join(", ")}`);

  for (const w of ws) {
    const c = w.spec.template.spec.containers[0];
    const cmd = c.lifecycle && c.lifecycle.preStop && c.lifecycle.preStop.exec && c.lifecycle.preStop.exec.command;
    if (!cmd || cmd[0] !== "leadbus" || cmd[1] !== "sleep") fail(`${w.metadata.name}: no preStop pause (leadbus sleep)`);
    const pause = cmd ? Number(cmd[2]) : 0;
    if (!(pause > 0 && pause + 5 <= w.spec.template.spec.terminationGracePeriodSeconds))
      fail(`${w.metadata.name}: preStop ${pause} s leaves no time to stop within the grace period`);
  }
  ok("every container pauses before SIGTERM (preStop: leadbus sleep)");

  if (variant !== "production") return;

  // ---- production: the bus over mutual TLS, one cert-manager certificate per target
  const certs = objs.filter((o) => o.kind === "Certificate" && o.apiVersion === "cert-manager.io/v1");
  const issuers = objs.filter((o) => o.kind === "Issuer" && o.apiVersion === "cert-manager.io/v1");
  const issuer = (ref) => issuers.find((i) => i.metadata.name === ref.name && (ref.kind || "Issuer") === "Issuer");
  for (const w of ws) {
    const comp = component(w), c = w.spec.template.spec.containers[0];
    const env = containerEnv(objs, w, `${w.metadata.name}-0`);
    if (env.BUS_INSECURE !== undefined) fail(`${comp}: BUS_INSECURE=${env.BUS_INSECURE} in production`);
    for (const [k, v] of Object.entries(env))
      if (/^BUS_.*_(PUB|REPLAY)$/.test(k) && !v.startsWith("tls+tcp://")) fail(`${comp}: ${k}=${v} is not TLS`);
    const files = ["BUS_TLS_CA", "BUS_TLS_CERT", "BUS_TLS_KEY"].map((k) => env[k]);
    if (files.some((f) => !f)) { fail(`${comp}: BUS_TLS_CA/CERT/KEY not all set`); continue; }
    const mount = (c.volumeMounts || []).find((m) => files.every((f) => f.startsWith(`${m.mountPath}/`)));
    if (!mount || !mount.readOnly) { fail(`${comp}: the bus certificate files are not on a read-only mount`); continue; }
    const vol = (w.spec.template.spec.volumes || []).find((v) => v.name === mount.name);
    const secretName = vol && vol.secret && vol.secret.secretName;
    const keys = files.map((f) => f.slice(mount.mountPath.length + 1));
    if (JSON.stringify(keys) !== JSON.stringify(["ca.crt", "tls.crt", "tls.key"])) fail(`${comp}: files ${keys} are not cert-manager's ca.crt, tls.crt, tls.key`);
    const cert = certs.find((x) => x.spec.secretName === secretName);
    if (!cert) { fail(`${comp}: no cert-manager Certificate writes Secret ${secretName}`); continue; }
    // the name subscribers check this publisher's certificate for (bus_tls.h, bus_discover.h)
    const want = comp === "ingest" ? discover.split(":")[1] : BUS[comp] ? env[`BUS_${comp.toUpperCase().replace("-", "_")}_NAME`] || comp : null;
    const usages = cert.spec.usages || [];
    if (!usages.includes("client auth")) fail(`${comp}: its certificate cannot authenticate a subscriber (client auth)`);
    if (want && !(cert.spec.dnsNames || []).includes(want)) fail(`${comp}: certificate ${cert.metadata.name} lacks the name ${want} its subscribers check`);
    if (want && !usages.includes("server auth")) fail(`${comp}: its certificate cannot serve (server auth)`);
    const iss = issuer(cert.spec.issuerRef);
    if (!iss || !iss.spec.ca) { fail(`${comp}: certificate ${cert.metadata.name} is not issued by a CA Issuer`); continue; }
    const ca = certs.find((x) => x.spec.secretName === iss.spec.ca.secretName && x.spec.isCA);
    if (!ca) fail(`Issuer ${iss.metadata.name}: its CA Secret ${iss.spec.ca.secretName} is made by no CA Certificate`);
  }
  const certsPerTarget = new Set(ws.map((w) => (w.spec.template.spec.volumes || []).map((v) => v.secret && v.secret.secretName).find((n) => n && n.startsWith("leadbus-bus-"))));
  if (certsPerTarget.size !== ws.length) fail("targets share a bus certificate");
  ok("the bus is mutual TLS: every URL tls+tcp://, no BUS_INSECURE, one cert-manager Certificate per target (the name its subscribers check), mounted read-only");

  // ---- production: no sandbox, settings present, public routes, network policies, ServiceMonitor
  if (ws.some((w) => component(w) === "sandbox")) fail("production still runs the sandbox");
  const dialerEnv = containerEnv(objs, byComp.dialer, "leadbus-dialer-0");
  for (const v of ["EXOTEL_EXOPHONE", "EXOTEL_APP_ID", "EXOTEL_AGENT_NUMBER", "PUBLIC_BASE_URL", "ZOHO_EXTERNAL_ID_FIELD", "SANDBOX"])
    if (!(v in dialerEnv)) fail(`production's settings lack ${v}`);
  for (const v of ["EXOTEL_BASE_URL", "ZOHO_ACCOUNTS_URL", "ZOHO_API_DOMAIN"])
    if (v in dialerEnv) fail(`production sets ${v} (a sandbox URL?)`);
  if (dialerEnv.SANDBOX !== "off") fail("production does not say SANDBOX=off");
  ok("production's ConfigMap names every setting the dialer and zoho-sync need; SANDBOX=off");

  const ingresses = objs.filter((o) => o.kind === "Ingress");
  const routes = {};
  for (const i of ingresses) {
    const hosts = new Set((i.spec.tls || []).flatMap((t) => t.hosts));
    for (const r of i.spec.rules) {
      if (!hosts.has(r.host)) fail(`Ingress ${i.metadata.name}: ${r.host} has no TLS`);
      for (const p of r.http.paths) {
        const svc = services.find((s) => s.metadata.name === p.backend.service.name);
        if (!svc || !svc.spec.ports.some((x) => x.name === p.backend.service.port.name)) fail(`Ingress ${i.metadata.name}: backend ${p.backend.service.name}:${p.backend.service.port.name} does not exist`);
        routes[p.path] = p.backend.service.name;
      }
    }
    if (!i.metadata.annotations || !i.metadata.annotations["nginx.ingress.kubernetes.io/force-ssl-redirect"]) fail(`Ingress ${i.metadata.name}: no ssl redirect`);
  }
  for (const [path, svc] of [["/leads", "leadbus-ingest"], ["/exotel/callback", "leadbus-dialer"], ["/", "leadbus-stats"]])
    if (routes[path] !== svc) fail(`Ingress: ${path} goes to ${routes[path]}, expected ${svc}`);
  ok("Ingress: POST /leads to ingest, /exotel/callback to the dialer, the dashboard to stats, all over TLS");

  const nps = objs.filter((o) => o.kind === "NetworkPolicy");
  const podLabels = (c) => byComp[c].spec.template.metadata.labels;
  for (const w of ws) {
    const comp = component(w);
    const mine = nps.filter((n) => matches(n.spec.podSelector, w.spec.template.metadata.labels));
    if (!mine.length) { fail(`${w.metadata.name}: no NetworkPolicy selects it`); continue; }
    // who may reach each port: the union of the rules that name it
    const allowed = {};
    for (const n of mine) for (const r of n.spec.ingress || []) {
      if (!r.ports || !r.from) fail(`${n.metadata.name}: a rule open to every port or every peer`);
      for (const p of r.ports || []) for (const f of r.from || []) (allowed[p.port] = allowed[p.port] || []).push(f);
    }
    const fromComps = (port) => Object.keys(byComp).filter((c) => (allowed[port] || []).some((f) => !f.namespaceSelector && f.podSelector && matches(f.podSelector, podLabels(c))));
    const bus = BUS[comp];
    for (const port of bus ? bus.ports : []) {
      const got = fromComps(port).sort().join(","), want = [...bus.subscribers].sort().join(",");
      if (got !== want) fail(`${comp}: port ${port} open to [${got}], expected its subscribers [${want}]`);
      if ((allowed[port] || []).some((f) => f.namespaceSelector || f.ipBlock)) fail(`${comp}: bus port ${port} open beyond the namespace`);
    }
    const http = allowed[3000] || [];
    if (fromComps(3000).length) fail(`${comp}: HTTP open to other leadbus pods`);
    const nsOf = (f) => f.namespaceSelector && f.namespaceSelector.matchLabels && f.namespaceSelector.matchLabels["kubernetes.io/metadata.name"];
    const nss = http.map(nsOf).sort().join(",");
    const want = HTTP_PUBLIC[comp] ? "ingress-nginx,monitoring" : "monitoring";
    if (nss !== want) fail(`${comp}: HTTP open to namespaces [${nss}], expected [${want}]`);
    for (const port of Object.keys(allowed).map(Number))
      if (port !== 3000 && !(bus && bus.ports.includes(port))) fail(`${comp}: port ${port} opened`);
  }
  ok("NetworkPolicies: bus ports only from each publisher's subscribers, HTTP only from the ingress controller and Prometheus");

  const sm = objs.find((o) => o.kind === "ServiceMonitor");
  if (!sm) fail("no ServiceMonitor");
  else {
    const scraped = services.filter((s) => matches(sm.spec.selector, s.metadata.labels)).map((s) => s.metadata.name).sort();
    const want = services.filter((s) => s.spec.ports.some((p) => p.name === "http")).map((s) => s.metadata.name).sort();
    if (scraped.join() !== want.join()) fail(`ServiceMonitor scrapes [${scraped}], expected [${want}]`);
    else ok(`ServiceMonitor scrapes ${scraped.length} Services' /metrics`);
  }
}

if (mode === "check") {
  check(a1, load(a2));
  console.log(bad ? `${bad} problems` : `${a1}: every promise holds`);
  process.exit(bad ? 1 : 0);
} else if (mode === "env") {
  const objs = load(a1);
  const w = workloads(objs).find((x) => x.metadata.name === a2);
  if (!w) { console.error(`no workload ${a2}`); process.exit(2); }
  for (const [k, v] of Object.entries(containerEnv(objs, w, a3))) console.log(`${k}=${v}`);
} else if (mode === "pods") {
  // What a kubelet would run (k8s_run.sh): one line per pod and per Service, env files in a2.
  //   pod <name> <component> <http port> <readiness path> <liveness path> <args...>
  //   svc <name> <component>
  //   prestop <pod> <command...>
  const objs = load(a1);
  for (const w of workloads(objs)) {
    const c = w.spec.template.spec.containers[0];
    const httpPort = (c.ports || []).find((p) => p.name === "http").containerPort;
    for (let i = 0; i < (w.spec.replicas || 1); i++) {
      const pod = `${w.metadata.name}-${i}`;
      const env = containerEnv(objs, w, pod);
      fs.writeFileSync(`${a2}/${pod}.env`, Object.entries(env).map(([k, v]) => `${k}=${v}\n`).join(""));
      console.log(["pod", pod, component(w), httpPort, c.readinessProbe.httpGet.path, c.livenessProbe.httpGet.path, ...(c.args || [])].join(" "));
      const pre = c.lifecycle && c.lifecycle.preStop && c.lifecycle.preStop.exec;
      if (pre) console.log(["prestop", pod, ...pre.command].join(" "));
    }
  }
  for (const s of objs.filter((o) => o.kind === "Service")) {
    const w = workloads(objs).find((x) => matches({ matchLabels: s.spec.selector }, x.spec.template.metadata.labels));
    if (w) console.log(`svc ${s.metadata.name} ${component(w)}`);
  }
} else {
  console.error("usage: k8s_assert.js check base|production FILE | env FILE WORKLOAD POD | pods FILE DIR");
  process.exit(2);
}
