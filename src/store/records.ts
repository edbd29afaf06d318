/** What a stored user or group row reads back as: both tables share these columns. */
import type { Resource } from "../scim/model/attribute-path.js";
import type { Queryable } from "./db.js";
import type { Sql } from "./filter-sql.js";

export interface ResourceRecord {
  seq: number;
  id: string;
  created: string;
  lastModified: string;
  version: number;
  doc: Resource;
}

/** One page of a filtered, sorted list: `order` undefined sorts by creation. */
export interface PageQuery {
  where: Sql;
  order: Sql | undefined;
  descending: boolean;
  offset: number;
  limit: number;
}

export interface ResourceRow {
  seq: number;
  id: string;
  created: string;
  last_modified: string;
  version: number;
  doc: string;
}

/** The SELECT of a record's columns from `table`, under the alias `as` (u for users, g for groups). */
export function selectRecords(table: "scim_users" | "scim_groups", as: "u" | "g"): string {
  return `SELECT ${as}.seq, ${as}.id, ${as}.created, ${as}.last_modified, ${as}.version, ${as}.doc FROM ${table} ${as}`;
}

export function toRecord(r: ResourceRow): ResourceRecord {
  return {
    seq: Number(r.seq),
    id: r.id,
    created: r.created,
    lastModified: r.last_modified,
    version: Number(r.version),
    doc: JSON.parse(r.doc) as Resource,
  };
}

/** How many rows of `table` (alias `as`) a compiled filter selects. */
export async function countRecords(
  q: Queryable,
  table: "scim_users" | "scim_groups",
  as: "u" | "g",
  where: Sql,
) {
  const rows = await q.all<{ n: number }>(
    `SELECT COUNT(*) AS n FROM ${table} ${as} WHERE ${where.sql}`,
    where.params,
  );
  return Number(rows[0]?.n ?? 0);
}
