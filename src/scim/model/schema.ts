/**
 * Attribute definitions in RFC 7643 §7 form. They drive validation, PATCH, filters and projection,
 * and /Schemas serves them as they are.
 */
export type AttrType =
  | "string"
  | "boolean"
  | "decimal"
  | "integer"
  | "dateTime"
  | "binary"
  | "reference"
  | "complex";
export type Mutability = "readOnly" | "readWrite" | "immutable" | "writeOnly";
export type Returned = "always" | "never" | "default" | "request";

export interface AttrDef {
  name: string;
  type: AttrType;
  multiValued: boolean;
  description?: string;
  required: boolean;
  caseExact: boolean;
  mutability: Mutability;
  returned: Returned;
  uniqueness: "none" | "server" | "global";
  subAttributes?: AttrDef[];
  canonicalValues?: string[];
  referenceTypes?: string[];
}

export interface SchemaDef {
  id: string;
  name: string;
  description: string;
  attributes: AttrDef[];
}

type AttrOpts = Partial<Omit<AttrDef, "name" | "type">>;

function attr(name: string, type: AttrType, opts: AttrOpts = {}): AttrDef {
  return {
    name,
    type,
    multiValued: false,
    required: false,
    caseExact: false,
    mutability: "readWrite",
    returned: "default",
    uniqueness: "none",
    ...opts,
  };
}

const str = (name: string, opts: AttrOpts = {}) => attr(name, "string", opts);
const complex = (name: string, subAttributes: AttrDef[], opts: AttrOpts = {}) =>
  attr(name, "complex", { subAttributes, ...opts });

/** The sub-attributes RFC 7643 §2.4 gives every multi-valued attribute, with the value's own type. */
function multi(name: string, valueType: AttrType = "string", extra: AttrDef[] = [], typeValues?: string[]) {
  return complex(
    name,
    [
      attr("value", valueType),
      str("display"),
      str("type", typeValues ? { canonicalValues: typeValues } : {}),
      attr("primary", "boolean"),
      ...extra,
    ],
    { multiValued: true },
  );
}

export const CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User";
export const CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group";
export const ENTERPRISE_USER = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
export const DEFAULT_CUSTOM_USER = "urn:ietf:params:scim:schemas:extension:provisiond:2.0:User";

export const userSchema: SchemaDef = {
  id: CORE_USER,
  name: "User",
  description: "User Account",
  attributes: [
    str("userName", { required: true, uniqueness: "server" }),
    complex("name", [
      str("formatted"),
      str("familyName"),
      str("givenName"),
      str("middleName"),
      str("honorificPrefix"),
      str("honorificSuffix"),
    ]),
    str("displayName"),
    str("nickName"),
    attr("profileUrl", "reference", { referenceTypes: ["external"], caseExact: true }),
    str("title"),
    str("userType"),
    str("preferredLanguage"),
    str("locale"),
    str("timezone"),
    attr("active", "boolean"),
    str("password", { mutability: "writeOnly", returned: "never", caseExact: true }),
    multi("emails", "string", [], ["work", "home", "other"]),
    multi("phoneNumbers", "string", [], ["work", "home", "mobile", "fax", "pager", "other"]),
    multi("ims", "string", [], ["aim", "gtalk", "icq", "xmpp", "msn", "skype", "qq", "yahoo"]),
    multi("photos", "reference", [], ["photo", "thumbnail"]),
    complex(
      "addresses",
      [
        str("formatted"),
        str("streetAddress"),
        str("locality"),
        str("region"),
        str("postalCode"),
        str("country"),
        str("type", { canonicalValues: ["work", "home", "other"] }),
        attr("primary", "boolean"),
      ],
      { multiValued: true },
    ),
    complex(
      "groups",
      [
        str("value", { mutability: "readOnly" }),
        attr("$ref", "reference", {
          referenceTypes: ["User", "Group"],
          mutability: "readOnly",
          caseExact: true,
        }),
        str("display", { mutability: "readOnly" }),
        str("type", { mutability: "readOnly", canonicalValues: ["direct", "indirect"] }),
      ],
      { multiValued: true, mutability: "readOnly" },
    ),
    multi("entitlements"),
    multi("roles"),
    multi("x509Certificates", "binary"),
  ],
};

