/**
 * Evaluates a filter against one resource in memory. PATCH value paths, `attributes=emails[...]` and the
 * property tests (which check the SQL compiler against it) use it; list queries never do.
 */
import {
  type BoundPath,
  bindAttrPath,
  checkComparison,
  containerOf,
  isPresent,
  leafValues,
  type Resource,
} from "./model/attribute-path.js";
import type { CompareOp, Filter } from "./model/filter.js";
import type { AttrDef, ResourceSchema } from "./model/schema.js";

/** Byte-wise UTF-8 order, the order MySQL's utf8mb4_bin and SQLite's BINARY collation use. */
export function compareText(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
}

function compareLeaf(
  leaf: AttrDef,
  op: CompareOp,
  actual: unknown,
  expected: string | number | boolean,
): boolean {
  if (leaf.type === "boolean") return op === "eq" ? actual === expected : actual !== expected;
  if (typeof expected === "number") {
    if (typeof actual !== "number") return false;
    return ordered(op, actual - expected);
  }
  if (typeof actual !== "string" || typeof expected !== "string") return false;
  const fold = leaf.type === "string" && !leaf.caseExact;
  const a = fold ? actual.toLowerCase() : actual;
  const e = fold ? expected.toLowerCase() : expected;
  switch (op) {
    case "eq":
      return a === e;
    case "ne":
      return a !== e;
    case "co":
      return a.includes(e);
    case "sw":
      return a.startsWith(e);
    case "ew":
      return a.endsWith(e);
    default:
      return ordered(op, compareText(a, e));
  }
}

function ordered(op: CompareOp, diff: number): boolean {
  switch (op) {
    case "eq":
      return diff === 0;
    case "ne":
      return diff !== 0;
    case "gt":
      return diff > 0;
    case "ge":
      return diff >= 0;
    case "lt":
      return diff < 0;
    case "le":
      return diff <= 0;
    default:
      return false;
  }
}

export function matches(rs: ResourceSchema, filter: Filter, resource: Resource, parent?: BoundPath): boolean {
  switch (filter.op) {
    case "and":
      return (
        matches(rs, filter.filters[0], resource, parent) && matches(rs, filter.filters[1], resource, parent)
      );
    case "or":
      return (
        matches(rs, filter.filters[0], resource, parent) || matches(rs, filter.filters[1], resource, parent)
      );
    case "not":
      return !matches(rs, filter.filter, resource, parent);
    case "valuePath": {
      const bound = bindAttrPath(rs, filter.attrPath, "invalidFilter");
      return valueElements(resource, bound).some((el) => matches(rs, filter.filter, el, bound));
    }
    case "pr": {
      const bound = bindAttrPath(rs, filter.attrPath, "invalidFilter", parent);
      if (!parent && bound.attr.type === "complex" && !bound.sub) {
        // A complex attribute is present when any of its values has a non-empty sub-attribute (RFC 7644 §3.4.2.2).
        return isPresent(containerOf(resource, bound)?.[bound.attr.name]);
      }
      return valuesAt(resource, bound, parent).some(isPresent);
    }
    default: {
      const bound = bindAttrPath(rs, filter.attrPath, "invalidFilter", parent);
      const cmp = checkComparison(bound, filter.op, filter.value);
      const values = valuesAt(resource, bound, parent).filter(isPresent);
      if (cmp.value === null) return cmp.op === "eq" ? values.length === 0 : values.length > 0;
      // `ne` is the negation of `eq` over the whole attribute, so a multi-valued attribute
      // "ne x" holds when no value equals x, and an absent one is "ne" anything.
      if (cmp.op === "ne") return !values.some((v) => compareLeaf(cmp.leaf, "eq", v, cmp.value as string));
      const expected = cmp.value;
      return values.some((v) => compareLeaf(cmp.leaf, cmp.op, v, expected));
    }
  }
}

/** The elements `attr[...]` iterates: a multi-valued attribute's values, or a singular complex value. */
export function valueElements(resource: Resource, bound: BoundPath): Resource[] {
  const c = bound.inExtension ? (resource[bound.urn] as Resource | undefined) : resource;
  const raw = c?.[bound.attr.name];
  if (raw === undefined || raw === null) return [];
  const list = Array.isArray(raw) ? raw : [raw];
  // Simple multi-valued attributes are wrapped so `schemas[value eq "x"]` has something to look at.
  return list.map((v) => (bound.attr.type === "complex" ? (v as Resource) : { value: v }));
}

function valuesAt(resource: Resource, bound: BoundPath, parent?: BoundPath): unknown[] {
  if (!parent) return leafValues(resource, bound);
  const key = bound.sub ? bound.sub.name : "value";
  const v = resource[key];
  return v === undefined || v === null ? [] : [v];
}
