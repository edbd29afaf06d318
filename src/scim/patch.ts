/**
 * RFC 7644 §3.5.2 PATCH on an in-memory resource, in both dialects real clients speak:
 *  - Okta: `replace` with a value object (which may carry `id`), `remove` of `members[value eq "…"]`.
 *  - Entra: capitalised op names, `Remove` with a value array, booleans as "True", and `Add` on
 *    `emails[type eq "work"].value` when no work email exists yet (which creates it).
 *
 * Hand-written rather than built on the npm `scim-patch` package: that package adds the value when a filtered
 * `replace` matches nothing (RFC 7644 says 400 noTarget), compares attribute names case-sensitively, and knows
 * no schema, so it could neither type-check values nor refuse readOnly targets. Group membership does not go
 * through here at all: src/scim/group-patch.ts turns it into row operations.
 */

import { matches, valueElements } from "./filter-eval.js";
import { type BoundPath, bindAttrPath, containerOf, type Resource } from "./model/attribute-path.js";
import { badRequest } from "./model/errors.js";
import { type Filter, parsePath } from "./model/filter.js";
import { type AttrDef, type ResourceSchema, subAttr } from "./model/schema.js";
import { forEachBodyAttribute, isObject, normalizeAttrValue } from "./resource.js";

export const PATCH_OP_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
export const MAX_OPERATIONS = 1000;

export type OpName = "add" | "replace" | "remove";

export interface PatchOperation {
  op: OpName;
  path?: string;
  value?: unknown;
}

/** Checks a PatchOp message and returns its operations with lower-cased op names. */
export function readPatchBody(body: unknown): PatchOperation[] {
  if (!isObject(body)) throw badRequest("invalidSyntax", "the request body must be a PatchOp JSON object");
  const schemas = body.schemas;
  if (schemas !== undefined && !(Array.isArray(schemas) && schemas.includes(PATCH_OP_SCHEMA))) {
    throw badRequest("invalidSyntax", `a PATCH body must name the schema ${PATCH_OP_SCHEMA}`);
  }
  const key = Object.keys(body).find((k) => k.toLowerCase() === "operations");
  const ops = key ? body[key] : undefined;
  if (!Array.isArray(ops) || ops.length === 0)
    throw badRequest("invalidSyntax", "'Operations' must be a non-empty array");
  if (ops.length > MAX_OPERATIONS)
    throw badRequest("tooMany", `at most ${MAX_OPERATIONS} operations per request`);
  return ops.map((raw, i) => {
    if (!isObject(raw)) throw badRequest("invalidSyntax", `operation ${i + 1} must be an object`);
    const op = typeof raw.op === "string" ? raw.op.toLowerCase() : "";
    if (op !== "add" && op !== "replace" && op !== "remove") {
      throw badRequest("invalidSyntax", `operation ${i + 1}: 'op' must be add, replace or remove`);
    }
    if (raw.path !== undefined && typeof raw.path !== "string") {
      throw badRequest("invalidPath", `operation ${i + 1}: 'path' must be a string`);
    }
    if (op !== "remove" && raw.value === undefined) {
      throw badRequest("invalidValue", `operation ${i + 1}: '${op}' needs a value`);
    }
    const out: PatchOperation = { op };
    if (raw.path !== undefined && raw.path !== "") out.path = raw.path;
    if (raw.value !== undefined) out.value = raw.value;
    return out;
  });
}

export interface PatchResult {
  resource: Resource;
  password?: string;
}

export function applyPatch(rs: ResourceSchema, current: Resource, ops: PatchOperation[]): PatchResult {
  const resource = structuredClone(current);
  const result: PatchResult = { resource };
  for (const op of ops) applyOne(rs, resource, op, result);
  return result;
}

function applyOne(rs: ResourceSchema, resource: Resource, op: PatchOperation, result: PatchResult): void {
  if (op.path === undefined) {
    if (op.op === "remove") throw badRequest("noTarget", "'remove' needs a path");
    if (!isObject(op.value))
      throw badRequest("invalidValue", `'${op.op}' without a path needs an object value`);
    applyValueObject(rs, resource, op.op, op.value, result);
    return;
  }
  const path = parsePath(op.path);
  const { urn, rest } = rs.splitUrn(path.attrPath);
  if (urn && rest === "" && urn !== rs.core.id) {
    // A path naming an extension schema addresses its whole object.
    if (op.op === "remove") {
      delete resource[urn];
      return;
    }
    applyValueObject(rs, resource, op.op, { [urn]: op.value }, result);
    return;
  }
  const bound = bindAttrPath(rs, path.attrPath, "invalidPath");
  if (bound.attr.mutability === "readOnly" || bound.sub?.mutability === "readOnly") {
    throw badRequest("mutability", `'${op.path}' is read-only`);
  }
  if (bound.attr.name === "password" && !bound.inExtension) {
    if (op.op === "remove") return;
    if (typeof op.value !== "string")
      throw badRequest("invalidValue", "attribute 'password' must be a string");
    result.password = op.value;
    return;
  }
  const subName = path.subAttr;
  const sub = subName !== undefined ? subAttr(bound.attr, subName) : undefined;
  if (subName !== undefined && !sub)
    throw badRequest("invalidPath", `'${bound.attr.name}' has no sub-attribute '${subName}'`);
  if (path.filter) {
    applyFiltered(rs, resource, op, bound, path.filter, sub);
    return;
  }
  if (bound.sub) {
    applySub(resource, op, bound, bound.sub);
    return;
  }
  applyWhole(resource, op.op, bound, op.value);
}

