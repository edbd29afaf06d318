import type { WriteGuard } from "../store/guards.js";

/** What a SCIM operation knows about the request it serves. */
export interface RequestContext {
  /** e.g. https://scim.example.com/scim/v2 — the prefix of meta.location. */
  baseUrl: string;
  actor: string;
  client?: string;
  requestId?: string;
  ifMatch?: string;
  /** Fencing token and idempotency key of an agent's write. */
  guard?: WriteGuard;
}

/** The audit fields every write shares. */
export function auditBase(ctx: RequestContext, at: string) {
  return {
    at,
    requestId: ctx.requestId,
    actor: ctx.actor,
    client: ctx.client,
    idempotencyKey: ctx.guard?.idempotencyKey,
    fencingToken: ctx.guard?.fencingToken,
  };
}

export interface ListResult {
  schemas: string[];
  totalResults: number;
  itemsPerPage: number;
  startIndex: number;
  Resources: Record<string, unknown>[];
}

/** Names of the attributes that differ between two versions, for the audit trail (values are never recorded). */
export function changedAttributes(before: Record<string, unknown>, after: Record<string, unknown>): string[] {
  const out: string[] = [];
  for (const k of new Set([...Object.keys(before), ...Object.keys(after)])) {
    if (JSON.stringify(before[k]) !== JSON.stringify(after[k])) out.push(k);
  }
  return out.sort();
}
