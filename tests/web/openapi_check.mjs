// Validates docs/openapi.json with a maintained OpenAPI 3.1 validator and compares its
// operations with the routes a running leadbus registered (one "METHOD PATTERN" per line on stdin).
import { Validator } from "@seriousme/openapi-schema-validator";
import { readFileSync } from "node:fs";

const [docPath] = process.argv.slice(2);
const doc = JSON.parse(readFileSync(docPath, "utf8"));
const validator = new Validator();
const res = await validator.validate(doc);
if (!res.valid) {
  console.log("FAIL: docs/openapi.json is not valid OpenAPI " + validator.version + ": " + JSON.stringify(res.errors).slice(0, 2000));
  process.exit(1);
}
console.log("valid OpenAPI " + validator.version);
const documented = new Set();
for (const [path, item] of Object.entries(doc.paths)) {
  for (const m of ["get", "post", "put", "delete", "patch"]) {
    if (item[m]) documented.add(m.toUpperCase() + " " + path);
  }
}
const registered = new Set(readFileSync(0, "utf8").split("\n").filter(Boolean));
const missing = [...registered].filter((r) => !documented.has(r));
const extra = [...documented].filter((r) => !registered.has(r));
console.log("registered " + registered.size + ", documented " + documented.size);
if (missing.length || extra.length) {
  console.log("FAIL: undocumented routes: " + JSON.stringify(missing) + "; documented but not served: " + JSON.stringify(extra));
  process.exit(1);
}
// every operation names its errors in the shared shape and every 4xx/5xx is an Error
for (const [path, item] of Object.entries(doc.paths)) {
  for (const [m, op] of Object.entries(item)) {
    for (const [code, r] of Object.entries(op.responses || {})) {
      const schema = r.content && r.content["application/json"] && r.content["application/json"].schema;
      if (code >= "400" && path !== "/readyz" && !(schema && schema.$ref === "#/components/schemas/Error")) {
        console.log("FAIL: " + m.toUpperCase() + " " + path + " " + code + " is not the Error shape");
        process.exit(1);
      }
    }
  }
}
console.log("every route documented, every error in the Error shape");
