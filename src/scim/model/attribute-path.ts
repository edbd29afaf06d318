/** Binds the attribute paths that filters, PATCH paths and `attributes=` name to a resource type's schema. */
import { badRequest, type ScimType } from "./errors.js";
import type { CompareOp, CompValue } from "./filter.js";
import { type AttrDef, type ResourceSchema, subAttr } from "./schema.js";

export interface BoundPath {
  /** The schema the attribute belongs to: the core schema id or an extension URN. */
  urn: string;
  /** True when the attribute lives under resource[urn] rather than at the top level. */
  inExtension: boolean;
  attr: AttrDef;
  sub?: AttrDef;
}

export function bindAttrPath(
  rs: ResourceSchema,
  attrPath: string,
  errType: ScimType,
  parent?: BoundPath,
): BoundPath {
  const fail = (msg: string) => badRequest(errType, msg);
  if (parent) {
    // Inside `attr[...]` names are relative to the multi-valued attribute.
    if (attrPath.includes(".") || attrPath.includes(":"))
      throw fail(`'${attrPath}' is not a sub-attribute of '${parent.attr.name}'`);
    if (parent.attr.type !== "complex") {
      if (attrPath.toLowerCase() === "value") return { ...parent };
      throw fail(`'${parent.attr.name}' has no sub-attributes`);
    }
    const sub = subAttr(parent.attr, attrPath);
    if (!sub) throw fail(`'${parent.attr.name}' has no sub-attribute '${attrPath}'`);
    return { ...parent, sub };
  }
  const { urn, rest } = rs.splitUrn(attrPath);
  if (!urn && attrPath.includes(":")) throw fail(`unknown schema in '${attrPath}'`);
  if (rest === "") throw fail(`'${attrPath}' names a schema, not an attribute`);
  const [name, subName] = rest.split(".") as [string, string | undefined];
  const inExtension = urn !== undefined && urn !== rs.core.id;
  const attr = inExtension
    ? rs.extension(urn)!.attributes.find((a) => a.name.toLowerCase() === name.toLowerCase())
    : rs.coreAttr(name);
  if (!attr) throw fail(`unknown attribute '${attrPath}'`);
  const bound: BoundPath = { urn: urn ?? rs.core.id, inExtension, attr };
  if (subName === undefined) return bound;
  const sub = subAttr(attr, subName);
  if (!sub) throw fail(`'${attr.name}' has no sub-attribute '${subName}'`);
  return { ...bound, sub };
}

/** The attribute a comparison looks at: `emails` compares as `emails.value` (RFC 7644 §3.4.2.2). */
export function leafOf(bound: BoundPath): AttrDef | undefined {
  if (bound.sub) return bound.sub;
  if (bound.attr.type !== "complex") return bound.attr;
  return bound.attr.multiValued ? subAttr(bound.attr, "value") : undefined;
}

export type Resource = Record<string, unknown>;

export function containerOf(resource: Resource, bound: BoundPath): Resource | undefined {
  if (!bound.inExtension) return resource;
  const ext = resource[bound.urn];
  return ext && typeof ext === "object" ? (ext as Resource) : undefined;
}

/** Every leaf value a filter on `bound` sees, multi-valued attributes flattened. */
export function leafValues(resource: Resource, bound: BoundPath): unknown[] {
  const container = containerOf(resource, bound);
  const raw = container?.[bound.attr.name];
  if (raw === undefined || raw === null) return [];
  const elements = Array.isArray(raw) ? raw : [raw];
  if (bound.attr.type !== "complex") return elements;
  const leaf = leafOf(bound);
  if (!leaf) return [];
  return elements.map((e) => (e as Resource)?.[leaf.name]).filter((v) => v !== undefined && v !== null);
}

export function isPresent(v: unknown): boolean {
  if (v === undefined || v === null || v === "") return false;
  if (Array.isArray(v)) return v.length > 0;
  if (typeof v === "object") return Object.values(v as object).some(isPresent);
  return true;
}

export interface Comparison {
  leaf: AttrDef;
  op: CompareOp;
  value: CompValue;
}

/**
 * Checks that an operator and value fit the attribute's type and normalizes the value (dateTimes to UTC ISO
 * with milliseconds, as the store keeps them). The SQL compiler and the in-memory evaluator share it, so both
 * refuse and accept exactly the same filters.
 */
export function checkComparison(bound: BoundPath, op: CompareOp, value: CompValue): Comparison {
  const leaf = leafOf(bound);
  const name = bound.sub ? `${bound.attr.name}.${bound.sub.name}` : bound.attr.name;
  const fail = (msg: string) => badRequest("invalidFilter", `invalid filter: ${msg}`);
  if (!leaf) throw fail(`'${name}' is complex and cannot be compared; name a sub-attribute`);
  if (value === null) {
    if (op !== "eq" && op !== "ne") throw fail(`only eq and ne compare with null`);
    return { leaf, op, value };
  }
  const ordered = op === "gt" || op === "ge" || op === "lt" || op === "le";
  const textual = op === "co" || op === "sw" || op === "ew";
  switch (leaf.type) {
    case "boolean":
      if (typeof value !== "boolean") throw fail(`'${name}' is boolean; compare it with true or false`);
      if (ordered || textual) throw fail(`'${op}' does not apply to boolean '${name}'`);
      return { leaf, op, value };
    case "integer":
    case "decimal":
      if (typeof value !== "number") throw fail(`'${name}' is a number; compare it with a number`);
      if (textual) throw fail(`'${op}' does not apply to numeric '${name}'`);
      return { leaf, op, value };
    case "dateTime": {
      if (typeof value !== "string") throw fail(`'${name}' is a dateTime; compare it with a quoted date`);
      if (textual) throw fail(`'${op}' does not apply to dateTime '${name}'`);
      const iso = normalizeDateTime(value);
      if (!iso) throw fail(`'${value}' is not an xsd:dateTime`);
      return { leaf, op, value: iso };
    }
    default:
      if (typeof value !== "string") throw fail(`'${name}' is a string; compare it with a quoted string`);
      if (leaf.type === "binary" && op !== "eq" && op !== "ne")
        throw fail(`'${op}' does not apply to binary '${name}'`);
      return { leaf, op, value };
  }
}

const DATE_TIME_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})$/;

/** xsd:dateTime → `YYYY-MM-DDTHH:MM:SS.sssZ`; undefined when it is not one. */
export function normalizeDateTime(s: string): string | undefined {
  if (!DATE_TIME_RE.test(s)) return undefined;
  const d = new Date(s);
  return Number.isNaN(d.getTime()) ? undefined : d.toISOString();
}
