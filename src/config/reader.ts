/** Reads settings from the environment: each problem is a ConfigError that names the variable and the fix. */
import { readFileSync } from "node:fs";

export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    problem: string,
  ) {
    super(`${variable}: ${problem}`);
    this.name = "ConfigError";
  }
}

export type Env = Record<string, string | undefined>;

export class Reader {
  constructor(private readonly env: Env) {}

  raw(name: string): string | undefined {
    const v = this.env[name];
    return v === undefined || v === "" ? undefined : v;
  }

  str(name: string, def: string): string {
    return this.raw(name) ?? def;
  }

  /** A secret from NAME or from the file NAME_FILE names (one of them, not both). */
  secret(name: string): string | undefined {
    const direct = this.raw(name);
    const file = this.raw(`${name}_FILE`);
    if (direct !== undefined && file !== undefined)
      throw new ConfigError(name, `set either ${name} or ${name}_FILE, not both`);
    if (file === undefined) return direct;
    try {
      const v = readFileSync(file, "utf8").trim();
      if (!v) throw new ConfigError(`${name}_FILE`, `the file ${file} is empty`);
      return v;
    } catch (err) {
      if (err instanceof ConfigError) throw err;
      throw new ConfigError(
        `${name}_FILE`,
        `cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? "error"})`,
      );
    }
  }

  int(name: string, def: number, min: number, max: number): number {
    const v = this.raw(name);
    if (v === undefined) return def;
    if (!/^-?\d+$/.test(v.trim())) throw new ConfigError(name, `must be an integer, got "${v}"`);
    const n = Number(v);
    if (n < min || n > max) throw new ConfigError(name, `must be between ${min} and ${max}, got ${n}`);
    return n;
  }

  bool(name: string, def: boolean): boolean {
    const v = this.raw(name)?.toLowerCase();
    if (v === undefined) return def;
    if (["1", "true", "yes", "on"].includes(v)) return true;
    if (["0", "false", "no", "off"].includes(v)) return false;
    throw new ConfigError(name, `must be true or false, got "${v}"`);
  }

  oneOf<T extends string>(name: string, def: T, allowed: readonly T[]): T {
    const v = this.raw(name);
    if (v === undefined) return def;
    if (!(allowed as readonly string[]).includes(v))
      throw new ConfigError(name, `must be one of ${allowed.join(", ")}, got "${v}"`);
    return v as T;
  }
}

/** A JSON config file's keys are the environment variable names; the environment wins over the file. */
export function withConfigFile(env: Env): Env {
  const file = env.PROVISIOND_CONFIG_FILE;
  if (!file) return env;
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, "utf8"));
  } catch (err) {
    throw new ConfigError(
      "PROVISIOND_CONFIG_FILE",
      `cannot read ${file} as JSON (${(err as Error).message})`,
    );
  }
  if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw new ConfigError("PROVISIOND_CONFIG_FILE", "must hold a JSON object of PROVISIOND_* keys");
  }
  const out: Env = {};
  for (const [k, v] of Object.entries(parsed)) {
    if (!k.startsWith("PROVISIOND_")) throw new ConfigError("PROVISIOND_CONFIG_FILE", `unknown key "${k}"`);
    out[k] = typeof v === "string" ? v : JSON.stringify(v);
  }
  return { ...out, ...env };
}
