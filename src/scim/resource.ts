/**
 * Validates and canonicalizes resource bodies (POST, PUT, PATCH values): attribute names take the schema's
 * spelling, values are type-checked, readOnly attributes are dropped, and anything unknown is refused, since
 * silently dropping an attribute a client sent would lose data without anyone noticing.
 */
import { normalizeDateTime, type Resource } from "./model/attribute-path.js";
import { badRequest } from "./model/errors.js";
import { type AttrDef, ENTERPRISE_USER, type ResourceSchema, subAttr } from "./model/schema.js";

const MAX_STRING = 65_535;

function typeError(path: string, expected: string): never {
  throw badRequest("invalidValue", `attribute '${path}' must be ${expected}`);
}

/** Entra sends booleans as the strings "True"/"False"; accepting them is part of speaking its dialect. */
function toBoolean(v: unknown, path: string): boolean {
  if (typeof v === "boolean") return v;
  if (typeof v === "string") {
    const l = v.toLowerCase();
    if (l === "true") return true;
    if (l === "false") return false;
  }
  return typeError(path, "a boolean");
}

function normalizeSingle(def: AttrDef, v: unknown, path: string, owner: string): unknown {
  if (v === null || v === undefined) return undefined;
  switch (def.type) {
    case "boolean":
      return toBoolean(v, path);
    case "integer":
      if (typeof v !== "number" || !Number.isSafeInteger(v)) return typeError(path, "an integer");
      return v;
    case "decimal":
      if (typeof v !== "number" || !Number.isFinite(v)) return typeError(path, "a number");
      return v;
    case "dateTime": {
      if (typeof v !== "string") return typeError(path, "an xsd:dateTime string");
      return normalizeDateTime(v) ?? typeError(path, "an xsd:dateTime string");
    }
    case "complex": {
      // Entra sends the enterprise manager as a bare id string.
      if (typeof v === "string" && owner === ENTERPRISE_USER && def.name === "manager") v = { value: v };
      if (typeof v !== "object" || Array.isArray(v)) return typeError(path, "an object");
      const out: Resource = {};
      for (const [k, raw] of Object.entries(v as Resource)) {
        const sub = subAttr(def, k);
        if (!sub) throw badRequest("invalidSyntax", `attribute '${path}' has no sub-attribute '${k}'`);
        if (sub.mutability === "readOnly") continue;
        const val = normalizeSingle(sub, raw, `${path}.${sub.name}`, owner);
        if (val !== undefined) out[sub.name] = val;
      }
      return Object.keys(out).length ? out : undefined;
    }
    default:
      if (typeof v !== "string") return typeError(path, "a string");
      if (v.length > MAX_STRING) return typeError(path, `at most ${MAX_STRING} characters`);
      // An empty string is treated as unassigned, as `pr` treats it (RFC 7644 §3.4.2.2).
      return v === "" ? undefined : v;
  }
}

/** Normalizes one attribute's value; undefined means unassigned. */
export function normalizeAttrValue(def: AttrDef, v: unknown, path: string, owner: string): unknown {
  if (v === null || v === undefined) return undefined;
  if (!def.multiValued) {
    if (Array.isArray(v)) return typeError(path, "a single value, not an array");
    return normalizeSingle(def, v, path, owner);
  }
  const list = Array.isArray(v) ? v : [v];
  const out = list
    .map((e, i) => normalizeSingle(def, e, `${path}[${i}]`, owner))
    .filter((e) => e !== undefined);
  if (def.type === "complex") {
    const primaries = out.filter((e) => (e as Resource).primary === true).length;
    if (primaries > 1) throw badRequest("invalidValue", `at most one value of '${path}' may be primary`);
  }
  return out.length ? out : undefined;
}

export interface NormalizedBody {
  resource: Resource;
  /** A password the client sent; never stored as is. */
  password?: string;
}

