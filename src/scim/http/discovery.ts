/** /ServiceProviderConfig, /ResourceTypes and /Schemas (RFC 7644 §4, RFC 7643 §5–7). */
import { Router } from "express";
import { listResponse } from "../list.js";
import { notFound } from "../model/errors.js";
import type { ResourceSchema, SchemaDef } from "../model/schema.js";
import { baseUrlOf, sendScim } from "./respond.js";

export interface DiscoveryOptions {
  maxResults: number;
  bulkMaxOperations: number;
  maxBodyBytes: number;
  passwordSync: boolean;
  basic: boolean;
  bearer: boolean;
  header?: string;
}

export function discoveryRouter(
  types: ResourceSchema[],
  opts: DiscoveryOptions,
  publicBaseUrl: string | undefined,
): Router {
  const r = Router();
  const schemas: SchemaDef[] = [];
  for (const t of types)
    for (const s of [t.core, ...t.extensions]) if (!schemas.some((x) => x.id === s.id)) schemas.push(s);

  const spc = (base: string) => ({
    schemas: ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
    documentationUri: "https://datatracker.ietf.org/doc/html/rfc7644",
    patch: { supported: true },
    bulk: {
      supported: opts.bulkMaxOperations > 0,
      maxOperations: opts.bulkMaxOperations,
      maxPayloadSize: opts.bulkMaxOperations > 0 ? opts.maxBodyBytes : 0,
    },
    filter: { supported: true, maxResults: opts.maxResults },
    changePassword: { supported: opts.passwordSync },
    sort: { supported: true },
    etag: { supported: true },
    authenticationSchemes: [
      ...(opts.bearer
        ? [
            {
              type: "oauthbearertoken",
              name: "OAuth Bearer Token",
              description: "Authentication with a bearer token",
              primary: true,
            },
          ]
        : []),
      ...(opts.basic
        ? [{ type: "httpbasic", name: "HTTP Basic", description: "Authentication with HTTP Basic" }]
        : []),
      ...(opts.header
        ? [
            {
              type: "custom",
              name: "HTTP header",
              description: `A secret in the ${opts.header} header (Okta's custom header mode)`,
            },
          ]
        : []),
    ],
    meta: { resourceType: "ServiceProviderConfig", location: `${base}/ServiceProviderConfig` },
  });
  r.get("/ServiceProviderConfig", (req, res) => sendScim(res, 200, spc(baseUrlOf(req, publicBaseUrl))));

  const resourceType = (t: ResourceSchema, base: string) => ({
    schemas: ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
    id: t.name,
    name: t.name,
    endpoint: t.endpoint,
    description: t.core.description,
    schema: t.core.id,
    schemaExtensions: t.extensions.map((e) => ({ schema: e.id, required: false })),
    meta: { resourceType: "ResourceType", location: `${base}/ResourceTypes/${t.name}` },
  });
  r.get("/ResourceTypes", (req, res) => {
    const base = baseUrlOf(req, publicBaseUrl);
    const list = types.map((t) => resourceType(t, base));
    sendScim(res, 200, listResponse(list.length, 1, list));
  });
  r.get("/ResourceTypes/:name", (req, res) => {
    const t = types.find((x) => x.name.toLowerCase() === String(req.params.name).toLowerCase());
    if (!t) throw notFound(`resource type ${req.params.name} not found`);
    sendScim(res, 200, resourceType(t, baseUrlOf(req, publicBaseUrl)));
  });

  const schemaJson = (s: SchemaDef, base: string) => ({
    schemas: ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
    ...s,
    meta: { resourceType: "Schema", location: `${base}/Schemas/${s.id}` },
  });
  r.get("/Schemas", (req, res) => {
    const base = baseUrlOf(req, publicBaseUrl);
    const list = schemas.map((s) => schemaJson(s, base));
    sendScim(res, 200, listResponse(list.length, 1, list));
  });
  r.get("/Schemas/:id", (req, res) => {
    const s = schemas.find((x) => x.id.toLowerCase() === String(req.params.id).toLowerCase());
    if (!s) throw notFound(`schema ${req.params.id} not found`);
    sendScim(res, 200, schemaJson(s, baseUrlOf(req, publicBaseUrl)));
  });
  return r;
}
