/**
 * Versioned schema migrations, run at startup under a lock (a MySQL named lock, SQLite's write lock), so two
 * nodes starting at once apply each version exactly once. A migration never changes once released: add one.
 */
import type { Db, Dialect, Queryable } from "./db.js";

interface Migration {
  version: number;
  name: string;
  up: (d: Dialect) => string[];
}

const T = (d: Dialect) => ({
  pk:
    d === "mysql"
      ? "BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY"
      : "INTEGER PRIMARY KEY AUTOINCREMENT",
  ref: d === "mysql" ? "BIGINT UNSIGNED" : "INTEGER",
  text: d === "mysql" ? "LONGTEXT" : "TEXT",
  table: d === "mysql" ? " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin" : "",
  bool: d === "mysql" ? "TINYINT(1)" : "INTEGER",
});

/** MySQL declares secondary indexes inline; SQLite needs CREATE INDEX statements. */
function table(d: Dialect, name: string, cols: string[], indexes: string[]): string[] {
  const t = T(d);
  if (d === "mysql") return [`CREATE TABLE ${name} (\n  ${[...cols, ...indexes].join(",\n  ")}\n)${t.table}`];
  const inline = indexes.filter((i) => i.startsWith("FOREIGN KEY") || i.startsWith("PRIMARY KEY"));
  const out = [`CREATE TABLE ${name} (\n  ${[...cols, ...inline].join(",\n  ")}\n)`];
  for (const ix of indexes) {
    const m = /^(UNIQUE )?KEY (\w+) \((.+)\)$/.exec(ix);
    if (m) out.push(`CREATE ${m[1] ?? ""}INDEX ${m[2]} ON ${name} (${m[3]})`);
  }
  return out;
}

/** scim_users as migration 1 creates it (a released migration never changes). */
function userColumns(d: Dialect): string[] {
  const t = T(d);
  return [
    `seq ${t.pk}`,
    "id CHAR(36) NOT NULL",
    "user_name VARCHAR(255) NOT NULL",
    // Lowercased userName: RFC 7643 makes userName caseExact:false, so uniqueness ignores case.
    "user_name_ci VARCHAR(255) NOT NULL",
    "external_id VARCHAR(255) NULL",
    "display_name VARCHAR(1024) NULL",
    "given_name VARCHAR(1024) NULL",
    "family_name VARCHAR(1024) NULL",
    "email VARCHAR(1024) NULL",
    `active ${t.bool} NOT NULL DEFAULT 1`,
    "created CHAR(24) NOT NULL",
    "last_modified CHAR(24) NOT NULL",
    "version INTEGER NOT NULL",
    `doc ${t.text} NOT NULL`,
    "password_hash VARCHAR(255) NULL",
  ];
}

/** Names custom attribute columns may not take: scim_users' own. */
export const BUILT_IN_USER_COLUMNS: ReadonlySet<string> = new Set(
  userColumns("sqlite").map((c) => c.split(" ")[0]!),
);

