/** Reads the shared SCIM test vectors (../shared/scim-vectors beside the project root). */
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const SHARED = resolve(ROOT, "../shared");

export function vectors<T = Record<string, unknown>>(name: string): T {
  return JSON.parse(readFileSync(resolve(SHARED, "scim-vectors", name), "utf8")) as T;
}
