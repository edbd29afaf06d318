/** Group operations. Membership changes are row operations; members load only when they will be returned. */
import { compileGroupFilter, groupSortExpr } from "../store/filter-sql.js";
import type { GroupRecord, Member } from "../store/groups.js";
import type { AppStore, StoreTx } from "../store/index.js";
import { auditBase, changedAttributes, type ListResult, type RequestContext } from "./context.js";
import { matches } from "./filter-eval.js";
import { type MemberOp, type MemberRef, readMembers, splitGroupPatch } from "./group-patch.js";
import { fitPage, type ListParams, listResponse, planList } from "./list.js";
import type { Resource } from "./model/attribute-path.js";
import { badRequest, notFound, ScimError } from "./model/errors.js";
import type { ResourceSchema } from "./model/schema.js";
import { applyPatch, readPatchBody } from "./patch.js";
import type { Projection } from "./projection.js";
import { readOne } from "./read.js";
import { ifMatchHolds, render } from "./render.js";
import { checkRequired, isObject, normalizeBody } from "./resource.js";
import {
  createdResponse,
  deletedResponse,
  groupPatchResponse,
  okResponse,
  type Written,
} from "./responses.js";
import { MAX_KEY_LENGTH } from "./users.js";

function checkColumns(doc: Resource): void {
  if (String(doc.displayName).length > MAX_KEY_LENGTH)
    throw badRequest("invalidValue", `displayName is longer than ${MAX_KEY_LENGTH} characters`);
  if (typeof doc.externalId === "string" && doc.externalId.length > MAX_KEY_LENGTH) {
    throw badRequest("invalidValue", `externalId is longer than ${MAX_KEY_LENGTH} characters`);
  }
}

/** A group body without its members: they are validated here and stored as rows. */
function splitBody(
  rs: ResourceSchema,
  body: unknown,
  mode: { create: boolean },
): { doc: Resource; members: MemberRef[] } {
  if (!isObject(body)) throw badRequest("invalidSyntax", "the request body must be a JSON object");
  // Members are rows, not part of the document: every spelling of the attribute must land here.
  const qualified = `${rs.core.id.toLowerCase()}:members`;
  const keys = Object.keys(body).filter(
    (k) => k.toLowerCase() === "members" || k.toLowerCase() === qualified,
  );
  if (keys.length > 1)
    throw badRequest("invalidSyntax", `the body names attribute 'members' twice (as '${keys[1]}')`);
  const { [keys[0] ?? "members"]: rawMembers, ...rest } = body;
  const { resource } = normalizeBody(rs, rest, mode);
  checkRequired(rs, resource);
  checkColumns(resource);
  return { doc: resource, members: readMembers(rawMembers, "members") };
}

function memberJson(m: Member, baseUrl: string): Resource {
  const out: Resource = {
    value: m.value,
    $ref: `${baseUrl}/${m.type === "User" ? "Users" : "Groups"}/${m.value}`,
    type: m.type,
  };
  if (m.display !== undefined) out.display = m.display;
  return out;
}

export class GroupService {
  constructor(
    private readonly store: AppStore,
    readonly rs: ResourceSchema,
  ) {}

  private async renderMany(
    tx: StoreTx,
    recs: GroupRecord[],
    ctx: RequestContext,
    projection: Projection,
  ): Promise<Resource[]> {
    const members = projection.wants("members")
      ? await tx.groups.members(recs.map((r) => r.seq))
      : new Map<number, Member[]>();
    return recs.map((r) => {
      const list = members.get(r.seq);
      const extra = list?.length ? { members: list.map((m) => memberJson(m, ctx.baseUrl)) } : {};
      return projection.apply(render(this.rs, r, ctx.baseUrl, extra));
    });
  }

  /** Resolves member ids to users or groups; an id that is neither is refused rather than stored dangling. */
  private async resolve(tx: StoreTx, refs: MemberRef[], self?: string): Promise<Member[]> {
    const unique = [...new Map(refs.map((r) => [r.value, r])).values()];
    if (self && unique.some((r) => r.value === self))
      throw badRequest("invalidValue", "a group cannot be a member of itself");
    const found = await tx.groups.resolveMembers(unique.map((r) => r.value));
    return unique.map((r) => {
      const hit = found.get(r.value);
      if (!hit) throw badRequest("invalidValue", `member '${r.value}' is not a user or group here`);
      if (r.type && r.type !== hit.type)
        throw badRequest("invalidValue", `member '${r.value}' is a ${hit.type}, not a ${r.type}`);
      const m: Member = { value: r.value, type: hit.type };
      const display = r.display ?? hit.display ?? undefined;
      if (display !== undefined) m.display = display;
      return m;
    });
  }

  async get(id: string, ctx: RequestContext, projection: Projection): Promise<Written> {
    return readOne(
      this.store,
      "groups.get",
      (tx) => tx.groups.findById(id),
      `group ${id} not found`,
      async (tx, rec) => (await this.renderMany(tx, [rec], ctx, projection))[0]!,
    );
  }

  async list(params: ListParams, ctx: RequestContext): Promise<ListResult> {
    const { projection, where, order } = planList(this.rs, params, compileGroupFilter, groupSortExpr);
    return this.store.run(
      "groups.list",
      async (tx) => {
        const total = await tx.groups.count(where);
        const recs =
          params.count === 0
            ? []
            : await tx.groups.list({
                where,
                order,
                descending: params.descending,
                offset: params.startIndex - 1,
                limit: params.count,
              });
        const Resources = fitPage(await this.renderMany(tx, recs, ctx, projection), params.maxPageBytes);
        return listResponse(total, params.startIndex, Resources);
      },
      { readOnly: true },
    );
  }

