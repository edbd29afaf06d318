/** PROVISIOND_CUSTOM_SCHEMA(_FILE): an extension schema whose attributes get their own user-table columns. */
import { readFileSync } from "node:fs";
import type { CustomSchemaConfig } from "../scim/model/schema.js";
import { BUILT_IN_USER_COLUMNS } from "../store/migrations.js";
import { ConfigError, type Reader } from "./reader.js";

const URN_RE = /^urn:[a-z0-9][a-z0-9-]{0,31}:[a-z0-9()+,\-.:=@;$_!*'%/?#]+$/i;
const COLUMN_RE = /^[a-z_][a-z0-9_]{0,63}$/;

export function customSchema(r: Reader): CustomSchemaConfig | undefined {
  const file = r.raw("PROVISIOND_CUSTOM_SCHEMA_FILE");
  const inline = r.raw("PROVISIOND_CUSTOM_SCHEMA");
  const name = file ? "PROVISIOND_CUSTOM_SCHEMA_FILE" : "PROVISIOND_CUSTOM_SCHEMA";
  if (!file && !inline) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(file ? readFileSync(file, "utf8") : inline!);
  } catch (err) {
    throw new ConfigError(name, `is not readable JSON (${(err as Error).message})`);
  }
  const cfg = parsed as Partial<CustomSchemaConfig>;
  const urn = cfg.urn ?? "urn:ietf:params:scim:schemas:extension:provisiond:2.0:User";
  if (!URN_RE.test(urn)) throw new ConfigError(name, `"${urn}" is not a URN`);
  if (!Array.isArray(cfg.attributes) || cfg.attributes.length === 0) {
    throw new ConfigError(name, `needs a non-empty "attributes" array`);
  }
  const seen = new Set<string>();
  for (const a of cfg.attributes) {
    if (!a || typeof a.name !== "string" || !/^[A-Za-z][A-Za-z0-9_-]*$/.test(a.name)) {
      throw new ConfigError(name, `attribute ${JSON.stringify(a?.name)} needs a name like "costCenter"`);
    }
    if (!["string", "boolean", "integer", "decimal", "dateTime"].includes(a.type)) {
      throw new ConfigError(
        name,
        `attribute "${a.name}": type must be string, boolean, integer, decimal or dateTime`,
      );
    }
    if (typeof a.column !== "string" || !COLUMN_RE.test(a.column) || BUILT_IN_USER_COLUMNS.has(a.column)) {
      throw new ConfigError(
        name,
        `attribute "${a.name}": "column" must be a new lower-case SQL identifier (e.g. "cost_center")`,
      );
    }
    if (seen.has(a.name.toLowerCase()) || seen.has(`col:${a.column}`)) {
      throw new ConfigError(name, `attribute "${a.name}" or its column is defined twice`);
    }
    seen.add(a.name.toLowerCase());
    seen.add(`col:${a.column}`);
  }
  if (cfg.attributes.every((a) => a.multiValued)) {
    throw new ConfigError(
      name,
      "every attribute is multi-valued; Okta rejects a custom schema with only array attributes, so add at least one single-valued attribute",
    );
  }
  return { urn, ...(cfg.name ? { name: cfg.name } : {}), attributes: cfg.attributes };
}
