/**
 * The history checker: reads the audit trail after a scenario and checks what end-state comparisons cannot
 * see, since an agent that applies current state heals over lost or stale writes:
 *  - in audit seq (commit) order, the agent's fencing tokens never decrease: no write of a deposed primary
 *    landed after a newer term's;
 *  - no source event step (its Idempotency-Key, `<event id>:<step>`) was applied by two writes.
 */
import assert from "node:assert/strict";

export type Query = <T = Record<string, unknown>>(sql: string, params?: unknown[]) => Promise<T[]>;

export interface History {
  /** Audit rows, and those written by an agent (with a fencing token). */
  writes: number;
  agentWrites: number;
  /** Agent writes whose token is lower than one committed before them. */
  stale: { seq: number; token: number; after: number; key: string | null }[];
  /** Idempotency keys applied by more than one write. */
  appliedTwice: { key: string; writes: number }[];
  /** The distinct terms that wrote, in the order they first wrote. */
  terms: number[];
}

export async function readHistory(query: Query): Promise<History> {
  const rows = await query<{
    seq: number;
    fencing_token: number | string | null;
    idempotency_key: string | null;
  }>("SELECT seq, fencing_token, idempotency_key FROM scim_audit ORDER BY seq");
  const h: History = { writes: rows.length, agentWrites: 0, stale: [], appliedTwice: [], terms: [] };
  let highest = 0;
  const byKey = new Map<string, number>();
  for (const r of rows) {
    if (r.idempotency_key !== null) byKey.set(r.idempotency_key, (byKey.get(r.idempotency_key) ?? 0) + 1);
    if (r.fencing_token === null) continue;
    const token = Number(r.fencing_token);
    h.agentWrites++;
    if (token < highest) h.stale.push({ seq: Number(r.seq), token, after: highest, key: r.idempotency_key });
    if (token > highest) {
      highest = token;
      h.terms.push(token);
    }
  }
  for (const [key, writes] of byKey) if (writes > 1) h.appliedTwice.push({ key, writes });
  return h;
}

/** Asserts the history holds; returns it for scenario-specific checks. */
export async function assertHistory(query: Query): Promise<History> {
  const h = await readHistory(query);
  assert.deepEqual(h.stale, [], "a write of a deposed primary landed after a newer term's writes");
  assert.deepEqual(h.appliedTwice, [], "a source event was applied by two writes");
  return h;
}