  async create(body: unknown, ctx: RequestContext, projection: Projection): Promise<Written> {
    const { doc, members } = splitBody(this.rs, body, { create: true });
    const now = new Date().toISOString();
    const id = crypto.randomUUID();
    return this.store.run(
      "groups.create",
      async (tx) => {
        const resolved = await this.resolve(tx, members);
        const rec = await tx.groups.insert(id, doc, now);
        await tx.groups.addMembers(rec.seq, resolved);
        await tx.audit.record({
          ...auditBase(ctx, now),
          action: "create",
          resourceType: "Group",
          resourceId: id,
          attributes: [...Object.keys(doc), ...(members.length ? ["members"] : [])].sort(),
        });
        const [resource] = await this.renderMany(tx, [rec], ctx, projection);
        return { resource: resource!, version: rec.version, location: `${ctx.baseUrl}/Groups/${id}` };
      },
      { guard: ctx.guard, answer: createdResponse },
    );
  }

  private async locked(tx: StoreTx, id: string, ctx: RequestContext): Promise<GroupRecord> {
    const current = await tx.groups.findById(id, true);
    if (!current) throw notFound(`group ${id} not found`);
    if (!ifMatchHolds(ctx.ifMatch, current.version)) {
      throw new ScimError(412, undefined, `the group ${id} has changed since the version in If-Match`);
    }
    return current;
  }

  async replace(id: string, body: unknown, ctx: RequestContext, projection: Projection): Promise<Written> {
    const { doc, members } = splitBody(this.rs, body, { create: false });
    const now = new Date().toISOString();
    return this.store.run(
      "groups.replace",
      async (tx) => {
        const current = await this.locked(tx, id, ctx);
        const resolved = await this.resolve(tx, members, id);
        await tx.groups.removeAllMembers(current.seq);
        await tx.groups.addMembers(current.seq, resolved);
        const rec = await tx.groups.update(current, doc, now);
        await tx.audit.record({
          ...auditBase(ctx, now),
          action: "replace",
          resourceType: "Group",
          resourceId: id,
          attributes: [...changedAttributes(current.doc, doc), "members"],
        });
        const [resource] = await this.renderMany(tx, [rec], ctx, projection);
        return { resource: resource!, version: rec.version };
      },
      { guard: ctx.guard, answer: okResponse },
    );
  }

  /** PATCH: membership rows change in place; the group row gets a new version. No projection, no body (204). */
  async patch(
    id: string,
    body: unknown,
    ctx: RequestContext,
    projection: Projection | undefined,
  ): Promise<{ resource?: Resource; version: number }> {
    const ops = readPatchBody(body);
    const { memberOps, other } = splitGroupPatch(this.rs, ops);
    const now = new Date().toISOString();
    return this.store.run(
      "groups.patch",
      async (tx) => {
        const current = await this.locked(tx, id, ctx);
        const doc = other.length ? applyPatch(this.rs, current.doc, other).resource : current.doc;
        checkRequired(this.rs, doc);
        checkColumns(doc);
        for (const op of memberOps) await this.applyMemberOp(tx, current, op);
        const rec = await tx.groups.update(current, doc, now);
        const attributes = changedAttributes(current.doc, doc);
        if (memberOps.length) attributes.push("members");
        await tx.audit.record({
          ...auditBase(ctx, now),
          action: "patch",
          resourceType: "Group",
          resourceId: id,
          attributes,
        });
        if (!projection) return { version: rec.version };
        const [resource] = await this.renderMany(tx, [rec], ctx, projection);
        return { resource: resource!, version: rec.version };
      },
      { guard: ctx.guard, answer: groupPatchResponse },
    );
  }

  private async applyMemberOp(tx: StoreTx, group: GroupRecord, op: MemberOp): Promise<void> {
    switch (op.kind) {
      case "add":
        await tx.groups.addMembers(group.seq, await this.resolve(tx, op.members, group.id));
        return;
      case "remove":
        await tx.groups.removeMembers(group.seq, op.ids);
        return;
      case "removeAll":
        await tx.groups.removeAllMembers(group.seq);
        return;
      case "replaceAll": {
        const resolved = await this.resolve(tx, op.members, group.id);
        await tx.groups.removeAllMembers(group.seq);
        await tx.groups.addMembers(group.seq, resolved);
        return;
      }
      case "removeWhere":
      case "setDisplay": {
        // Filters other than `value eq` need the member rows; they are rare (no known client sends them).
        const all = (await tx.groups.members([group.seq])).get(group.seq) ?? [];
        const bound = { urn: this.rs.core.id, inExtension: false, attr: this.rs.coreAttr("members")! };
        const hit = all.filter((m) => matches(this.rs, op.filter, { ...m }, bound));
        if (op.kind === "removeWhere") {
          await tx.groups.removeMembers(
            group.seq,
            hit.map((m) => m.value),
          );
          return;
        }
        if (hit.length === 0) throw badRequest("noTarget", "no member matches the filter");
        for (const m of hit) await tx.groups.setMemberDisplay(group.seq, m.value, op.display);
        return;
      }
    }
  }

  async delete(id: string, ctx: RequestContext): Promise<void> {
    const now = new Date().toISOString();
    await this.store.run(
      "groups.delete",
      async (tx) => {
        const current = await this.locked(tx, id, ctx);
        await tx.groups.delete(current, now);
        await tx.audit.record({
          ...auditBase(ctx, now),
          action: "delete",
          resourceType: "Group",
          resourceId: id,
          attributes: [],
        });
      },
      { guard: ctx.guard, answer: deletedResponse },
    );
  }
}
