/**
 * The import graph of src/ points down only (README, "Architecture"): each folder imports only the folders below
 * it. Read from the sources themselves, so a new arrow that points up fails here, not in review.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { describe, it } from "node:test";
import { ROOT } from "../support/vectors.js";

const SRC = join(ROOT, "src");

/** What each layer may import; cli wires everything and may import anything. */
const ALLOWED: Record<string, readonly string[]> = {
  "scim/model": [],
  observability: [],
  store: ["scim/model", "observability"],
  scim: ["scim/model", "store"],
  "scim/http": ["scim", "scim/model", "store", "observability", "config"],
  cluster: ["config", "observability"],
  agent: ["cluster", "observability"],
  config: ["scim/model", "store"],
  "okta-sim": ["observability"],
  kubernetes: [],
};

function layerOf(file: string): string {
  const [top, sub] = relative(SRC, file).split("/");
  return top === "scim" && (sub === "model" || sub === "http") ? `scim/${sub}` : top!;
}

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith(".ts") ? [join(dir, e.name)] : [],
  );
}

/** Every relative import and re-export in `text` (the source of `file`), `import type` included, resolved. */
function importsOf(file: string, text: string): string[] {
  return [...text.matchAll(/^\s*(?:import|export)\b[^;]*?\bfrom\s+["'](\.{1,2}\/[^"']+)["']/gm)].map((m) =>
    resolve(dirname(file), m[1]!.replace(/\.js$/, ".ts")),
  );
}

function upwardImports(files: { file: string; text: string }[]): string[] {
  const out: string[] = [];
  for (const { file, text } of files) {
    const from = layerOf(file);
    if (from === "cli") continue;
    for (const target of importsOf(file, text)) {
      const to = layerOf(target);
      if (to !== from && !(ALLOWED[from] ?? []).includes(to))
        out.push(`${relative(ROOT, file)} (${from}) imports ${relative(ROOT, target)} (${to})`);
    }
  }
  return out;
}

describe("the import graph", () => {
  const files = sources(SRC).map((file) => ({ file, text: readFileSync(file, "utf8") }));

  it("knows every folder of src/", () => {
    const unknown = [...new Set(files.map((f) => layerOf(f.file)))].filter(
      (l) => l !== "cli" && !(l in ALLOWED),
    );
    assert.deepEqual(unknown, [], "a new folder needs its place in ALLOWED");
  });

  it("points down only", () => {
    assert.deepEqual(upwardImports(files), []);
  });

  it("refuses an arrow that points up: the store importing the HTTP layer, or the model a service", () => {
    const found = upwardImports([
      { file: join(SRC, "store", "x.ts"), text: 'import { toScimError } from "../scim/http/errors.js";' },
      { file: join(SRC, "scim", "model", "x.ts"), text: 'import type { UserService } from "../users.js";' },
    ]);
    assert.equal(found.length, 2, found.join("\n"));
  });
});
