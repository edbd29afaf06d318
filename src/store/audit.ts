/** The audit trail: who changed which resource, when, with which request id. It records attribute names only. */
import { insertRows, type Queryable } from "./db.js";

export interface AuditEntry {
  at: string;
  requestId: string | undefined;
  actor: string;
  client: string | undefined;
  action: "create" | "replace" | "patch" | "delete";
  resourceType: "User" | "Group";
  resourceId: string;
  attributes: string[];
  /** The agent's Idempotency-Key, which names the source event this write applies. */
  idempotencyKey?: string | undefined;
  /** The agent's fencing token (its term); none for plain SCIM clients. */
  fencingToken?: number | undefined;
}

export class AuditRepo {
  constructor(private readonly q: Queryable) {}

  async record(e: AuditEntry): Promise<void> {
    await this.recordMany([e]);
  }

  async recordMany(entries: AuditEntry[]): Promise<void> {
    await insertRows(
      this.q,
      "INSERT INTO scim_audit (at, request_id, actor, client, action, resource_type, resource_id, attributes, idempotency_key, fencing_token)",
      entries.map(row),
    );
  }
}

function row(e: AuditEntry): unknown[] {
  return [
    e.at,
    e.requestId?.slice(0, 128) ?? null,
    e.actor.slice(0, 255),
    e.client?.slice(0, 255) ?? null,
    e.action,
    e.resourceType,
    e.resourceId,
    JSON.stringify(e.attributes),
    e.idempotencyKey ?? null,
    e.fencingToken ?? null,
  ];
}
