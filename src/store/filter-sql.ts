/**
 * Compiles a SCIM filter AST to a SQL WHERE expression with bound parameters. Users are answered by their
 * columns (id, userName, externalId, meta) or by the scim_user_attrs index; groups by their columns and the
 * membership table. The in-memory evaluator (src/scim/filter-eval.ts) defines the semantics; property tests
 * hold the two equal.
 */
import {
  type BoundPath,
  bindAttrPath,
  type Comparison,
  checkComparison,
} from "../scim/model/attribute-path.js";
import {
  type CompareOp,
  type Filter,
  isLogic,
  type LeafFilter,
  type LogicFilter,
} from "../scim/model/filter.js";
import type { AttrDef, ResourceSchema } from "../scim/model/schema.js";
import { attrKey } from "./attr-index.js";
import { UnsupportedQuery } from "./errors.js";

export interface Sql {
  sql: string;
  params: unknown[];
}

const SQL_OP: Record<string, string> = { eq: "=", gt: ">", ge: ">=", lt: "<", le: "<=" };

function likePattern(op: CompareOp, v: string): string {
  const esc = v.replace(/[!%_]/g, "!$&");
  return op === "co" ? `%${esc}%` : op === "sw" ? `${esc}%` : op === "ew" ? `%${esc}` : esc;
}

/**
 * `=` on MySQL's PAD SPACE collations ignores trailing spaces ("bob" = "bob   "); LIKE does not, and neither
 * does SQLite. A string `eq` therefore also says LIKE with no wildcards, so both stores find the same rows; the
 * `=` keeps the index.
 */
function exactly(expr: string, v: string): Sql {
  return { sql: `${expr} LIKE ? ESCAPE '!'`, params: [likePattern("eq", v)] };
}

/** One column compared the way the attribute's type demands. `folded` columns hold lowercased text. */
interface ColumnSpec {
  expr: string;
  folded: boolean;
  nullable: boolean;
}

function compareColumn(col: ColumnSpec, cmp: Comparison, caseExactExpr?: string): Sql {
  const { op, value } = cmp;
  if (value === null) {
    const present = col.nullable ? `${col.expr} IS NOT NULL` : "1=1";
    return { sql: op === "eq" ? `NOT (${present})` : present, params: [] };
  }
  if (op === "ne") {
    const eq = compareColumn(col, { ...cmp, op: "eq" }, caseExactExpr);
    return {
      sql: col.nullable ? `(${col.expr} IS NULL OR NOT (${eq.sql}))` : `NOT (${eq.sql})`,
      params: eq.params,
    };
  }
  if (typeof value === "boolean" || typeof value === "number") {
    return {
      sql: `${col.expr} ${SQL_OP[op]} ?`,
      params: [typeof value === "boolean" ? (value ? 1 : 0) : value],
    };
  }
  if (caseExactExpr && op !== "eq" && op !== "co" && op !== "sw" && op !== "ew") {
    // Order is not preserved by case folding ("a" > "B" but "a" < "b"), so ordering uses the exact column alone.
    return { sql: `${caseExactExpr} ${SQL_OP[op]} ?`, params: [value] };
  }
  const v = col.folded ? value.toLowerCase() : value;
  const parts: Sql[] = [];
  if (op === "co" || op === "sw" || op === "ew")
    parts.push({ sql: `${col.expr} LIKE ? ESCAPE '!'`, params: [likePattern(op, v)] });
  else parts.push({ sql: `${col.expr} ${SQL_OP[op]} ?`, params: [v] });
  // Both ways: a stored "abc " must not match eq "abc" on MySQL either (userName alone is refused with one).
  if (op === "eq") parts.push(exactly(col.expr, v));
  if (caseExactExpr) {
    // The folded column finds candidates through its index; the exact one keeps the case-sensitive meaning.
    if (op === "co" || op === "sw" || op === "ew") {
      parts.push({ sql: `${caseExactExpr} LIKE ? ESCAPE '!'`, params: [likePattern(op, value)] });
    } else parts.push({ sql: `${caseExactExpr} ${SQL_OP[op]} ?`, params: [value] });
  }
  const out = join(parts, "AND");
  // SQL's NULL would make NOT(col = ?) unknown for an absent value; SCIM says an absent value simply does not match.
  return col.nullable ? { sql: `(${col.expr} IS NOT NULL AND ${out.sql})`, params: out.params } : out;
}

function join(parts: Sql[], op: "AND" | "OR"): Sql {
  if (parts.length === 1) return parts[0]!;
  return { sql: parts.map((p) => `(${p.sql})`).join(` ${op} `), params: parts.flatMap((p) => p.params) };
}

