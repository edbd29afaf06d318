/** `attributes` / `excludedAttributes` (RFC 7644 §3.9) applied to a rendered resource. */

import { matches, valueElements } from "./filter-eval.js";
import { type BoundPath, bindAttrPath, type Resource } from "./model/attribute-path.js";
import { badRequest } from "./model/errors.js";
import { type Filter, parsePath } from "./model/filter.js";
import type { ResourceSchema } from "./model/schema.js";

interface Selected {
  bound?: BoundPath;
  /** A bare extension URN selects the whole extension object. */
  urn?: string;
  filter?: Filter;
  sub?: string;
}

function parseList(rs: ResourceSchema, list: string[]): Selected[] {
  return list.map((entry) => {
    let path: ReturnType<typeof parsePath>;
    try {
      path = parsePath(entry);
    } catch {
      throw badRequest("invalidValue", `'${entry}' is not an attribute name`);
    }
    const { urn, rest } = rs.splitUrn(path.attrPath);
    if (urn && rest === "") return { urn };
    let bound: BoundPath;
    try {
      bound = bindAttrPath(rs, path.attrPath, "invalidValue");
    } catch {
      throw badRequest("invalidValue", `'${entry}' is not an attribute of ${rs.name}`);
    }
    const s: Selected = { bound };
    if (path.filter) s.filter = path.filter;
    if (path.subAttr) s.sub = path.subAttr;
    return s;
  });
}

export class Projection {
  private constructor(
    private readonly rs: ResourceSchema,
    private readonly include: Selected[] | undefined,
    private readonly exclude: Selected[],
  ) {}

  static parse(
    rs: ResourceSchema,
    attributes: string[] | undefined,
    excluded: string[] | undefined,
  ): Projection {
    return new Projection(
      rs,
      attributes?.length ? parseList(rs, attributes) : undefined,
      parseList(rs, excluded ?? []),
    );
  }

  static all(rs: ResourceSchema): Projection {
    return new Projection(rs, undefined, []);
  }

  /** Whether a top-level core attribute will appear, so costly ones (members, groups) load only when needed. */
  wants(attrName: string): boolean {
    const hit = (s: Selected) =>
      s.bound !== undefined && !s.bound.inExtension && s.bound.attr.name === attrName;
    if (this.include) return this.include.some(hit);
    return !this.exclude.some((s) => hit(s) && !s.bound?.sub && !s.filter);
  }

  apply(res: Resource): Resource {
    if (this.include) {
      const out: Resource = { schemas: res.schemas, id: res.id };
      for (const s of this.include) this.copy(res, out, s);
      out.schemas = (res.schemas as string[]).filter((u) => u === this.rs.core.id || out[u] !== undefined);
      return out;
    }
    if (this.exclude.length === 0) return res;
    const out = structuredClone(res);
    for (const s of this.exclude) this.remove(out, s);
    return out;
  }

  private copy(from: Resource, to: Resource, s: Selected): void {
    if (s.urn) {
      if (from[s.urn] !== undefined) to[s.urn] = from[s.urn];
      return;
    }
    const b = s.bound!;
    const src = b.inExtension ? (from[b.urn] as Resource | undefined) : from;
    let value = src?.[b.attr.name];
    if (value === undefined) return;
    if (s.filter) value = valueElements(from, b).filter((e) => matches(this.rs, s.filter!, e, b));
    const subName = b.sub?.name ?? s.sub;
    if (subName) {
      const pick = (e: unknown) => {
        const v = (e as Resource)?.[subName];
        return v === undefined ? undefined : { [subName]: v };
      };
      value = Array.isArray(value) ? value.map(pick).filter((e) => e !== undefined) : pick(value);
    }
    if (value === undefined || (Array.isArray(value) && value.length === 0)) return;
    if (b.inExtension && to[b.urn] === undefined) to[b.urn] = {};
    const dst = b.inExtension ? (to[b.urn] as Resource) : to;
    const existing = dst[b.attr.name];
    if (subName && existing && typeof existing === "object" && !Array.isArray(existing)) {
      dst[b.attr.name] = { ...(existing as Resource), ...(value as Resource) };
    } else if (subName && Array.isArray(existing) && Array.isArray(value)) {
      dst[b.attr.name] = existing.map((e, i) => ({ ...(e as Resource), ...(value as Resource[])[i] }));
    } else {
      dst[b.attr.name] = value;
    }
  }

  private remove(res: Resource, s: Selected): void {
    if (s.urn) {
      delete res[s.urn];
      res.schemas = (res.schemas as string[]).filter((u) => u !== s.urn);
      return;
    }
    const b = s.bound!;
    if (b.attr.returned === "always" && !b.sub) return;
    const container = b.inExtension ? (res[b.urn] as Resource | undefined) : res;
    if (!container) return;
    const subName = b.sub?.name ?? s.sub;
    if (!subName) {
      delete container[b.attr.name];
      return;
    }
    const v = container[b.attr.name];
    for (const e of Array.isArray(v) ? v : v ? [v] : []) delete (e as Resource)[subName];
  }
}
