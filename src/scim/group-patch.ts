/**
 * Splits a Group PATCH into membership operations, which become row inserts and deletes on
 * scim_group_members, and the rest (displayName, externalId), which src/scim/patch.ts applies. Turning
 * `add members [{value}]` into one INSERT is what keeps a change to a 100,000-member group cheap.
 */
import { bindAttrPath } from "./model/attribute-path.js";
import { badRequest } from "./model/errors.js";
import { type Filter, parsePath } from "./model/filter.js";
import type { ResourceSchema } from "./model/schema.js";
import type { PatchOperation } from "./patch.js";
import { isObject } from "./resource.js";

export interface MemberRef {
  value: string;
  display?: string;
  type?: "User" | "Group";
}

export type MemberOp =
  | { kind: "add"; members: MemberRef[] }
  | { kind: "remove"; ids: string[] }
  | { kind: "removeWhere"; filter: Filter }
  | { kind: "removeAll" }
  | { kind: "replaceAll"; members: MemberRef[] }
  | { kind: "setDisplay"; filter: Filter; display: string | null };

const MAX_ID = 255;

export function readMembers(raw: unknown, where: string): MemberRef[] {
  if (raw === null || raw === undefined) return [];
  const list = Array.isArray(raw) ? raw : [raw];
  return list.map((m, i) => {
    if (!isObject(m))
      throw badRequest("invalidValue", `${where}[${i}] must be an object like {"value": "<id>"}`);
    const out: MemberRef = { value: "" };
    for (const [k, v] of Object.entries(m)) {
      switch (k.toLowerCase()) {
        case "value":
          if (typeof v !== "string" || v === "" || v.length > MAX_ID) {
            throw badRequest("invalidValue", `${where}[${i}].value must be the id of a user or group`);
          }
          out.value = v;
          break;
        // Microsoft's conformance collection sends `displayName` on members; it is Entra's spelling of display.
        case "display":
        case "displayname":
          if (v !== null && typeof v !== "string")
            throw badRequest("invalidValue", `${where}[${i}].display must be a string`);
          if (typeof v === "string" && v !== "") out.display = v;
          break;
        case "type": {
          const t = typeof v === "string" ? v.toLowerCase() : "";
          if (t !== "user" && t !== "group")
            throw badRequest("invalidValue", `${where}[${i}].type must be User or Group`);
          out.type = t === "user" ? "User" : "Group";
          break;
        }
        case "$ref":
          break;
        default:
          throw badRequest("invalidSyntax", `${where}[${i}] has no sub-attribute '${k}'`);
      }
    }
    if (!out.value) throw badRequest("invalidValue", `${where}[${i}] needs a "value" (the member's id)`);
    return out;
  });
}

/** `value eq "a"`, or several joined by `or`: the ids, so removal is a keyed DELETE. */
function idsOf(f: Filter): string[] | undefined {
  if (f.op === "or") {
    const a = idsOf(f.filters[0]);
    const b = idsOf(f.filters[1]);
    return a && b ? [...a, ...b] : undefined;
  }
  if (f.op === "eq" && f.attrPath.toLowerCase() === "value" && typeof f.value === "string") return [f.value];
  return undefined;
}

function memberOp(op: PatchOperation, filter: Filter | undefined, subAttr: string | undefined): MemberOp {
  if (subAttr !== undefined) {
    if (subAttr.toLowerCase() !== "display" || op.op === "add" || !filter) {
      throw badRequest(
        "invalidPath",
        "of a member's sub-attributes only members[...].display can be changed",
      );
    }
    if (op.op === "remove") return { kind: "setDisplay", filter, display: null };
    if (typeof op.value !== "string")
      throw badRequest("invalidValue", "members[...].display must be a string");
    return { kind: "setDisplay", filter, display: op.value };
  }
  if (filter) {
    if (op.op === "remove") {
      const ids = idsOf(filter);
      return ids ? { kind: "remove", ids } : { kind: "removeWhere", filter };
    }
    if (op.op === "replace") {
      const [m] = readMembers(op.value, "value");
      return { kind: "setDisplay", filter, display: m?.display ?? null };
    }
    throw badRequest("invalidPath", "'add' takes the path 'members' without a filter");
  }
  if (op.op === "add") return { kind: "add", members: readMembers(op.value, "value") };
  if (op.op === "replace") return { kind: "replaceAll", members: readMembers(op.value, "value") };
  // Entra removes chosen members with a value array and no filter; without a value, all go.
  if (op.value === undefined || op.value === null) return { kind: "removeAll" };
  return { kind: "remove", ids: readMembers(op.value, "value").map((m) => m.value) };
}

export function splitGroupPatch(
  rs: ResourceSchema,
  ops: PatchOperation[],
): { memberOps: MemberOp[]; other: PatchOperation[] } {
  const memberOps: MemberOp[] = [];
  const other: PatchOperation[] = [];
  for (const op of ops) {
    if (op.path === undefined) {
      if (!isObject(op.value)) {
        other.push(op);
        continue;
      }
      const key = Object.keys(op.value).find((k) => k.toLowerCase() === "members");
      if (key === undefined) {
        other.push(op);
        continue;
      }
      const { [key]: members, ...rest } = op.value;
      memberOps.push(memberOp({ op: op.op, path: "members", value: members }, undefined, undefined));
      if (Object.keys(rest).length) other.push({ ...op, value: rest });
      continue;
    }
    const path = parsePath(op.path);
    const bound = bindAttrPath(rs, path.attrPath, "invalidPath");
    if (bound.attr.name !== "members" || bound.inExtension) {
      other.push(op);
      continue;
    }
    if (bound.sub) {
      throw badRequest("invalidPath", 'use members[value eq "<id>"].display to change one member\'s display');
    }
    memberOps.push(memberOp(op, path.filter, path.subAttr));
  }
  return { memberOps, other };
}
