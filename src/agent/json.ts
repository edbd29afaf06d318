/** A response body as JSON, or undefined when it is empty or not JSON (a proxy's error page, say). */
export function parseJson(text: string): unknown {
  if (!text) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
