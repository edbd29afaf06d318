/** Query parameters of list and search requests (RFC 7644 §3.4.2, §3.4.3), from a URL or a SearchRequest body. */
import type { Sql } from "../store/filter-sql.js";
import { badRequest } from "./model/errors.js";
import { type Filter, parseFilter } from "./model/filter.js";
import type { ResourceSchema } from "./model/schema.js";
import { Projection } from "./projection.js";
import { isObject } from "./resource.js";

export const LIST_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
export const SEARCH_REQUEST = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";

/** The ListResponse envelope (RFC 7644 §3.4.2): itemsPerPage is always the number of Resources sent. */
export function listResponse<T>(totalResults: number, startIndex: number, Resources: T[]) {
  return { schemas: [LIST_RESPONSE], totalResults, itemsPerPage: Resources.length, startIndex, Resources };
}

export interface ListParams {
  filter?: Filter;
  startIndex: number;
  count: number;
  sortBy?: string;
  descending: boolean;
  attributes?: string[];
  excludedAttributes?: string[];
  /** A page holds as many resources as fit in this many bytes of JSON (at least one); see fitPage. */
  maxPageBytes?: number;
  /** See checkQueryCost. */
  maxFilterTerms?: number;
}

export interface ListLimits {
  maxResults: number;
  maxFilterLength: number;
  maxPageBytes?: number;
  maxFilterTerms?: number;
}

/**
 * What every list starts with: the projection, the compiled filter (all rows without one) and sort, within the
 * cost cap. `compile` and `sortBy` are the store's compilers for the resource type.
 */
export function planList(
  rs: ResourceSchema,
  params: ListParams,
  compile: (rs: ResourceSchema, f: Filter) => Sql,
  sortBy: (rs: ResourceSchema, attr: string) => Sql,
): { projection: Projection; where: Sql; order: Sql | undefined } {
  const projection = Projection.parse(rs, params.attributes, params.excludedAttributes);
  const where = params.filter ? compile(rs, params.filter) : { sql: "1=1", params: [] };
  const order = params.sortBy ? sortBy(rs, params.sortBy) : undefined;
  checkQueryCost([where, order], params.maxFilterTerms);
  return { projection, where, order };
}

/**
 * Refuses a query whose filter and sort would run more than `max` subqueries per candidate row: each search in a
 * multi-valued attribute (and a sort by one) is a correlated subquery, so their number, not the filter's length
 * or depth, is what one request can make the database do. Counted on the compiled SQL, where every one of them is
 * a SELECT, so no compiler path can be missed.
 */
export function checkQueryCost(parts: ({ sql: string } | undefined)[], max: number | undefined): void {
  if (max === undefined) return;
  const n = parts.reduce((sum, p) => sum + (p?.sql.match(/\bSELECT\b/g)?.length ?? 0), 0);
  if (n > max)
    throw badRequest(
      "invalidFilter",
      `the filter and sortBy search multi-valued attributes ${n} times; at most ${max} are allowed (PROVISIOND_SCIM_MAX_FILTER_TERMS)`,
    );
}

/**
 * The first resources of a page that fit in `maxBytes` of JSON, at least one: a page of large resources (many
 * certificates, say) must not take a node's memory. RFC 7644 §3.4.2.4 lets a server return fewer than `count`;
 * itemsPerPage then says how many came, and the client asks from the next startIndex.
 */
export function fitPage<T>(resources: T[], maxBytes: number | undefined): T[] {
  if (maxBytes === undefined) return resources;
  let used = 0;
  for (const [i, r] of resources.entries()) {
    used += Buffer.byteLength(JSON.stringify(r));
    if (used > maxBytes && i > 0) return resources.slice(0, i);
  }
  return resources;
}

function int(name: string, v: unknown): number | undefined {
  if (v === undefined || v === null || v === "") return undefined;
  const n =
    typeof v === "number"
      ? v
      : typeof v === "string" && /^[-+]?\d{1,15}$/.test(v.trim())
        ? Number(v)
        : Number.NaN;
  if (!Number.isSafeInteger(n)) throw badRequest("invalidValue", `'${name}' must be an integer`);
  return n;
}