export const MIGRATIONS: Migration[] = [
  {
    version: 1,
    name: "users, groups, memberships, attribute index, audit",
    up: (d) => {
      const t = T(d);
      return [
        ...table(
          d,
          "scim_users",
          [...userColumns(d)],
          [
            "UNIQUE KEY uq_users_id (id)",
            "UNIQUE KEY uq_users_user_name (user_name_ci)",
            "KEY ix_users_external_id (external_id)",
            "KEY ix_users_created (created)",
            "KEY ix_users_last_modified (last_modified)",
          ],
        ),
        // One row per leaf value of every attribute that is not a column of scim_users, so any filter
        // (emails[type eq "work"], name.familyName sw "x", an extension attribute) is answered by an index.
        ...table(
          d,
          "scim_user_attrs",
          [
            `owner ${t.ref} NOT NULL`,
            "attr VARCHAR(160) NOT NULL",
            "pos SMALLINT NOT NULL",
            "sub VARCHAR(64) NOT NULL",
            "v_str VARCHAR(512) NULL",
            "v_ci VARCHAR(512) NULL",
            "v_num DOUBLE NULL",
          ],
          [
            "PRIMARY KEY (owner, attr, pos, sub)",
            "KEY ix_user_attrs_ci (attr, sub, v_ci)",
            "KEY ix_user_attrs_num (attr, sub, v_num)",
            "FOREIGN KEY (owner) REFERENCES scim_users (seq) ON DELETE CASCADE",
          ],
        ),
        ...table(
          d,
          "scim_groups",
          [
            `seq ${t.pk}`,
            "id CHAR(36) NOT NULL",
            "display_name VARCHAR(255) NOT NULL",
            "display_name_ci VARCHAR(255) NOT NULL",
            "external_id VARCHAR(255) NULL",
            "created CHAR(24) NOT NULL",
            "last_modified CHAR(24) NOT NULL",
            "version INTEGER NOT NULL",
            `doc ${t.text} NOT NULL`,
          ],
          [
            "UNIQUE KEY uq_groups_id (id)",
            "KEY ix_groups_display_name (display_name_ci)",
            "KEY ix_groups_external_id (external_id)",
            "KEY ix_groups_created (created)",
            "KEY ix_groups_last_modified (last_modified)",
          ],
        ),
        // A row per membership: adding or removing one member of a huge group touches one row.
        ...table(
          d,
          "scim_group_members",
          [
            `group_seq ${t.ref} NOT NULL`,
            "member_id CHAR(36) NOT NULL",
            "member_type VARCHAR(8) NOT NULL",
            "display VARCHAR(1024) NULL",
          ],
          [
            "PRIMARY KEY (group_seq, member_id)",
            "KEY ix_group_members_member (member_id)",
            "FOREIGN KEY (group_seq) REFERENCES scim_groups (seq) ON DELETE CASCADE",
          ],
        ),
        ...table(
          d,
          "scim_audit",
          [
            `seq ${t.pk}`,
            "at CHAR(24) NOT NULL",
            "request_id VARCHAR(128) NULL",
            "actor VARCHAR(255) NOT NULL",
            "client VARCHAR(255) NULL",
            "action VARCHAR(16) NOT NULL",
            "resource_type VARCHAR(16) NOT NULL",
            "resource_id CHAR(36) NOT NULL",
            `attributes ${t.text} NULL`,
          ],
          ["KEY ix_audit_resource (resource_id)", "KEY ix_audit_at (at)"],
        ),
      ];
    },
  },
  {
    version: 2,
    name: "fencing token, idempotency keys, idempotency key in the audit trail",
    up: (d) => {
      const t = T(d);
      return [
        ...table(
          d,
          "provisiond_fencing",
          ["id INTEGER NOT NULL PRIMARY KEY", "token BIGINT NOT NULL", "updated_at CHAR(24) NOT NULL"],
          [],
        ),
        // IGNORE: a retry of this migration after a crash must not fail on, nor reset, a token already raised.
        `${d === "mysql" ? "INSERT IGNORE" : "INSERT OR IGNORE"} INTO provisiond_fencing (id, token, updated_at) VALUES (1, 0, '${new Date(0).toISOString()}')`,
        ...table(
          d,
          "provisiond_idempotency",
          [
            "idem_key VARCHAR(255) NOT NULL PRIMARY KEY",
            "request_sig VARCHAR(512) NOT NULL",
            "status INTEGER NOT NULL",
            `response ${t.text} NOT NULL`,
            "fencing_token BIGINT NULL",
            "created_at CHAR(24) NOT NULL",
          ],
          ["KEY ix_idempotency_created (created_at)"],
        ),
        "ALTER TABLE scim_audit ADD COLUMN idempotency_key VARCHAR(255) NULL",
        "CREATE INDEX ix_audit_idempotency ON scim_audit (idempotency_key)",
      ];
    },
  },
  {
    version: 3,
    name: "fencing token in the audit trail",
    // The term of every agent write, so the history can be checked: in seq order, tokens never decrease.
    up: () => ["ALTER TABLE scim_audit ADD COLUMN fencing_token BIGINT NULL"],
  },
  {
    version: 4,
    name: "attribute values by owner, for sorting",
    // A sort on a multi-valued attribute asks, per user, for the smallest value of one attribute: with only
    // (attr, sub, v_ci) to go on, SQLite scanned every user's values for every user (216 s at 21k users).
    // Leading with the owner, the smallest value is the first index entry, read from the index alone.
    up: () => [
      "CREATE INDEX ix_user_attrs_owner_ci ON scim_user_attrs (owner, attr, sub, v_ci)",
      "CREATE INDEX ix_user_attrs_owner_num ON scim_user_attrs (owner, attr, sub, v_num)",
    ],
  },
];

