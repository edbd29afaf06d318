/** Rows of scim_users and their attribute index. `doc` holds the whole resource; columns are derived from it. */
import type { Resource } from "../scim/model/attribute-path.js";
import type { ResourceSchema } from "../scim/model/schema.js";
import { indexRows } from "./attr-index.js";
import { allIn, insertRows, type Queryable } from "./db.js";
import { ValueTooLarge } from "./errors.js";
import { type Sql, USER_COLUMN_ATTRS } from "./filter-sql.js";
import {
  countRecords,
  type PageQuery,
  type ResourceRecord,
  type ResourceRow,
  selectRecords,
  toRecord,
} from "./records.js";

export type UserRecord = ResourceRecord;

export interface UserWrite {
  id: string;
  doc: Resource;
  /** undefined keeps the stored hash, null clears it. */
  passwordHash?: string | null;
  now: string;
}

/** A custom extension attribute copied to its own column of scim_users for the app to read. */
export interface CustomColumn {
  urn: string;
  attr: string;
  column: string;
  multiValued: boolean;
}

const SELECT = selectRecords("scim_users", "u");

function primaryEmail(doc: Resource): string | null {
  const emails = (doc.emails as Resource[] | undefined) ?? [];
  const e = emails.find((x) => x.primary === true) ?? emails[0];
  return typeof e?.value === "string" ? e.value : null;
}

function str(v: unknown): string | null {
  return typeof v === "string" ? v : null;
}

/** The VARCHAR widths of scim_users (src/store/migrations.ts), in characters, and the attribute each holds. */
const WIDTHS: Record<string, [number, string]> = {
  user_name: [255, "userName"],
  user_name_ci: [255, "userName (lower-cased)"],
  external_id: [255, "externalId"],
  display_name: [1024, "displayName"],
  given_name: [1024, "name.givenName"],
  family_name: [1024, "name.familyName"],
  email: [1024, "the primary email's value"],
};
/**
 * A user's whole document, as stored: one request's body is capped, but PATCH adds can grow a resource past any
 * body, and every list page and read would carry it.
 */
export const MAX_DOC_BYTES = 1_048_576;

/** `previous`: the stored document an update replaces; a resource already past the cap may shrink. */
function docJson(doc: Resource, previous?: Resource): string {
  const json = JSON.stringify(doc);
  if (json.length > MAX_DOC_BYTES / 4 && Buffer.byteLength(json) > MAX_DOC_BYTES) {
    const before = previous === undefined ? 0 : Buffer.byteLength(JSON.stringify(previous));
    if (Buffer.byteLength(json) > before)
      throw new ValueTooLarge("the resource", `would take more than ${MAX_DOC_BYTES} bytes`);
  }
  return json;
}

/** Custom string columns are VARCHAR(1024) (src/store/migrations.ts). */
const CUSTOM_STRING_WIDTH = 1024;

/**
 * Refuses a value wider than its column, on both stores: MySQL would refuse it with a bare error and SQLite
 * would keep it, so the two would disagree. Widths count characters (code points), as MySQL's VARCHAR does.
 */
function checkWidth(value: unknown, width: number, attribute: string): void {
  if (typeof value !== "string" || value.length <= width) return;
  const chars = [...value].length;
  if (chars > width) throw new ValueTooLarge(attribute, `is ${chars} characters long; at most ${width} fit`);
}

export class UserRepo {
  constructor(
    private readonly q: Queryable,
    private readonly rs: ResourceSchema,
    private readonly custom: CustomColumn[],
    private readonly forUpdate: string,
    /** SQL for a row's `doc` size in bytes (SQLite's LENGTH counts characters of TEXT). */
    private readonly docBytes: string,
  ) {}

  /**
   * The derived columns, each checked against its width. With `previous` (an update), only the columns whose
   * value changes are checked: a user stored before a width was enforced (SQLite keeps any length) stays
   * writable.
   */
  private columns(doc: Resource, previous?: Resource): Record<string, unknown> {
    const cols = this.values(doc);
    const before = previous === undefined ? undefined : this.values(previous);
    const check = (column: string, width: number, attribute: string) => {
      if (before === undefined || before[column] !== cols[column]) checkWidth(cols[column], width, attribute);
    };
    for (const [column, [width, attribute]] of Object.entries(WIDTHS)) check(column, width, attribute);
    for (const c of this.custom)
      if (!c.multiValued) check(c.column, CUSTOM_STRING_WIDTH, `${c.urn}:${c.attr}`);
    return cols;
  }