function containerFor(resource: Resource, bound: BoundPath): Resource {
  let c = containerOf(resource, bound);
  if (!c) {
    c = {};
    resource[bound.urn] = c;
  }
  return c;
}

function pruneExtension(resource: Resource, bound: BoundPath): void {
  if (bound.inExtension && Object.keys(containerFor(resource, bound)).length === 0)
    delete resource[bound.urn];
}

function label(bound: BoundPath): string {
  return bound.inExtension ? `${bound.urn}:${bound.attr.name}` : bound.attr.name;
}

function checkRemovable(def: AttrDef, name: string): void {
  if (def.required) throw badRequest("mutability", `required attribute '${name}' cannot be removed`);
}

/** Whole-attribute add/replace/remove. */
function applyWhole(resource: Resource, op: OpName, bound: BoundPath, raw: unknown): void {
  const c = containerFor(resource, bound);
  const def = bound.attr;
  const name = label(bound);
  if (op === "remove") {
    if (raw !== undefined && def.multiValued && def.type === "complex" && raw !== null) {
      // Entra removes chosen values of a multi-valued attribute with a value array and no filter.
      const remove = normalizeAttrValue(def, raw, name, bound.urn) as Resource[] | undefined;
      const keep = ((c[def.name] as Resource[] | undefined) ?? []).filter(
        (e) => !remove?.some((r) => covers(r, e)),
      );
      if (keep.length) c[def.name] = keep;
      else delete c[def.name];
    } else {
      checkRemovable(def, name);
      delete c[def.name];
    }
    pruneExtension(resource, bound);
    return;
  }
  const value = normalizeAttrValue(def, raw, name, bound.urn);
  if (value === undefined) {
    // Replacing a complex attribute with {} names no sub-attribute, so nothing changes (RFC 7644 §3.5.2.3).
    if (op === "replace" && !(def.type === "complex" && !def.multiValued && isObject(raw))) {
      checkRemovable(def, name);
      delete c[def.name];
    }
    pruneExtension(resource, bound);
    return;
  }
  if (def.multiValued) {
    const incoming = value as unknown[];
    const existing = op === "add" ? ((c[def.name] as unknown[] | undefined) ?? []) : [];
    const merged = [...existing];
    const touched = new Set<unknown>();
    for (const v of incoming) {
      // A value that is already there is updated in place rather than added twice.
      const i = merged.findIndex((e) => sameElement(e, v));
      const next = i >= 0 && isObject(merged[i]) && isObject(v) ? { ...(merged[i] as Resource), ...v } : v;
      if (i >= 0) merged[i] = next;
      else merged.push(next);
      touched.add(next);
    }
    if (def.type === "complex" && [...touched].some((v) => (v as Resource).primary === true)) {
      // A new primary value demotes the old one (RFC 7643 §2.4).
      for (const e of merged) if (!touched.has(e)) delete (e as Resource).primary;
    }
    c[def.name] = merged;
  } else if (def.type === "complex" && isObject(c[def.name])) {
    c[def.name] = { ...(c[def.name] as Resource), ...(value as Resource) };
  } else {
    c[def.name] = value;
  }
}

function sameElement(a: unknown, b: unknown): boolean {
  if (isObject(a) && isObject(b)) {
    if (a.value !== undefined || b.value !== undefined) {
      return a.value === b.value && (a.type === undefined || b.type === undefined || a.type === b.type);
    }
    return JSON.stringify(a) === JSON.stringify(b);
  }
  return a === b;
}

/** Whether every sub-attribute given in `pattern` has that value in `element` (Entra's and SCIMMY's remove by value). */
function covers(pattern: Resource, element: Resource): boolean {
  return Object.entries(pattern).every(([k, v]) => JSON.stringify(element[k]) === JSON.stringify(v));
}