async function ensureLedger(q: Queryable): Promise<void> {
  await q.run(
    "CREATE TABLE IF NOT EXISTS provisiond_migrations (version INTEGER NOT NULL PRIMARY KEY, name VARCHAR(255) NOT NULL, applied_at CHAR(24) NOT NULL)",
  );
}

/**
 * MySQL's refusals of a table, column or index that already exists. Under the migration lock, one with the name
 * a pending migration creates can only be that migration's own work, from a run killed before its ledger row:
 * the retry passes over it. (MySQL 8 has no IF NOT EXISTS for indexes and columns; MariaDB has, MySQL not.)
 */
const ALREADY_APPLIED = new Set(["ER_TABLE_EXISTS_ERROR", "ER_DUP_FIELDNAME", "ER_DUP_KEYNAME"]);

async function runStep(db: Db, q: Queryable, sql: string): Promise<void> {
  try {
    await q.run(sql);
  } catch (err) {
    if (db.dialect === "mysql" && ALREADY_APPLIED.has(String((err as { code?: unknown }).code))) return;
    throw err;
  }
}

/** Applies pending migrations; returns the versions applied by this call. */
export async function migrate(
  db: Db,
  extra: (q: Queryable) => Promise<void> = async () => {},
): Promise<number[]> {
  return db.withMigrationLock(async (q) => {
    await ensureLedger(q);
    const done = new Set(
      (await q.all<{ version: number }>("SELECT version FROM provisiond_migrations")).map((r) =>
        Number(r.version),
      ),
    );
    const applied: number[] = [];
    for (const m of MIGRATIONS) {
      if (done.has(m.version)) continue;
      // MySQL commits DDL implicitly, so each statement stands alone; the ledger row comes last so a
      // half-applied migration is retried rather than skipped. On SQLite a migration is one transaction.
      for (const sql of m.up(db.dialect)) await runStep(db, q, sql);
      await q.run("INSERT INTO provisiond_migrations (version, name, applied_at) VALUES (?, ?, ?)", [
        m.version,
        m.name,
        new Date().toISOString(),
      ]);
      applied.push(m.version);
    }
    await extra(q);
    return applied;
  });
}

export type ColumnType = "string" | "boolean" | "integer" | "decimal" | "dateTime" | "json";

/** Adds operator-configured custom attribute columns to scim_users when they are missing. */
export async function ensureColumns(
  db: Db,
  q: Queryable,
  columns: { name: string; type: ColumnType }[],
): Promise<void> {
  const existing = new Set(
    db.dialect === "mysql"
      ? (
          await q.all<{ c: string }>(
            "SELECT COLUMN_NAME AS c FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'scim_users'",
          )
        ).map((r) => r.c.toLowerCase())
      : (await q.all<{ name: string }>("PRAGMA table_info(scim_users)")).map((r) => r.name.toLowerCase()),
  );
  const sqlType: Record<ColumnType, string> = {
    string: "VARCHAR(1024)",
    boolean: db.dialect === "mysql" ? "TINYINT(1)" : "INTEGER",
    integer: "BIGINT",
    decimal: "DOUBLE",
    dateTime: "CHAR(24)",
    json: "TEXT",
  };
  for (const c of columns) {
    // Column names are checked against /^[a-z_][a-z0-9_]*$/ by the config loader; identifiers cannot be bound.
    if (!existing.has(c.name.toLowerCase()))
      await q.run(`ALTER TABLE scim_users ADD COLUMN ${c.name} ${sqlType[c.type]} NULL`);
  }
}
