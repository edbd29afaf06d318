/** `provisiond gen-cert`: a self-signed certificate for the SCIM port, and how to make Okta's agent trust it. */
import { X509Certificate } from "node:crypto";
import { mkdirSync, renameSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import selfsigned from "selfsigned";

export interface GenCertOptions {
  outDir: string;
  hosts: string[];
  days: number;
}

export async function genCert(
  opts: GenCertOptions,
): Promise<{ certFile: string; keyFile: string; fingerprint: string }> {
  const notAfter = new Date(Date.now() + opts.days * 86_400_000);
  const pems = await selfsigned.generate([{ name: "commonName", value: opts.hosts[0]! }], {
    keySize: 2048,
    algorithm: "sha256",
    notAfterDate: notAfter,
    extensions: [
      { name: "basicConstraints", cA: false },
      { name: "keyUsage", digitalSignature: true, keyEncipherment: true },
      { name: "extKeyUsage", serverAuth: true },
      {
        name: "subjectAltName",
        altNames: opts.hosts.map((h) =>
          /^[\d.]+$/.test(h) || h.includes(":") ? { type: 7, ip: h } : { type: 2, value: h },
        ),
      },
    ],
  });
  mkdirSync(opts.outDir, { recursive: true, mode: 0o700 });
  const certFile = resolve(opts.outDir, "provisiond.crt");
  const keyFile = resolve(opts.outDir, "provisiond.key");
  writeFileSync(certFile, pems.cert);
  // writeFileSync's mode applies only to a new file: write a fresh one and rename it over any old key.
  const tmp = `${keyFile}.${process.pid}.tmp`;
  writeFileSync(tmp, pems.private, { mode: 0o600, flag: "wx" });
  renameSync(tmp, keyFile);
  const fingerprint = new X509Certificate(pems.cert).fingerprint256;
  return { certFile, keyFile, fingerprint };
}