function compileLogic(f: LogicFilter, leaf: (f: Filter) => Sql): Sql {
  if (f.op === "not") {
    const inner = leaf(f.filter);
    return { sql: `NOT (${inner.sql})`, params: inner.params };
  }
  return join([leaf(f.filters[0]), leaf(f.filters[1])], f.op === "and" ? "AND" : "OR");
}

/** The comparison a leaf (non-logical) filter makes, validated against the schema. */
function comparisonOf(f: LeafFilter, bound: BoundPath): Comparison | "pr" {
  if (f.op === "pr") return "pr";
  if (f.op === "valuePath") throw new UnsupportedQuery("filter", "invalid filter: value filters cannot nest");
  return checkComparison(bound, f.op, f.value);
}

/** How the value columns of an attribute-index row answer a comparison on `leaf`. */
function indexComparison(alias: string, leaf: AttrDef, cmp: Comparison): Sql {
  const numeric = leaf.type === "boolean" || leaf.type === "integer" || leaf.type === "decimal";
  if (numeric) return compareColumn({ expr: `${alias}.v_num`, folded: false, nullable: false }, cmp);
  const exact = leaf.caseExact && leaf.type !== "dateTime";
  return compareColumn(
    { expr: `${alias}.v_ci`, folded: true, nullable: false },
    cmp,
    exact ? `${alias}.v_str` : undefined,
  );
}

const USER_COLUMNS: Record<string, ColumnSpec & { exact?: boolean }> = {
  id: { expr: "u.id", folded: false, nullable: false },
  userName: { expr: "u.user_name_ci", folded: true, nullable: false },
  externalId: { expr: "u.external_id", folded: false, nullable: true },
  "meta.created": { expr: "u.created", folded: false, nullable: false },
  "meta.lastModified": { expr: "u.last_modified", folded: false, nullable: false },
};

export const USER_COLUMN_ATTRS: ReadonlySet<string> = new Set([
  "id",
  "userName",
  "externalId",
  "meta",
  "groups",
  "password",
]);

function columnKey(bound: BoundPath): string | undefined {
  if (bound.inExtension) return undefined;
  return bound.sub ? `${bound.attr.name}.${bound.sub.name}` : bound.attr.name;
}

function unfilterable(bound: BoundPath): never {
  const name = bound.sub ? `${bound.attr.name}.${bound.sub.name}` : bound.attr.name;
  throw new UnsupportedQuery("filter", `invalid filter: '${name}' cannot be filtered on`);
}

export function compileUserFilter(rs: ResourceSchema, filter: Filter): Sql {
  const leaf = (f: Filter): Sql => {
    if (isLogic(f)) return compileLogic(f, leaf);
    if (f.op === "valuePath") return userValuePath(rs, f.attrPath, f.filter);
    const bound = bindAttrPath(rs, f.attrPath, "invalidFilter");
    const cmp = comparisonOf(f, bound);
    const key = columnKey(bound);
    if (key && USER_COLUMN_ATTRS.has(bound.attr.name)) {
      if (bound.attr.name === "groups") return userGroupsFilter(bound, cmp);
      const col = USER_COLUMNS[key];
      if (!col) return unfilterable(bound);
      if (cmp === "pr") return { sql: col.nullable ? `${col.expr} IS NOT NULL` : "1=1", params: [] };
      return compareColumn(col, cmp);
    }
    const attr = attrKey(bound.urn, bound.inExtension, bound.attr);
    const sub =
      bound.sub?.name ?? (bound.attr.type === "complex" ? (bound.attr.multiValued ? "value" : null) : "");
    const where: Sql[] = [{ sql: "r.attr = ?", params: [attr] }];
    if (sub !== null) where.push({ sql: "r.sub = ?", params: [sub] });
    const rowsExist = (extra?: Sql): Sql => {
      const w = join(extra ? [...where, extra] : where, "AND");
      return { sql: `u.seq IN (SELECT r.owner FROM scim_user_attrs r WHERE ${w.sql})`, params: w.params };
    };
    if (cmp === "pr") {
      if (bound.attr.type !== "complex" || bound.sub) return rowsExist();
      const w = { sql: "r.attr = ?", params: [attr] };
      return { sql: `u.seq IN (SELECT r.owner FROM scim_user_attrs r WHERE ${w.sql})`, params: w.params };
    }
    if (cmp.value === null) {
      const p = rowsExist();
      return cmp.op === "eq" ? { sql: `NOT (${p.sql})`, params: p.params } : p;
    }
    if (cmp.op === "ne") {
      const eq = rowsExist(indexComparison("r", cmp.leaf, { ...cmp, op: "eq" }));
      return { sql: `NOT (${eq.sql})`, params: eq.params };
    }
    return rowsExist(indexComparison("r", cmp.leaf, cmp));
  };
  return leaf(filter);
}