export const enterpriseUserSchema: SchemaDef = {
  id: ENTERPRISE_USER,
  name: "EnterpriseUser",
  description: "Enterprise User",
  attributes: [
    str("employeeNumber"),
    str("costCenter"),
    str("organization"),
    str("division"),
    str("department"),
    complex("manager", [
      str("value"),
      attr("$ref", "reference", { referenceTypes: ["User"], caseExact: true }),
      str("displayName", { mutability: "readOnly" }),
    ]),
  ],
};

export const groupSchema: SchemaDef = {
  id: CORE_GROUP,
  name: "Group",
  description: "Group",
  attributes: [
    str("displayName", { required: true }),
    complex(
      "members",
      [
        str("value", { mutability: "immutable", caseExact: true }),
        attr("$ref", "reference", {
          referenceTypes: ["User", "Group"],
          mutability: "immutable",
          caseExact: true,
        }),
        str("display"),
        str("type", { mutability: "immutable", canonicalValues: ["User", "Group"] }),
      ],
      { multiValued: true },
    ),
  ],
};

/** Attributes every resource has (RFC 7643 §3.1); they live outside the schemas' attribute lists. */
export const commonAttributes: AttrDef[] = [
  str("id", { mutability: "readOnly", returned: "always", caseExact: true, uniqueness: "server" }),
  str("externalId", { caseExact: true }),
  complex(
    "meta",
    [
      str("resourceType", { mutability: "readOnly", caseExact: true }),
      attr("created", "dateTime", { mutability: "readOnly" }),
      attr("lastModified", "dateTime", { mutability: "readOnly" }),
      attr("location", "reference", { mutability: "readOnly", caseExact: true }),
      str("version", { mutability: "readOnly", caseExact: true }),
    ],
    { mutability: "readOnly" },
  ),
];

/** A custom extension attribute as the operator configures it: SCIM name, type and the column it maps to. */
export interface CustomAttrConfig {
  name: string;
  type: "string" | "boolean" | "integer" | "decimal" | "dateTime";
  column: string;
  multiValued?: boolean;
  caseExact?: boolean;
  required?: boolean;
  description?: string;
}

export interface CustomSchemaConfig {
  urn: string;
  name?: string;
  attributes: CustomAttrConfig[];
}

export function customSchemaDef(cfg: CustomSchemaConfig): SchemaDef {
  return {
    id: cfg.urn,
    name: cfg.name ?? "ProvisiondUser",
    description: "Custom user attributes mapped to columns of the app's user table",
    attributes: cfg.attributes.map((a) =>
      attr(a.name, a.type, {
        multiValued: a.multiValued ?? false,
        caseExact: a.caseExact ?? false,
        required: a.required ?? false,
        ...(a.description ? { description: a.description } : {}),
      }),
    ),
  };
}

/** A resource type: its core schema plus extensions; the lookup helpers resolve names case-insensitively (RFC 7643 §2.1). */
export class ResourceSchema {
  readonly extensions: SchemaDef[];
  private readonly coreByName = new Map<string, AttrDef>();
  private readonly extByUrn = new Map<string, SchemaDef>();

  constructor(
    readonly name: "User" | "Group",
    readonly endpoint: string,
    readonly core: SchemaDef,
    extensions: SchemaDef[] = [],
  ) {
    this.extensions = extensions;
    for (const a of [...commonAttributes, ...core.attributes]) this.coreByName.set(a.name.toLowerCase(), a);
    for (const e of extensions) this.extByUrn.set(e.id.toLowerCase(), e);
  }

  get schemaUrns(): string[] {
    return [this.core.id, ...this.extensions.map((e) => e.id)];
  }

  coreAttr(name: string): AttrDef | undefined {
    return this.coreByName.get(name.toLowerCase());
  }

  extension(urn: string): SchemaDef | undefined {
    if (urn.toLowerCase() === this.core.id.toLowerCase()) return this.core;
    return this.extByUrn.get(urn.toLowerCase());
  }

  /** Splits "urn:...:User:attr.sub" into its schema URN and the rest, if it starts with a known URN. */
  splitUrn(path: string): { urn: string | undefined; rest: string } {
    const lower = path.toLowerCase();
    for (const s of [this.core, ...this.extensions]) {
      const id = s.id.toLowerCase();
      if (lower === id) return { urn: s.id, rest: "" };
      if (lower.startsWith(id + ":")) return { urn: s.id, rest: path.slice(id.length + 1) };
    }
    return { urn: undefined, rest: path };
  }
}

export function subAttr(def: AttrDef, name: string): AttrDef | undefined {
  const lower = name.toLowerCase();
  return def.subAttributes?.find((s) => s.name.toLowerCase() === lower);
}
