/** `npm run grafana:build`: writes every dashboard's JSON; test/unit/dashboards.test.ts fails until it is run. */
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, relative } from "node:path";
import { DASHBOARDS, ROOT } from "./dashboards.js";

for (const d of DASHBOARDS) {
  const json = d.render();
  for (const file of d.files) {
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, json);
    console.log(`wrote ${relative(ROOT, file)}`);
  }
}
