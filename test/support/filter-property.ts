/** Shared by the SQLite and MariaDB property tests: random users, random filters, SQL vs evaluator. */
import assert from "node:assert/strict";
import fc from "fast-check";
import { Metrics } from "../../src/observability/metrics.js";
import { matches } from "../../src/scim/filter-eval.js";
import type { Resource } from "../../src/scim/model/attribute-path.js";
import type { Filter } from "../../src/scim/model/filter.js";
import {
  customSchemaDef,
  enterpriseUserSchema,
  ResourceSchema,
  userSchema,
} from "../../src/scim/model/schema.js";
import { normalizeBody } from "../../src/scim/resource.js";
import { compileUserFilter } from "../../src/store/filter-sql.js";
import { AppStore } from "../../src/store/index.js";

const CUSTOM = "urn:ietf:params:scim:schemas:extension:provisiond:2.0:User";
export const propertySchema = new ResourceSchema("User", "/Users", userSchema, [
  enterpriseUserSchema,
  customSchemaDef({
    urn: CUSTOM,
    attributes: [
      { name: "level", type: "integer", column: "x_level" },
      { name: "score", type: "decimal", column: "x_score" },
      { name: "hired", type: "dateTime", column: "x_hired" },
      { name: "code", type: "string", column: "x_code", caseExact: true },
      { name: "tags", type: "string", column: "x_tags", multiValued: true },
    ],
  }),
]);

const STRINGS = ["a", "A", "ab", "Ab", "aB", "b", "ba", "%", "_", "!", "a%b", "a_b", "ä", "Ä", "z"];
const DATES = [
  "2020-01-01T00:00:00.000Z",
  "2021-06-15T12:30:00.000Z",
  "2021-06-15T12:30:00.001Z",
  "2030-12-31T23:59:59.999Z",
];
const str = fc.constantFrom(...STRINGS);
const maybe = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: undefined });

const userArb = fc.record({
  displayName: maybe(str),
  title: maybe(str),
  active: maybe(fc.boolean()),
  name: maybe(fc.record({ givenName: maybe(str), familyName: maybe(str) })),
  emails: maybe(
    fc.array(
      fc.record({
        value: str,
        type: maybe(fc.constantFrom("work", "home", "Work")),
        primary: maybe(fc.constant(true)),
      }),
      {
        maxLength: 3,
      },
    ),
  ),
  dept: maybe(str),
  level: maybe(fc.integer({ min: -2, max: 3 })),
  score: maybe(fc.constantFrom(-1.5, 0, 0.25, 2)),
  hired: maybe(fc.constantFrom(...DATES)),
  code: maybe(str),
  tags: maybe(fc.array(str, { maxLength: 3 })),
});

type GeneratedUser = typeof userArb extends fc.Arbitrary<infer T> ? T : never;

function toResource(u: GeneratedUser, i: number): Resource {
  const emails = u.emails?.map((e, j) => ({ ...e, primary: e.primary && j === 0 ? true : undefined }));
  const ext: Resource = { level: u.level, score: u.score, hired: u.hired, code: u.code, tags: u.tags };
  return JSON.parse(
    JSON.stringify({
      userName: `user${i}${STRINGS[i % STRINGS.length]}`,
      displayName: u.displayName,
      title: u.title,
      active: u.active,
      name: u.name,
      emails,
      "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": u.dept
        ? { department: u.dept }
        : undefined,
      [CUSTOM]: ext,
    }),
  );
}

const stringPaths = [
  "userName",
  "displayName",
  "title",
  "name.givenName",
  "name.familyName",
  "emails",
  "emails.value",
  "emails.type",
  "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
  `${CUSTOM}:code`,
  `${CUSTOM}:tags`,
  "externalId",
];
const numberPaths = [`${CUSTOM}:level`, `${CUSTOM}:score`];

