/** Stored records → SCIM JSON, with `meta` and the schema list the resource actually uses. */
import type { Resource } from "./model/attribute-path.js";
import type { ResourceSchema } from "./model/schema.js";

export interface Stored {
  id: string;
  created: string;
  lastModified: string;
  version: number;
  doc: Resource;
}

export function etagOf(version: number): string {
  return `W/"${version}"`;
}

export function render(rs: ResourceSchema, rec: Stored, baseUrl: string, extra: Resource = {}): Resource {
  const schemas = [rs.core.id, ...rs.extensions.map((e) => e.id).filter((u) => rec.doc[u] !== undefined)];
  return {
    schemas,
    id: rec.id,
    ...rec.doc,
    ...extra,
    meta: {
      resourceType: rs.name,
      created: rec.created,
      lastModified: rec.lastModified,
      location: `${baseUrl}${rs.endpoint}/${rec.id}`,
      version: etagOf(rec.version),
    },
  };
}

/** `If-Match` (RFC 7644 §3.14): `*` or a list of entity tags, weak or strong, compared weakly. */
export function ifMatchHolds(header: string | undefined, version: number): boolean {
  if (header === undefined) return true;
  const tags = header.split(",").map((t) => t.trim());
  if (tags.includes("*")) return true;
  const mine = String(version);
  return tags.some((t) => t.replace(/^W\//, "").replace(/^"|"$/g, "") === mine);
}

export function ifNoneMatchHolds(header: string | undefined, version: number): boolean {
  if (header === undefined) return true;
  return !ifMatchHolds(header, version);
}
