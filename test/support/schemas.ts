import {
  enterpriseUserSchema,
  groupSchema,
  ResourceSchema,
  type SchemaDef,
  userSchema,
} from "../../src/scim/model/schema.js";

export const users = new ResourceSchema("User", "/Users", userSchema, [enterpriseUserSchema]);
export const groups = new ResourceSchema("Group", "/Groups", groupSchema);

/** The schema-less resource of Ping's evaluator vectors, given a schema so the typed evaluator can run them. */
const s = (name: string, extra: object = {}) => ({
  name,
  type: "string" as const,
  multiValued: false,
  required: false,
  caseExact: false,
  mutability: "readWrite" as const,
  returned: "default" as const,
  uniqueness: "none" as const,
  ...extra,
});
const pingCore: SchemaDef = {
  id: "urn:pingidentity:schemas:baseSchema",
  name: "Ping",
  description: "Ping vector resource",
  attributes: [
    s("name", { type: "complex", subAttributes: [s("first"), s("last"), s("middle")] }),
    s("shoeSize"),
    s("weight", { type: "decimal" }),
    s("children", { type: "integer" }),
    s("true", { type: "boolean" }),
    s("false", { type: "boolean" }),
    s("null"),
    s("unassigned"),
    s("empty", { multiValued: true }),
    s("password"),
    s("userName"),
    s("schemas", { multiValued: true, type: "reference", caseExact: true }),
    s("addresses", {
      type: "complex",
      multiValued: true,
      subAttributes: [
        s("type"),
        s("streetAddress"),
        s("locality"),
        s("region"),
        s("postalCode"),
        s("priority", { type: "integer" }),
        s("country"),
        s("formatted"),
        s("primary", { type: "boolean" }),
      ],
    }),
    s("friends", {
      type: "complex",
      multiValued: true,
      subAttributes: [s("displayName"), s("$ref", { type: "reference", caseExact: true })],
    }),
  ],
};
const favorite: SchemaDef = {
  id: "urn:pingidentity:schemas:favoriteColor",
  name: "Favorite",
  description: "",
  attributes: [s("favoriteColor")],
};
export const ping = new ResourceSchema("User", "/Users", pingCore, [favorite]);

/** The core schema URNs, which a create must name (RFC 7643 §3). */
export const USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User";
export const PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
export const GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group";