const leaf: fc.Arbitrary<Filter> = fc.oneof(
  fc.record({
    op: fc.constantFrom("eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le") as fc.Arbitrary<"eq">,
    attrPath: fc.constantFrom(...stringPaths),
    value: str,
  }),
  fc.record({
    op: fc.constantFrom("eq", "ne", "gt", "ge", "lt", "le") as fc.Arbitrary<"eq">,
    attrPath: fc.constantFrom(...numberPaths),
    value: fc.constantFrom(-1, 0, 0.25, 1, 2.5),
  }),
  fc.record({
    op: fc.constantFrom("eq", "ne", "gt", "ge", "lt", "le") as fc.Arbitrary<"eq">,
    attrPath: fc.constantFrom("meta.created", `${CUSTOM}:hired`),
    value: fc.constantFrom(...DATES, "2021-06-15T14:30:00+02:00"),
  }),
  fc.record({
    op: fc.constantFrom("eq", "ne") as fc.Arbitrary<"eq">,
    attrPath: fc.constantFrom("active", "emails.primary"),
    value: fc.boolean(),
  }),
  fc.record({
    op: fc.constantFrom("eq", "ne") as fc.Arbitrary<"eq">,
    attrPath: fc.constantFrom(...stringPaths, ...numberPaths),
    value: fc.constant(null),
  }),
  fc.record({
    op: fc.constant("pr" as const),
    attrPath: fc.constantFrom(...stringPaths, ...numberPaths, "name", "active"),
  }),
);

const inner: fc.Arbitrary<Filter> = fc.oneof(
  fc.record({
    op: fc.constantFrom("eq", "ne", "co", "sw") as fc.Arbitrary<"eq">,
    attrPath: fc.constantFrom("value", "type"),
    value: str,
  }),
  fc.record({
    op: fc.constant("eq" as const),
    attrPath: fc.constant("type"),
    value: fc.constantFrom("work", "home"),
  }),
  fc.record({ op: fc.constant("pr" as const), attrPath: fc.constantFrom("value", "type", "primary") }),
);
const valuePath: fc.Arbitrary<Filter> = fc
  .tuple(inner, fc.option(inner), fc.constantFrom("and", "or") as fc.Arbitrary<"and">)
  .map(([a, b, op]) => ({ op: "valuePath", attrPath: "emails", filter: b ? { op, filters: [a, b] } : a }));

const filterArb: fc.Arbitrary<Filter> = fc.letrec<{ f: Filter }>((tie) => ({
  f: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    leaf,
    valuePath,
    fc.record({
      op: fc.constantFrom("and", "or") as fc.Arbitrary<"and">,
      filters: fc.tuple(tie("f"), tie("f")),
    }),
    fc.record({ op: fc.constant("not" as const), filter: tie("f") }),
  ),
})).f;

export interface PropertyStore {
  store: AppStore;
  resources: Map<string, Resource>;
  close(): Promise<void>;
}

export async function openPropertyStore(url: string): Promise<PropertyStore> {
  const store = await AppStore.open(
    {
      url,
      mysqlPoolSize: 4,
      queryTimeoutMs: 10_000,
      breaker: {
        timeoutMs: 30_000,
        errorThresholdPercentage: 50,
        volumeThreshold: 1000,
        resetTimeoutMs: 1000,
        rollingWindowMs: 10_000,
      },
      customColumns: [],
    },
    propertySchema,
    new Metrics("test"),
  );
  return { store, resources: new Map(), close: () => store.close() };
}

export async function checkFilterProperty(
  ps: PropertyStore,
  o: { users: number; runs: number },
): Promise<void> {
  const generated = fc.sample(fc.array(userArb, { minLength: o.users, maxLength: o.users }), {
    numRuns: 1,
    seed: 7,
  })[0]!;
  await ps.store.run("seed", async (tx) => {
    for (const [i, u] of generated.entries()) {
      const doc = normalizeBody(propertySchema, toResource(u, i), { create: false }).resource;
      const created = DATES[i % DATES.length]!;
      const rec = await tx.users.insert({ id: `id-${i}`, doc, now: created });
      ps.resources.set(rec.id, { ...doc, id: rec.id, meta: { created } });
    }
  });
  await fc.assert(
    fc.asyncProperty(filterArb, async (filter) => {
      const expected = [...ps.resources.entries()]
        .filter(([, r]) => matches(propertySchema, filter, r))
        .map(([id]) => id)
        .sort();
      const where = compileUserFilter(propertySchema, filter);
      const got = await ps.store.run(
        "q",
        (tx) => tx.users.list({ where, order: undefined, descending: false, offset: 0, limit: 10_000 }),
        {
          readOnly: true,
        },
      );
      assert.deepEqual(got.map((r) => r.id).sort(), expected, JSON.stringify(filter));
    }),
    { numRuns: o.runs, seed: 42 },
  );
}
