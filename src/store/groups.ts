/** Rows of scim_groups and scim_group_members. Members never live in `doc`: each membership is its own row. */
import type { Resource } from "../scim/model/attribute-path.js";
import { IN_CHUNK, insertRows, placeholders, type Queryable } from "./db.js";
import type { Sql } from "./filter-sql.js";
import {
  countRecords,
  type PageQuery,
  type ResourceRecord,
  type ResourceRow,
  selectRecords,
  toRecord,
} from "./records.js";

export type GroupRecord = ResourceRecord;

export interface Member {
  value: string;
  type: "User" | "Group";
  display?: string;
}

const SELECT = selectRecords("scim_groups", "g");

export class GroupRepo {
  constructor(
    private readonly q: Queryable,
    private readonly forUpdate: string,
    /** `INSERT IGNORE` or SQLite's `INSERT OR IGNORE`. */
    private readonly insertIgnore: string,
  ) {}

  async findById(id: string, lock = false): Promise<GroupRecord | undefined> {
    const rows = await this.q.all<ResourceRow>(`${SELECT} WHERE g.id = ?${lock ? this.forUpdate : ""}`, [id]);
    return rows[0] ? toRecord(rows[0]) : undefined;
  }

  private columns(doc: Resource) {
    const name = String(doc.displayName);
    return {
      display_name: name,
      display_name_ci: name.toLowerCase(),
      external_id: typeof doc.externalId === "string" ? doc.externalId : null,
    };
  }

  async insert(id: string, doc: Resource, now: string): Promise<GroupRecord> {
    const c = this.columns(doc);
    const res = await this.q.run(
      "INSERT INTO scim_groups (id, display_name, display_name_ci, external_id, created, last_modified, version, doc) VALUES (?, ?, ?, ?, ?, ?, 1, ?)",
      [id, c.display_name, c.display_name_ci, c.external_id, now, now, JSON.stringify(doc)],
    );
    return { seq: res.lastId, id, created: now, lastModified: now, version: 1, doc };
  }

  async update(current: GroupRecord, doc: Resource, now: string): Promise<GroupRecord> {
    const c = this.columns(doc);
    await this.q.run(
      "UPDATE scim_groups SET display_name = ?, display_name_ci = ?, external_id = ?, last_modified = ?, version = ?, doc = ? WHERE seq = ?",
      [
        c.display_name,
        c.display_name_ci,
        c.external_id,
        now,
        current.version + 1,
        JSON.stringify(doc),
        current.seq,
      ],
    );
    return { ...current, lastModified: now, version: current.version + 1, doc };
  }

  async delete(current: GroupRecord, now: string): Promise<void> {
    await this.q.run(
      "UPDATE scim_groups SET version = version + 1, last_modified = ? WHERE seq IN (SELECT group_seq FROM scim_group_members WHERE member_id = ?)",
      [now, current.id],
    );
    await this.q.run("DELETE FROM scim_group_members WHERE member_id = ? OR group_seq = ?", [
      current.id,
      current.seq,
    ]);
    await this.q.run("DELETE FROM scim_groups WHERE seq = ?", [current.seq]);
  }

  count(where: Sql): Promise<number> {
    return countRecords(this.q, "scim_groups", "g", where);
  }

  async list({ where, order, descending, offset, limit }: PageQuery): Promise<GroupRecord[]> {
    const dir = descending ? "DESC" : "ASC";
    const orderSql = order ? `${order.sql} ${dir}, g.seq ${dir}` : "g.seq";
    const rows = await this.q.all<ResourceRow>(
      `${SELECT} WHERE ${where.sql} ORDER BY ${orderSql} LIMIT ? OFFSET ?`,
      [...where.params, ...(order?.params ?? []), limit, offset],
    );
    return rows.map(toRecord);
  }

  async members(groupSeqs: number[]): Promise<Map<number, Member[]>> {
    const out = new Map<number, Member[]>();
    for (let i = 0; i < groupSeqs.length; i += IN_CHUNK) {
      const chunk = groupSeqs.slice(i, i + IN_CHUNK);
      const rows = await this.q.all<{
        group_seq: number;
        member_id: string;
        member_type: string;
        display: string | null;
      }>(
        `SELECT group_seq, member_id, member_type, display FROM scim_group_members WHERE group_seq IN (${placeholders(chunk.length)}) ORDER BY group_seq, member_id`,
        chunk,
      );
      for (const r of rows) {
        const seq = Number(r.group_seq);
        const list = out.get(seq) ?? [];
        const m: Member = { value: r.member_id, type: r.member_type as Member["type"] };
        if (r.display !== null) m.display = r.display;
        list.push(m);
        out.set(seq, list);
      }
    }
    return out;
  }

  /** Which of `ids` exist, and as what: a member must reference a real user or group. */
  async resolveMembers(
    ids: string[],
  ): Promise<Map<string, { type: Member["type"]; display: string | null }>> {
    const out = new Map<string, { type: Member["type"]; display: string | null }>();
    for (let i = 0; i < ids.length; i += IN_CHUNK) {
      const chunk = ids.slice(i, i + IN_CHUNK);
      const p = placeholders(chunk.length);
      const users = await this.q.all<{ id: string; display_name: string | null; user_name: string }>(
        `SELECT id, display_name, user_name FROM scim_users WHERE id IN (${p})`,
        chunk,
      );
      for (const u of users) out.set(u.id, { type: "User", display: u.display_name ?? u.user_name });
      const groups = await this.q.all<{ id: string; display_name: string }>(
        `SELECT id, display_name FROM scim_groups WHERE id IN (${p})`,
        chunk,
      );
      for (const g of groups) out.set(g.id, { type: "Group", display: g.display_name });
    }
    return out;
  }

  async addMembers(groupSeq: number, members: Member[]): Promise<number> {
    return insertRows(
      this.q,
      `${this.insertIgnore} INTO scim_group_members (group_seq, member_id, member_type, display)`,
      members.map((m) => [groupSeq, m.value, m.type, m.display ?? null]),
    );
  }

  async removeMembers(groupSeq: number, ids: string[]): Promise<number> {
    let removed = 0;
    for (let i = 0; i < ids.length; i += IN_CHUNK) {
      const chunk = ids.slice(i, i + IN_CHUNK);
      const res = await this.q.run(
        `DELETE FROM scim_group_members WHERE group_seq = ? AND member_id IN (${placeholders(chunk.length)})`,
        [groupSeq, ...chunk],
      );
      removed += res.changes;
    }
    return removed;
  }

  async removeAllMembers(groupSeq: number): Promise<number> {
    return (await this.q.run("DELETE FROM scim_group_members WHERE group_seq = ?", [groupSeq])).changes;
  }

  async setMemberDisplay(groupSeq: number, id: string, display: string | null): Promise<number> {
    return (
      await this.q.run("UPDATE scim_group_members SET display = ? WHERE group_seq = ? AND member_id = ?", [
        display,
        groupSeq,
        id,
      ])
    ).changes;
  }

  async hasMembers(groupSeq: number, ids: string[]): Promise<Set<string>> {
    const out = new Set<string>();
    for (let i = 0; i < ids.length; i += IN_CHUNK) {
      const chunk = ids.slice(i, i + IN_CHUNK);
      const rows = await this.q.all<{ member_id: string }>(
        `SELECT member_id FROM scim_group_members WHERE group_seq = ? AND member_id IN (${placeholders(chunk.length)})`,
        [groupSeq, ...chunk],
      );
      for (const r of rows) out.add(r.member_id);
    }
    return out;
  }
}
