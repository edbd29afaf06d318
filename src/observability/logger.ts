import pino, { type Logger } from "pino";

/** Paths pino blanks in every log line: credentials in headers and bodies, wherever they appear. */
export const REDACT_PATHS = [
  "req.headers.authorization",
  "req.headers.cookie",
  'req.headers["x-api-key"]',
  "headers.authorization",
  "authorization",
  "password",
  "token",
  "secret",
  "*.password",
  "*.token",
  "*.secret",
  "*.apiToken",
  "*.scimToken",
  "*.basicPassword",
  "*.headerValue",
];

/**
 * Fields a database error carries that may hold personal data or secrets: mysql2 puts the whole statement,
 * with its values formatted in (a password hash among them), into `sql`.
 */
const UNSAFE_ERROR_FIELDS = ["sql", "values", "parameters", "sqlMessage"];

/** pino's error serializer, without the fields above, also in an error's `cause`. */
export function errorSerializer(err: unknown): unknown {
  if (!(err instanceof Error)) return err;
  const out = pino.stdSerializers.err(err) as unknown as Record<string, unknown>;
  for (const f of UNSAFE_ERROR_FIELDS) delete out[f];
  if (out.cause !== undefined) out.cause = errorSerializer((err as Error & { cause?: unknown }).cause);
  return out;
}

/**
 * A request URL as logged: a filter names the people it looks for (`userName eq "alice@…"`), so its value is
 * left out; paging and attribute parameters, which name no one, stay.
 */
export function loggedUrl(url: string): string {
  const q = url.indexOf("?");
  if (q < 0) return url;
  const params = new URLSearchParams(url.slice(q + 1));
  for (const key of new Set(params.keys()))
    if (key.toLowerCase() === "filter") params.set(key, `[${params.get(key)!.length} characters]`);
  return `${url.slice(0, q)}?${params.toString()}`;
}

export interface LoggerOptions {
  nodeId: string;
  level: string;
  /** Extra header names (the custom auth header) whose values must never reach the logs. */
  secretHeaders?: string[];
  destination?: pino.DestinationStream;
}

export function createLogger(opts: LoggerOptions): Logger {
  const extra = (opts.secretHeaders ?? []).map((h) => `req.headers[${JSON.stringify(h.toLowerCase())}]`);
  return pino(
    {
      level: opts.level,
      base: { node: opts.nodeId },
      redact: { paths: [...REDACT_PATHS, ...extra], censor: "[redacted]" },
      serializers: { err: errorSerializer },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    opts.destination,
  );
}