  private values(doc: Resource): Record<string, unknown> {
    const name = (doc.name as Resource | undefined) ?? {};
    const cols: Record<string, unknown> = {
      user_name: doc.userName,
      user_name_ci: String(doc.userName).toLowerCase(),
      external_id: str(doc.externalId),
      display_name: str(doc.displayName),
      given_name: str(name.givenName),
      family_name: str(name.familyName),
      email: primaryEmail(doc),
      // An absent `active` means active: Okta and Entra create users without it at times.
      active: doc.active === false ? 0 : 1,
    };
    for (const c of this.custom) {
      const v = (doc[c.urn] as Resource | undefined)?.[c.attr];
      cols[c.column] =
        v === undefined ? null : c.multiValued ? JSON.stringify(v) : typeof v === "boolean" ? (v ? 1 : 0) : v;
    }
    return cols;
  }

  async findById(id: string, lock = false): Promise<UserRecord | undefined> {
    const rows = await this.q.all<ResourceRow>(`${SELECT} WHERE u.id = ?${lock ? this.forUpdate : ""}`, [id]);
    return rows[0] ? toRecord(rows[0]) : undefined;
  }

  private row(w: UserWrite): Record<string, unknown> {
    return {
      id: w.id,
      ...this.columns(w.doc),
      created: w.now,
      last_modified: w.now,
      version: 1,
      doc: docJson(w.doc),
      password_hash: w.passwordHash ?? null,
    };
  }

  async insert(w: UserWrite): Promise<UserRecord> {
    const row = this.row(w);
    const names = Object.keys(row);
    const res = await this.q.run(
      `INSERT INTO scim_users (${names.join(", ")}) VALUES (${names.map(() => "?").join(", ")})`,
      Object.values(row),
    );
    await this.writeIndex([{ seq: res.lastId, doc: w.doc }]);
    return { seq: res.lastId, id: w.id, created: w.now, lastModified: w.now, version: 1, doc: w.doc };
  }

  /** Inserts users with multi-row statements: a batch costs a few statements, not a few per user. */
  async insertMany(ws: UserWrite[]): Promise<UserRecord[]> {
    if (ws.length === 0) return [];
    const rows = ws.map((w) => this.row(w));
    const names = Object.keys(rows[0]!);
    await insertRows(
      this.q,
      `INSERT INTO scim_users (${names.join(", ")})`,
      rows.map((r) => Object.values(r)),
    );
    // Read the sequence numbers back: consecutive auto-increment values are not promised (MySQL 8's default
    // innodb_autoinc_lock_mode interleaves concurrent inserts).
    const seqs = new Map<string, number>();
    const found = await allIn<{ seq: number; id: string }>(
      this.q,
      "SELECT seq, id FROM scim_users WHERE id IN",
      ws.map((w) => w.id),
    );
    for (const r of found) seqs.set(r.id, Number(r.seq));
    await this.writeIndex(ws.map((w) => ({ seq: seqs.get(w.id)!, doc: w.doc })));
    return ws.map((w) => ({
      seq: seqs.get(w.id)!,
      id: w.id,
      created: w.now,
      lastModified: w.now,
      version: 1,
      doc: w.doc,
    }));
  }

  /** Which of these lowercased userNames are taken. */
  async takenUserNames(namesCi: string[]): Promise<Set<string>> {
    const rows = await allIn<{ user_name_ci: string }>(
      this.q,
      "SELECT user_name_ci FROM scim_users WHERE user_name_ci IN",
      namesCi,
    );
    return new Set(rows.map((r) => r.user_name_ci));
  }

  async update(current: UserRecord, w: UserWrite): Promise<UserRecord> {
    const cols: Record<string, unknown> = {
      ...this.columns(w.doc, current.doc),
      last_modified: w.now,
      version: current.version + 1,
      doc: docJson(w.doc, current.doc),
    };
    if (w.passwordHash !== undefined) cols.password_hash = w.passwordHash;
    const names = Object.keys(cols);
    await this.q.run(`UPDATE scim_users SET ${names.map((n) => `${n} = ?`).join(", ")} WHERE seq = ?`, [
      ...Object.values(cols),
      current.seq,
    ]);
    await this.q.run("DELETE FROM scim_user_attrs WHERE owner = ?", [current.seq]);
    await this.writeIndex([{ seq: current.seq, doc: w.doc, previous: current.doc }]);
    return { ...current, lastModified: w.now, version: current.version + 1, doc: w.doc };
  }

