/** Flattens a resource into scim_user_attrs rows: one per leaf value of every attribute without a column. */
import type { Resource } from "../scim/model/attribute-path.js";
import type { AttrDef, ResourceSchema } from "../scim/model/schema.js";
import { ValueTooLarge } from "./errors.js";

/** `pos` is a SMALLINT: a multi-valued attribute keeps at most this many values. */
const MAX_VALUES = 32_767;

export interface AttrRow {
  attr: string;
  pos: number;
  sub: string;
  vStr: string | null;
  vCi: string | null;
  vNum: number | null;
}

/** Longest string the index holds; longer values are still stored in full, but only `pr` can find them. */
export const INDEXED_LENGTH = 512;

export function attrKey(urn: string, inExtension: boolean, attr: AttrDef): string {
  return inExtension ? `${urn}:${attr.name}` : attr.name;
}

export function leafColumns(def: AttrDef, v: unknown): Pick<AttrRow, "vStr" | "vCi" | "vNum"> {
  if (typeof v === "boolean") return { vStr: null, vCi: null, vNum: v ? 1 : 0 };
  if (typeof v === "number") return { vStr: null, vCi: null, vNum: v };
  const s = String(v);
  const lower = s.toLowerCase();
  if (s.length > INDEXED_LENGTH || lower.length > INDEXED_LENGTH)
    return { vStr: null, vCi: null, vNum: null };
  return { vStr: def.type === "dateTime" ? lower : s, vCi: lower, vNum: null };
}

/** `previous`: the document an update replaces; a list already past MAX_VALUES may stay or shrink. */
export function indexRows(
  rs: ResourceSchema,
  resource: Resource,
  columnBacked: ReadonlySet<string>,
  previous?: Resource,
): AttrRow[] {
  const rows: AttrRow[] = [];
  const visit = (
    urn: string,
    inExtension: boolean,
    defs: AttrDef[],
    container: Resource | undefined,
    before: Resource | undefined,
  ) => {
    if (!container) return;
    for (const def of defs) {
      const key = attrKey(urn, inExtension, def);
      if (columnBacked.has(key) || def.mutability === "writeOnly") continue;
      const raw = container[def.name];
      if (raw === undefined || raw === null) continue;
      const list = def.multiValued ? (raw as unknown[]) : [raw];
      const had =
        def.multiValued && Array.isArray(before?.[def.name]) ? (before[def.name] as unknown[]).length : 0;
      if (list.length > MAX_VALUES && list.length > had)
        throw new ValueTooLarge(def.name, `has ${list.length} values; at most ${MAX_VALUES} are kept`);
      list.forEach((el, pos) => {
        if (def.type !== "complex") {
          rows.push({ attr: key, pos, sub: "", ...leafColumns(def, el) });
          return;
        }
        for (const sub of def.subAttributes ?? []) {
          const v = (el as Resource)[sub.name];
          if (v !== undefined && v !== null)
            rows.push({ attr: key, pos, sub: sub.name, ...leafColumns(sub, v) });
        }
      });
    }
  };
  visit(rs.core.id, false, rs.core.attributes, resource, previous);
  for (const ext of rs.extensions)
    visit(
      ext.id,
      true,
      ext.attributes,
      resource[ext.id] as Resource | undefined,
      previous?.[ext.id] as Resource | undefined,
    );
  return rows;
}
