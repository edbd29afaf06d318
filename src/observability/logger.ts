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
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    opts.destination,
  );
}
