/**
 * Microsoft's public SCIM Postman collection (../shared/conformance), run with newman against an empty server.
 * KNOWINGLY_UNMET lists, with reasons, the assertions provisiond does not meet; the test fails if any other
 * assertion fails, and also if a listed one starts passing (so the list stays true).
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { after, before, describe, it } from "node:test";
import newman from "newman";
import { TestNode, TOKEN } from "../support/node.js";
import { SHARED } from "../support/vectors.js";

const KNOWINGLY_UNMET: Record<string, string> = {
  "Get ServiceProviderConfig / Status code is 200":
    "the collection calls /serviceConfiguration; RFC 7644 §4 names /ServiceProviderConfig, which we serve",
  "Get ServiceProviderConfig / Pach supported is true": "same request: the non-standard path answers 404",
  "Put a user misspelled attribute / Status code is 200":
    "an unknown attribute ('adreses') is refused with 400 invalidSyntax instead of being silently dropped: dropping data a client sent loses it unnoticed",
  "Patch user omalley new username / Status code is 204":
    "a user PATCH answers 200 with the resource (RFC 7644 §3.5.2 allows either); Okta reads the returned user",
  "patch user omalley active with boolean / Status code is 204": "same: 200 with the resource",
  "Group patch add member / Status code is 204":
    'the member value "string id 1" is neither an object nor the id of a user or group here; it is refused with 400 rather than stored dangling',
  "Group patch add member2 / Status code is 204": "same as 'Group patch add member'",
  "filter eq and (val or val) / Total results":
    "the filter's values are unquoted (Employee, example.com); RFC 7644 §3.4.2.2 requires JSON strings, so it is 400 invalidFilter",
  "filter starts with / Total results": "unquoted value 'O': 400 invalidFilter, as above",
  "filter greater than / Total results": "unquoted dateTime: 400 invalidFilter, as above",
};

interface Execution {
  item: { name: string };
  assertions?: { assertion: string; error?: { message: string } }[];
}

describe("Microsoft SCIM conformance collection (newman)", () => {
  let node: TestNode;
  before(async () => {
    node = await TestNode.start();
  });
  after(async () => node.stop());

  it("fails exactly the assertions we knowingly do not meet", async () => {
    const collection = JSON.parse(
      readFileSync(resolve(SHARED, "conformance/microsoft-scim-reference.postman_collection.json"), "utf8"),
    );
    // The "Get Token" folder targets Microsoft's reference server's own token endpoint.
    collection.item = collection.item.filter((i: { name: string }) => i.name !== "Get Token");
    const url = new URL(node.base);
    const summary = await new Promise<{ run: { executions: Execution[] } }>((done, fail) => {
      newman.run(
        {
          collection,
          envVar: [
            { key: "Protocol", value: "http" },
            { key: "Server", value: url.hostname },
            { key: "Port", value: `:${url.port}` },
            { key: "Api", value: "scim/v2" },
            { key: "token", value: TOKEN },
          ],
          reporters: [],
        },
        (err, s) => (err ? fail(err) : done(s as unknown as { run: { executions: Execution[] } })),
      );
    });
    const passed: string[] = [];
    const failed: string[] = [];
    for (const ex of summary.run.executions) {
      for (const a of ex.assertions ?? [])
        (a.error ? failed : passed).push(`${ex.item.name} / ${a.assertion}`);
    }
    console.log(
      `conformance: ${passed.length} assertions passed, ${failed.length} failed (${Object.keys(KNOWINGLY_UNMET).length} knowingly)`,
    );
    assert.deepEqual(failed.sort(), Object.keys(KNOWINGLY_UNMET).sort());
    assert.ok(passed.length >= 70, `only ${passed.length} assertions ran`);
  });
});
