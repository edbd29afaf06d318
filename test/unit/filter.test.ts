import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { matches } from "../../src/scim/filter-eval.js";
import { type Filter, parseFilter, parsePath } from "../../src/scim/model/filter.js";
import { scimErrorOf } from "../support/errors.js";
import { ping, users } from "../support/schemas.js";
import { vectors } from "../support/vectors.js";

interface PingParsing {
  valid: { filter: string; expected: unknown }[];
  invalid: { filter: string }[];
}

/** Ping's AST names the comparison value `value` and keeps and/or binary, as ours does. */
function strip(f: Filter): unknown {
  return JSON.parse(JSON.stringify(f));
}

describe("filter parser: Ping parsing vectors", () => {
  const v = vectors<PingParsing>("ping-filter-parsing.json");
  for (const c of v.valid) {
    it(`parses ${c.filter}`, () => {
      const got = strip(parseFilter(c.filter)) as Record<string, unknown>;
      const rename = (x: unknown): unknown => {
        if (Array.isArray(x)) return x.map(rename);
        if (x && typeof x === "object")
          return Object.fromEntries(Object.entries(x).map(([k, val]) => [k, rename(val)]));
        return x;
      };
      assert.deepEqual(rename(got), c.expected);
    });
  }
  for (const c of v.invalid) {
    it(`refuses ${JSON.stringify(c.filter)}`, () => {
      assert.equal(
        scimErrorOf(() => parseFilter(c.filter)),
        "400:invalidFilter",
      );
    });
  }
});

describe("filter parser: go-scim2 vectors", () => {
  const v = vectors<{ valid_filters: string[]; precedence: { filter: string; canonical: string }[] }>(
    "go-scim2-filter-parser.json",
  );
  for (const f of v.valid_filters) it(`parses ${f}`, () => assert.ok(parseFilter(f)));
  for (const c of v.precedence) {
    it(`groups ${c.filter} as ${c.canonical}`, () => {
      assert.deepEqual(parseFilter(c.filter), parseFilter(c.canonical));
    });
  }
});

describe("filter parser: hostile input", () => {
  it("refuses nesting deeper than the bound with invalidFilter, not a stack overflow", () => {
    const deep = `${"(".repeat(5000)}userName eq "x"${")".repeat(5000)}`;
    assert.equal(
      scimErrorOf(() => parseFilter(deep, { maxLength: 100_000 })),
      "400:invalidFilter",
    );
    const nots = `${"not (".repeat(40)}userName pr${")".repeat(40)}`;
    assert.equal(
      scimErrorOf(() => parseFilter(nots)),
      "400:invalidFilter",
    );
  });
  it("refuses a filter over the length limit", () => {
    assert.equal(
      scimErrorOf(() => parseFilter(`userName eq "${"a".repeat(5000)}"`)),
      "400:invalidFilter",
    );
  });
  it("keeps SQL meta-characters as plain string data", () => {
    const f = parseFilter(`userName eq "x' OR 1=1; DROP TABLE scim_users; --"`);
    assert.deepEqual(f, { op: "eq", attrPath: "userName", value: "x' OR 1=1; DROP TABLE scim_users; --" });
  });
  it("refuses unquoted strings (Microsoft's collection sends them; RFC 7644 requires quotes)", () => {
    assert.equal(
      scimErrorOf(() => parseFilter("userName sw O")),
      "400:invalidFilter",
    );
  });
});

describe("PATCH path parser: Ping path vectors", () => {
  const v = vectors<{ valid_paths: string[]; invalid_paths: string[] }>("ping-path-parsing.json");
  // RFC 7644 §3.5.2's PATH grammar is attrPath / valuePath [subAttr]; Ping also accepts an empty path (we treat
  // a missing path separately) and chains of filters and sub-attributes, which the RFC grammar does not allow.
  const beyondRfc = new Set([
    "",
    'urn:extension:attr[subAttr eq "78750"].subAttr[subSub pr].this.is.crazy[type eq "good"].deep',
  ]);
  for (const p of v.valid_paths.filter((x) => !beyondRfc.has(x)))
    it(`parses ${p}`, () => assert.ok(parsePath(p)));
  for (const p of [...v.invalid_paths, ...beyondRfc]) {
    it(`refuses ${JSON.stringify(p)}`, () =>
      assert.equal(
        scimErrorOf(() => parsePath(p)),
        "400:invalidPath",
      ));
  }
  it("splits a value path with a sub-attribute", () => {
    assert.deepEqual(parsePath('emails[type eq "work"].value'), {
      attrPath: "emails",
      filter: { op: "eq", attrPath: "type", value: "work" },
      subAttr: "value",
    });
  });
});

describe("filter evaluation: Ping evaluator vectors", () => {
  const v = vectors<{ resource: Record<string, unknown>; cases: { filter: string; expected: boolean }[] }>(
    "ping-filter-evaluation.json",
  );
  const resource = { ...v.resource, meta: undefined };
  const withMeta = { ...v.resource };
  for (const c of v.cases) {
    it(`${c.filter} → ${c.expected}`, () => {
      const f = parseFilter(c.filter);
      const r = c.filter.startsWith("meta.") ? withMeta : resource;
      assert.equal(matches(ping, f, r), c.expected);
    });
  }
});

describe("filter evaluation: RFC semantics on the User schema", () => {
  const user = {
    userName: "BJensen",
    emails: [
      { value: "bjensen@example.com", type: "work", primary: true },
      { value: "babs@jensen.org", type: "home" },
    ],
    active: true,
  };
  const t = (f: string) => matches(users, parseFilter(f), user);
  it("userName is caseExact:false", () => assert.equal(t('userName eq "bjensen"'), true));
  it("a complex filter needs one value to meet every condition", () => {
    assert.equal(t('emails[type eq "work" and value co "@example"]'), true);
    assert.equal(t('emails[type eq "home" and value co "@example"]'), false);
  });
  it("emails compares as emails.value", () => assert.equal(t('emails co "jensen.org"'), true));
  it("refuses unknown attributes and mistyped comparisons", () => {
    assert.equal(
      scimErrorOf(() => t('nosuch eq "x"')),
      "400:invalidFilter",
    );
    assert.equal(
      scimErrorOf(() => t('active eq "yes"')),
      "400:invalidFilter",
    );
    assert.equal(
      scimErrorOf(() => t("active gt true")),
      "400:invalidFilter",
    );
    assert.equal(
      scimErrorOf(() => t('name eq "x"')),
      "400:invalidFilter",
    );
  });
});