export function isObject(v: unknown): v is Resource {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

export function putAttr(target: Resource, def: AttrDef, raw: unknown, path: string, owner: string): void {
  const val = normalizeAttrValue(def, raw, path, owner);
  if (val === undefined) delete target[def.name];
  else target[def.name] = val;
}

/**
 * Applies the attributes of a body or PATCH value object to `target` (which may already hold a resource).
 * `each` decides per attribute how a value lands: POST/PUT set it, PATCH add/replace merge it.
 */
export function forEachBodyAttribute(
  rs: ResourceSchema,
  body: Resource,
  each: (urn: string, def: AttrDef, raw: unknown) => void,
  onPassword?: (raw: unknown) => void,
): void {
  // One attribute, two spellings (`userName` and its URN-qualified name): two readers could pick either.
  const seen = new Set<string>();
  const once = (urn: string, def: AttrDef, key: string) => {
    const id = `${urn.toLowerCase()}:${def.name.toLowerCase()}`;
    if (seen.has(id))
      throw badRequest("invalidSyntax", `the body names attribute '${def.name}' twice (as '${key}')`);
    seen.add(id);
  };
  for (const [key, raw] of Object.entries(body)) {
    const lower = key.toLowerCase();
    if (lower === "schemas") continue;
    const ext = rs.extension(key);
    if (ext && ext.id !== rs.core.id) {
      if (raw === null) continue;
      if (!isObject(raw)) typeError(ext.id, "an object");
      for (const [k, v] of Object.entries(raw)) {
        const def = ext.attributes.find((a) => a.name.toLowerCase() === k.toLowerCase());
        if (!def) throw badRequest("invalidSyntax", `unknown attribute '${k}' in schema ${ext.id}`);
        once(ext.id, def, k);
        if (def.mutability !== "readOnly") each(ext.id, def, v);
      }
      continue;
    }
    const { urn, rest } = rs.splitUrn(key);
    if (urn && urn !== rs.core.id) {
      const schema = rs.extension(urn)!;
      const def = schema.attributes.find((a) => a.name.toLowerCase() === rest.toLowerCase());
      if (!def) throw badRequest("invalidSyntax", `unknown attribute '${key}'`);
      once(schema.id, def, key);
      if (def.mutability !== "readOnly") each(schema.id, def, raw);
      continue;
    }
    if (!urn && key.includes(":")) throw badRequest("invalidSyntax", `unknown schema in attribute '${key}'`);
    const def = rs.coreAttr(rest);
    if (!def) throw badRequest("invalidSyntax", `unknown attribute '${key}'`);
    once(rs.core.id, def, key);
    if (def.mutability === "readOnly") continue;
    if (def.mutability === "writeOnly" && def.name === "password") {
      onPassword?.(raw);
      continue;
    }
    each(rs.core.id, def, raw);
  }
}

/**
 * A full resource body, as POST and PUT carry it. A create must name its schemas, the core one among them
 * (RFC 7643 §3); a replace may leave them out, as some clients' PUTs do.
 */
export function normalizeBody(
  rs: ResourceSchema,
  body: unknown,
  { create }: { create: boolean },
): NormalizedBody {
  if (!isObject(body)) throw badRequest("invalidSyntax", "the request body must be a JSON object");
  if (body.schemas === undefined && create)
    throw badRequest("invalidSyntax", `a new ${rs.name} needs "schemas": ["${rs.core.id}"]`);
  if (body.schemas !== undefined) {
    if (!Array.isArray(body.schemas) || !body.schemas.every((s) => typeof s === "string")) {
      typeError("schemas", "an array of schema URNs");
    }
    for (const s of body.schemas as string[]) {
      if (!rs.extension(s)) throw badRequest("invalidValue", `schema '${s}' is not a ${rs.name} schema here`);
    }
    if (create && !(body.schemas as string[]).some((s) => s.toLowerCase() === rs.core.id.toLowerCase()))
      throw badRequest("invalidSyntax", `"schemas" must include the ${rs.name} schema ${rs.core.id}`);
  }
  const resource: Resource = {};
  let password: string | undefined;
  forEachBodyAttribute(
    rs,
    body,
    (urn, def, raw) => {
      if (urn === rs.core.id) return putAttr(resource, def, raw, def.name, urn);
      const ext = (resource[urn] as Resource | undefined) ?? {};
      putAttr(ext, def, raw, `${urn}:${def.name}`, urn);
      if (Object.keys(ext).length) resource[urn] = ext;
    },
    (raw) => {
      if (raw === null || raw === undefined || raw === "") return;
      if (typeof raw !== "string") typeError("password", "a string");
      password = raw;
    },
  );
  return password === undefined ? { resource } : { resource, password };
}

/** Required attributes must be present after every write (RFC 7643 §2.2). */
export function checkRequired(rs: ResourceSchema, resource: Resource): void {
  for (const def of rs.core.attributes) {
    if (def.required && resource[def.name] === undefined) {
      throw badRequest("invalidValue", `attribute '${def.name}' is required`);
    }
  }
  for (const ext of rs.extensions) {
    const container = resource[ext.id] as Resource | undefined;
    for (const def of ext.attributes) {
      if (def.required && container?.[def.name] === undefined) {
        throw badRequest("invalidValue", `attribute '${ext.id}:${def.name}' is required`);
      }
    }
  }
}