/** `emails[type eq "work" and value co "@x"]`: every condition must hold on the same value (same pos). */
function userValuePath(rs: ResourceSchema, attrPath: string, inner: Filter): Sql {
  const bound = bindAttrPath(rs, attrPath, "invalidFilter");
  if (!bound.inExtension && USER_COLUMN_ATTRS.has(bound.attr.name)) {
    if (bound.attr.name === "groups") return userGroupsValuePath(rs, bound, inner);
    return unfilterable(bound);
  }
  const attr = attrKey(bound.urn, bound.inExtension, bound.attr);
  const cond = (f: Filter): Sql => {
    if (isLogic(f)) return compileLogic(f, cond);
    if (f.op === "valuePath")
      throw new UnsupportedQuery("filter", "invalid filter: value filters cannot nest");
    const sb = bindAttrPath(rs, f.attrPath, "invalidFilter", bound);
    const sub = bound.attr.type === "complex" ? sb.sub!.name : "";
    const cmp = comparisonOf(f, sb);
    const exists = (extra?: Sql): Sql => {
      const w = join(
        [
          { sql: "s.owner = e.owner AND s.attr = e.attr AND s.pos = e.pos AND s.sub = ?", params: [sub] },
          ...(extra ? [extra] : []),
        ],
        "AND",
      );
      return { sql: `EXISTS (SELECT 1 FROM scim_user_attrs s WHERE ${w.sql})`, params: w.params };
    };
    if (cmp === "pr") return exists();
    if (cmp.value === null) {
      const p = exists();
      return cmp.op === "eq" ? { sql: `NOT (${p.sql})`, params: p.params } : p;
    }
    if (cmp.op === "ne") {
      const eq = exists(indexComparison("s", cmp.leaf, { ...cmp, op: "eq" }));
      return { sql: `NOT (${eq.sql})`, params: eq.params };
    }
    return exists(indexComparison("s", cmp.leaf, cmp));
  };
  const c = cond(inner);
  return {
    sql: `u.seq IN (SELECT e.owner FROM scim_user_attrs e WHERE e.attr = ? AND (${c.sql}))`,
    params: [attr, ...c.params],
  };
}

const MEMBER_COLUMNS: Record<string, ColumnSpec> = {
  value: { expr: "m.member_id", folded: false, nullable: false },
  display: { expr: "LOWER(m.display)", folded: true, nullable: true },
  type: { expr: "m.member_type", folded: false, nullable: false },
};

/** A condition on one row of scim_group_members (alias m). */
function memberCondition(rs: ResourceSchema, bound: BoundPath, f: Filter): Sql {
  if (isLogic(f)) return compileLogic(f, (x) => memberCondition(rs, bound, x));
  if (f.op === "valuePath") throw new UnsupportedQuery("filter", "invalid filter: value filters cannot nest");
  const sb = bindAttrPath(rs, f.attrPath, "invalidFilter", bound);
  const col = MEMBER_COLUMNS[sb.sub?.name ?? "value"];
  if (!col) return unfilterable(sb);
  const cmp = comparisonOf(f, sb);
  if (cmp === "pr") return { sql: col.nullable ? `${col.expr} IS NOT NULL` : "1=1", params: [] };
  return compareColumn(col, cmp);
}

function memberRowsFilter(
  rs: ResourceSchema,
  bound: BoundPath,
  f: Filter,
  ownerExpr: string,
  ownerCol: string,
): Sql {
  const c = memberCondition(rs, bound, f);
  return {
    sql: `${ownerExpr} IN (SELECT ${ownerCol} FROM scim_group_members m WHERE ${c.sql})`,
    params: c.params,
  };
}

/** A top-level `members.value eq "x"`: some member row satisfies it (`ne`: none is equal). */
function membersLeaf(
  rs: ResourceSchema,
  bound: BoundPath,
  f: LeafFilter,
  ownerExpr: string,
  ownerCol: string,
): Sql {
  const sub = bound.sub?.name ?? "value";
  const rows = (x: Filter) => memberRowsFilter(rs, bound, x, ownerExpr, ownerCol);
  const negate = (x: Sql): Sql => ({ sql: `NOT (${x.sql})`, params: x.params });
  if (f.op === "pr") return rows({ op: "pr", attrPath: sub });
  if (f.op === "valuePath") return unfilterable(bound);
  if (f.value === null) {
    const p = rows({ op: "pr", attrPath: sub });
    return f.op === "eq" ? negate(p) : p;
  }
  if (f.op === "ne") return negate(rows({ ...f, op: "eq", attrPath: sub }));
  return rows({ ...f, attrPath: sub });
}

