/**
 * The HTTP answer of each SCIM write (RFC 7644 §3.3, §3.5, §3.6): status, ETag, Location and body. They are
 * pure functions of what the write returned, so the answer a request gets and the one recorded with its
 * Idempotency-Key (and replayed later) are the same by construction.
 */
import type { StoredResponse } from "../store/guards.js";
import type { Resource } from "./model/attribute-path.js";
import { etagOf } from "./render.js";

/** A written resource (as projected for the answer) and its new version. */
export interface Written {
  resource: Resource;
  version: number;
  /** A create's URL: the projected resource may leave `meta` out (`?attributes=userName`). */
  location?: string;
}

export function createdResponse(w: Written): StoredResponse {
  const location = w.location ?? (w.resource.meta as { location: string }).location;
  return { status: 201, headers: { ETag: etagOf(w.version), Location: location }, body: w.resource };
}

/** A replace or a patch that answers the resource. */
export function okResponse(w: Written): StoredResponse {
  return { status: 200, headers: { ETag: etagOf(w.version) }, body: w.resource };
}

export function deletedResponse(): StoredResponse {
  return { status: 204, headers: {} };
}

/** A group PATCH answers 204 with the new version unless the request asked for the group back. */
export function groupPatchResponse(w: { resource?: Resource; version: number }): StoredResponse {
  return w.resource ? okResponse(w as Written) : { status: 204, headers: { ETag: etagOf(w.version) } };
}