/** `name.givenName`-style paths without a filter. */
function applySub(resource: Resource, op: PatchOperation, bound: BoundPath, sub: AttrDef): void {
  const c = containerFor(resource, bound);
  const def = bound.attr;
  const name = `${label(bound)}.${sub.name}`;
  if (def.multiValued) {
    // Without a filter, a sub-attribute path means that sub-attribute of every value.
    const list = (c[def.name] as Resource[] | undefined) ?? [];
    if (op.op !== "remove" && list.length === 0)
      throw badRequest("noTarget", `'${label(bound)}' has no values`);
    for (const e of list) setSub(e, sub, op, name, bound.urn);
    return;
  }
  if (op.op === "remove") {
    const obj = c[def.name] as Resource | undefined;
    if (obj) {
      delete obj[sub.name];
      if (Object.keys(obj).length === 0) delete c[def.name];
    }
    pruneExtension(resource, bound);
    return;
  }
  const obj = (c[def.name] as Resource | undefined) ?? {};
  setSub(obj, sub, op, name, bound.urn);
  if (Object.keys(obj).length) c[def.name] = obj;
  pruneExtension(resource, bound);
}

function setSub(element: Resource, sub: AttrDef, op: PatchOperation, name: string, urn: string): void {
  if (sub.mutability === "readOnly") throw badRequest("mutability", `'${name}' is read-only`);
  if (op.op === "remove") {
    delete element[sub.name];
    return;
  }
  const v = normalizeAttrValue(sub, op.value, name, urn);
  if (v === undefined) delete element[sub.name];
  else element[sub.name] = v;
}

function applyFiltered(
  rs: ResourceSchema,
  resource: Resource,
  op: PatchOperation,
  bound: BoundPath,
  filter: Filter,
  sub: AttrDef | undefined,
): void {
  const def = bound.attr;
  const name = label(bound);
  if (!def.multiValued)
    throw badRequest("invalidPath", `'${name}' is not multi-valued, so it cannot take a filter`);
  const c = containerFor(resource, bound);
  const list = (c[def.name] as unknown[] | undefined) ?? [];
  const elements = valueElements(resource, bound);
  const hit = elements.map((e) => matches(rs, filter, e, bound));
  if (op.op === "remove") {
    const keep = sub
      ? list.map((e, i) => {
          if (hit[i]) delete (e as Resource)[sub.name];
          return e;
        })
      : list.filter((_, i) => !hit[i]);
    if (keep.length) c[def.name] = keep;
    else delete c[def.name];
    pruneExtension(resource, bound);
    return;
  }
  if (!hit.some(Boolean)) {
    const created = op.op === "add" && sub ? elementFromEqualities(filter, bound) : undefined;
    if (!created) throw badRequest("noTarget", `no value of '${name}' matches the filter in '${op.path}'`);
    setSub(created, sub!, op, `${name}.${sub!.name}`, bound.urn);
    c[def.name] = [...list, normalizeAttrValue(def, created, name, bound.urn) as Resource[]].flat();
    return;
  }
  c[def.name] = list.map((e, i) => {
    if (!hit[i]) return e;
    if (sub) {
      setSub(e as Resource, sub, op, `${name}.${sub.name}`, bound.urn);
      return e;
    }
    const replacement = normalizeAttrValue({ ...def, multiValued: false }, op.value, name, bound.urn);
    if (replacement === undefined)
      throw badRequest("invalidValue", `'${op.op}' on '${op.path}' needs a value`);
    return replacement;
  });
}

/** `emails[type eq "work"]` → `{type: "work"}`: what Entra's `Add` on a missing filtered value creates. */
function elementFromEqualities(filter: Filter, bound: BoundPath): Resource | undefined {
  const out: Resource = {};
  const visit = (f: Filter): boolean => {
    if (f.op === "and") return visit(f.filters[0]) && visit(f.filters[1]);
    if (f.op !== "eq" || f.value === null) return false;
    const sub = subAttr(bound.attr, f.attrPath);
    if (!sub) return false;
    out[sub.name] = f.value;
    return true;
  };
  return visit(filter) ? out : undefined;
}

/** A value object without a path: each attribute is added or replaced in turn (RFC 7644 §3.5.2.1/3). */
function applyValueObject(
  rs: ResourceSchema,
  resource: Resource,
  op: OpName,
  value: Resource,
  result: PatchResult,
): void {
  forEachBodyAttribute(
    rs,
    value,
    (urn, def, raw) => {
      const bound: BoundPath = { urn, inExtension: urn !== rs.core.id, attr: def };
      applyWhole(resource, op, bound, raw);
    },
    (raw) => {
      if (typeof raw !== "string") throw badRequest("invalidValue", "attribute 'password' must be a string");
      result.password = raw;
    },
  );
}