  private async writeIndex(owners: { seq: number; doc: Resource; previous?: Resource }[]): Promise<void> {
    const rows = owners.flatMap(({ seq, doc, previous }) =>
      indexRows(this.rs, doc, USER_COLUMN_ATTRS, previous).map((r) => [
        seq,
        r.attr,
        r.pos,
        r.sub,
        r.vStr,
        r.vCi,
        r.vNum,
      ]),
    );
    if (rows.length)
      await insertRows(
        this.q,
        "INSERT INTO scim_user_attrs (owner, attr, pos, sub, v_str, v_ci, v_num)",
        rows,
      );
  }

  /** Deletes the user and its memberships; groups that lose a member get a new version. */
  async delete(current: UserRecord, now: string): Promise<void> {
    await this.q.run(
      "UPDATE scim_groups SET version = version + 1, last_modified = ? WHERE seq IN (SELECT group_seq FROM scim_group_members WHERE member_id = ?)",
      [now, current.id],
    );
    await this.q.run("DELETE FROM scim_group_members WHERE member_id = ?", [current.id]);
    await this.q.run("DELETE FROM scim_user_attrs WHERE owner = ?", [current.seq]);
    await this.q.run("DELETE FROM scim_users WHERE seq = ?", [current.seq]);
  }

  count(where: Sql): Promise<number> {
    return countRecords(this.q, "scim_users", "u", where);
  }

  private static page({ where, order, descending, offset, limit }: PageQuery) {
    const dir = descending ? "DESC" : "ASC";
    const orderSql = order ? `(${order.sql}) IS NULL, ${order.sql} ${dir}, u.seq ${dir}` : "u.seq";
    return {
      tail: `WHERE ${where.sql} ORDER BY ${orderSql} LIMIT ? OFFSET ?`,
      params: [...where.params, ...(order ? [...order.params, ...order.params] : []), limit, offset],
    };
  }

  async list(page: PageQuery): Promise<UserRecord[]> {
    const { tail, params } = UserRepo.page(page);
    return (await this.q.all<ResourceRow>(`${SELECT} ${tail}`, params)).map(toRecord);
  }

  /**
   * The same page as `list`, as each user's seq and stored size in bytes, without the documents: a caller can
   * then load them a few at a time (byId), so a page of large resources never sits in memory whole.
   */
  async listSizes(page: PageQuery): Promise<{ seq: number; bytes: number }[]> {
    const { tail, params } = UserRepo.page(page);
    const rows = await this.q.all<{ seq: number; n: number }>(
      `SELECT u.seq, ${this.docBytes} AS n FROM scim_users u ${tail}`,
      params,
    );
    return rows.map((r) => ({ seq: Number(r.seq), bytes: Number(r.n) }));
  }

  /** These users, in this order (a seq no longer there is left out). */
  async bySeq(seqs: number[]): Promise<UserRecord[]> {
    const rows = new Map(
      (await allIn<ResourceRow>(this.q, `${SELECT} WHERE u.seq IN`, seqs)).map((r) => [Number(r.seq), r]),
    );
    return seqs.flatMap((seq) => {
      const r = rows.get(seq);
      return r ? [toRecord(r)] : [];
    });
  }

  /** The groups each user is a direct member of (the readOnly `groups` attribute). */
  async groupsOf(userIds: string[]): Promise<Map<string, { value: string; display: string }[]>> {
    const out = new Map<string, { value: string; display: string }[]>();
    if (userIds.length === 0) return out;
    const rows = await this.q.all<{ member_id: string; id: string; display_name: string }>(
      `SELECT m.member_id, g.id, g.display_name FROM scim_group_members m JOIN scim_groups g ON g.seq = m.group_seq
       WHERE m.member_id IN (${userIds.map(() => "?").join(", ")}) ORDER BY g.seq`,
      userIds,
    );
    for (const r of rows) {
      const list = out.get(r.member_id) ?? [];
      list.push({ value: r.id, display: r.display_name });
      out.set(r.member_id, list);
    }
    return out;
  }
}