function userGroupsFilter(bound: BoundPath, cmp: Comparison | "pr"): Sql {
  const sub = bound.sub?.name ?? "value";
  if (sub !== "value") return unfilterable(bound);
  const present = { sql: "u.id IN (SELECT m.member_id FROM scim_group_members m)", params: [] as unknown[] };
  if (cmp === "pr") return present;
  const eq = {
    sql: "u.id IN (SELECT m.member_id FROM scim_group_members m JOIN scim_groups g ON g.seq = m.group_seq WHERE g.id = ?)",
    params: [cmp.value],
  };
  if (cmp.value === null) return cmp.op === "eq" ? { sql: `NOT (${present.sql})`, params: [] } : present;
  if (cmp.op === "eq") return eq;
  if (cmp.op === "ne") return { sql: `NOT (${eq.sql})`, params: eq.params };
  return unfilterable(bound);
}

function userGroupsValuePath(rs: ResourceSchema, bound: BoundPath, inner: Filter): Sql {
  if (inner.op !== "eq" || inner.attrPath.toLowerCase() !== "value") return unfilterable(bound);
  return userGroupsFilter(
    bindAttrPath(rs, "value", "invalidFilter", bound),
    checkComparison(bound, "eq", inner.value),
  );
}

const GROUP_COLUMNS: Record<string, ColumnSpec> = {
  id: { expr: "g.id", folded: false, nullable: false },
  displayName: { expr: "g.display_name_ci", folded: true, nullable: false },
  externalId: { expr: "g.external_id", folded: false, nullable: true },
  "meta.created": { expr: "g.created", folded: false, nullable: false },
  "meta.lastModified": { expr: "g.last_modified", folded: false, nullable: false },
};

export function compileGroupFilter(rs: ResourceSchema, filter: Filter): Sql {
  const leaf = (f: Filter): Sql => {
    if (isLogic(f)) return compileLogic(f, leaf);
    if (f.op === "valuePath") {
      const bound = bindAttrPath(rs, f.attrPath, "invalidFilter");
      if (bound.attr.name !== "members" || bound.inExtension) return unfilterable(bound);
      return memberRowsFilter(rs, bound, f.filter, "g.seq", "m.group_seq");
    }
    const bound = bindAttrPath(rs, f.attrPath, "invalidFilter");
    if (bound.attr.name === "members" && !bound.inExtension) {
      return membersLeaf(rs, bound, f, "g.seq", "m.group_seq");
    }
    const key = columnKey(bound);
    const col = key ? GROUP_COLUMNS[key] : undefined;
    if (!col) return unfilterable(bound);
    const cmp = comparisonOf(f, bound);
    if (cmp === "pr") return { sql: col.nullable ? `${col.expr} IS NOT NULL` : "1=1", params: [] };
    return compareColumn(col, cmp);
  };
  return leaf(filter);
}

/** ORDER BY for sortBy (RFC 7644 §3.4.2.3); unassigned values sort last, then insertion order keeps it stable. */
export function userSortExpr(rs: ResourceSchema, sortBy: string): Sql {
  const bound = bindAttrPath(rs, sortBy, "invalidValue");
  const key = columnKey(bound);
  if (key && USER_COLUMNS[key]) return { sql: USER_COLUMNS[key]!.expr, params: [] };
  if (!bound.inExtension && USER_COLUMN_ATTRS.has(bound.attr.name))
    throw new UnsupportedQuery("sortBy", `cannot sort by '${sortBy}'`);
  const leafDef = bound.sub ?? (bound.attr.type === "complex" ? undefined : bound.attr);
  const sub = bound.sub?.name ?? (bound.attr.type === "complex" ? "value" : "");
  const numeric =
    leafDef && (leafDef.type === "boolean" || leafDef.type === "integer" || leafDef.type === "decimal");
  return {
    sql: `(SELECT MIN(r.${numeric ? "v_num" : "v_ci"}) FROM scim_user_attrs r WHERE r.owner = u.seq AND r.attr = ? AND r.sub = ?)`,
    params: [attrKey(bound.urn, bound.inExtension, bound.attr), sub],
  };
}

export function groupSortExpr(rs: ResourceSchema, sortBy: string): Sql {
  const bound = bindAttrPath(rs, sortBy, "invalidValue");
  const key = columnKey(bound);
  const col = key ? GROUP_COLUMNS[key] : undefined;
  if (!col) throw new UnsupportedQuery("sortBy", `cannot sort by '${sortBy}'`);
  return { sql: col.expr, params: [] };
}
