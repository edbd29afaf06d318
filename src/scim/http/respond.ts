import type { Request, Response } from "express";

export const SCIM_CONTENT_TYPE = "application/scim+json; charset=utf-8";

export function sendScim(
  res: Response,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  res.status(status).set(headers).type(SCIM_CONTENT_TYPE).send(JSON.stringify(body));
}

/** Sends a recorded or freshly built response. */
export function send(
  res: Response,
  r: { status: number; headers: Record<string, string>; body?: unknown },
  extra: Record<string, string> = {},
): void {
  if (r.body === undefined) {
    res
      .status(r.status)
      .set({ ...r.headers, ...extra })
      .end();
    return;
  }
  sendScim(res, r.status, r.body, { ...r.headers, ...extra });
}

/** The SCIM base URL as clients see it: configured, or from the request's Host. */
export function baseUrlOf(req: Request, configured: string | undefined): string {
  if (configured) return `${configured}/scim/v2`;
  return `${req.protocol}://${req.get("host") ?? "localhost"}/scim/v2`;
}
