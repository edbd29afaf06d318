import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { describe, it } from "node:test";
import { createLogger, loggedUrl } from "../../src/observability/logger.js";

describe("the logger", () => {
  it("logs a database error without its statement or values", () => {
    const lines: string[] = [];
    const destination = new Writable({
      write(chunk, _enc, cb) {
        lines.push(chunk.toString());
        cb();
      },
    });
    const logger = createLogger({ nodeId: "n", level: "info", destination: destination as never });
    const err = Object.assign(new Error("Data too long for column 'display_name' at row 1"), {
      code: "ER_DATA_TOO_LONG",
      sql: "INSERT INTO scim_users (password_hash) VALUES ('scrypt$16384$8$1$c2FsdA==$a2V5')",
      sqlMessage: "Data too long for column 'display_name' at row 1",
    });
    logger.error({ err }, "unexpected error");
    logger.error({ err: new Error("wrapped", { cause: err }) }, "unexpected error");
    const text = lines.join("");
    assert.match(text, /ER_DATA_TOO_LONG/);
    assert.ok(!text.includes("scrypt$"), text);
  });

  it("logs a request URL without the filter's value, which names people", () => {
    const url = loggedUrl(
      `/scim/v2/Users?FILTER=${encodeURIComponent('userName eq "alice@example.com"')}&count=5`,
    );
    assert.ok(!url.includes("alice"), url);
    assert.match(url, /count=5/);
    assert.equal(loggedUrl("/scim/v2/Users/abc"), "/scim/v2/Users/abc");
  });
});