function names(name: string, v: unknown): string[] | undefined {
  if (v === undefined || v === null || v === "") return undefined;
  const list = Array.isArray(v) ? v : [v];
  if (!list.every((x) => typeof x === "string"))
    throw badRequest("invalidValue", `'${name}' must list attribute names`);
  return (list as string[])
    .flatMap((s) => splitNames(s))
    .map((s) => s.trim())
    .filter(Boolean);
}

/** Splits on commas outside brackets and quotes, so `emails[type eq "a,b"]` stays one name. */
function splitNames(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let quoted = false;
  let cur = "";
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (quoted) {
      if (c === "\\") {
        cur += c + (s[++i] ?? "");
        continue;
      }
      if (c === '"') quoted = false;
    } else if (c === '"') quoted = true;
    else if (c === "[") depth++;
    else if (c === "]") depth--;
    else if (c === "," && depth === 0) {
      out.push(cur);
      cur = "";
      continue;
    }
    cur += c;
  }
  out.push(cur);
  return out;
}

/** One value per parameter: a repeated query parameter is ambiguous, so it is refused. */
function single(name: string, v: unknown): unknown {
  if (Array.isArray(v)) throw badRequest("invalidValue", `'${name}' was given more than once`);
  return v;
}

export function readListParams(
  source: Record<string, unknown>,
  limits: ListLimits,
  fromBody: boolean,
): ListParams {
  const get = (k: string) => {
    const key = Object.keys(source).find((x) => x.toLowerCase() === k.toLowerCase());
    const v = key === undefined ? undefined : source[key];
    return fromBody || k === "attributes" || k === "excludedAttributes" ? v : single(k, v);
  };
  const out: ListParams = { startIndex: 1, count: limits.maxResults, descending: false };
  if (limits.maxPageBytes !== undefined) out.maxPageBytes = limits.maxPageBytes;
  if (limits.maxFilterTerms !== undefined) out.maxFilterTerms = limits.maxFilterTerms;
  const filter = get("filter");
  if (filter !== undefined && filter !== "") {
    if (typeof filter !== "string") throw badRequest("invalidFilter", "'filter' must be a string");
    out.filter = parseFilter(filter, { maxLength: limits.maxFilterLength });
  }
  // RFC 7644 §3.4.2.4: startIndex below 1 means 1; a negative count means 0; the server may return fewer.
  out.startIndex = Math.max(1, int("startIndex", get("startIndex")) ?? 1);
  out.count = Math.min(limits.maxResults, Math.max(0, int("count", get("count")) ?? limits.maxResults));
  const sortBy = get("sortBy");
  if (sortBy !== undefined && sortBy !== "") {
    if (typeof sortBy !== "string") throw badRequest("invalidValue", "'sortBy' must be an attribute name");
    out.sortBy = sortBy;
  }
  const order = get("sortOrder");
  if (order !== undefined && order !== "") {
    const o = typeof order === "string" ? order.toLowerCase() : "";
    if (o !== "ascending" && o !== "descending")
      throw badRequest("invalidValue", "'sortOrder' must be ascending or descending");
    out.descending = o === "descending";
  }
  const attrs = names("attributes", get("attributes"));
  const excluded = names("excludedAttributes", get("excludedAttributes"));
  if (attrs && excluded)
    throw badRequest("invalidValue", "use either 'attributes' or 'excludedAttributes', not both");
  if (attrs) out.attributes = attrs;
  if (excluded) out.excludedAttributes = excluded;
  return out;
}

export function readSearchBody(body: unknown, limits: ListLimits): ListParams {
  if (!isObject(body)) throw badRequest("invalidSyntax", "a search needs a SearchRequest JSON object");
  const schemas = body.schemas;
  if (schemas !== undefined && !(Array.isArray(schemas) && schemas.includes(SEARCH_REQUEST))) {
    throw badRequest("invalidSyntax", `a search body must name the schema ${SEARCH_REQUEST}`);
  }
  return readListParams(body, limits, true);
}
