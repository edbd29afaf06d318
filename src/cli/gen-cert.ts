/** `provisiond gen-cert`: a self-signed certificate for the SCIM port, and how to make Okta's agent trust it. */
import { X509Certificate } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import selfsigned from "selfsigned";

export interface GenCertOptions {
  outDir: string;
  hosts: string[];
  days: number;
}

/** The files gen-cert writes in `outDir`. */
export function certFiles(outDir: string): { certFile: string; keyFile: string } {
  return { certFile: resolve(outDir, "provisiond.crt"), keyFile: resolve(outDir, "provisiond.key") };
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
  const { certFile, keyFile } = certFiles(opts.outDir);
  writeFileSync(certFile, pems.cert);
  // writeFileSync's mode applies only to a new file: write a fresh one and rename it over any old key.
  const tmp = `${keyFile}.${process.pid}.tmp`;
  writeFileSync(tmp, pems.private, { mode: 0o600, flag: "wx" });
  renameSync(tmp, keyFile);
  const fingerprint = new X509Certificate(pems.cert).fingerprint256;
  return { certFile, keyFile, fingerprint };
}

/** A certificate or key already there, which `gen-cert` replaces only when told to (`--force`). */
export class CertExists extends Error {
  constructor(readonly files: string[]) {
    super(
      `gen-cert: ${files.join(" and ")} already exist${files.length === 1 ? "s" : ""}; use --force to replace them`,
    );
    this.name = "CertExists";
  }
}

/** `provisiond gen-cert`: refuses to overwrite unless `force`, then writes and says how to use the certificate. */
export async function genCertCommand(
  opts: GenCertOptions & { force: boolean },
  out: (text: string) => void,
): Promise<void> {
  const { certFile, keyFile } = certFiles(opts.outDir);
  const existing = [certFile, keyFile].filter((f) => existsSync(f));
  if (existing.length && !opts.force) throw new CertExists(existing);
  const r = await genCert(opts);
  out(
    [
      ...(existing.length ? [`replaced (--force): ${existing.join(" and ")}`] : []),
      `certificate: ${r.certFile}`,
      `private key: ${r.keyFile} (mode 0600)`,
      `SHA-256 fingerprint: ${r.fingerprint}`,
      "",
      "Serve SCIM over TLS 1.2+ with:",
      `  PROVISIOND_TLS_CERT_FILE=${r.certFile} PROVISIOND_TLS_KEY_FILE=${r.keyFile} npm start`,
      "",
      "Make Okta's Provisioning Agent trust it (on the agent's host, with the agent's JRE):",
      `  keytool -importcert -noprompt -alias provisiond -file ${r.certFile} -keystore "$OKTA_AGENT_JRE/lib/security/cacerts" -storepass changeit`,
      "Then check the fingerprint the agent sees against the one above.",
      "",
    ].join("\n"),
  );
}

/**
 * The name a certificate is for: its first DNS subjectAltName that is not a wildcard, else its first IP
 * address, else its CN; undefined when it names nothing a client could connect to.
 */
export function certificateHost(certFile: string): string | undefined {
  const cert = new X509Certificate(readFileSync(certFile));
  const sans = (cert.subjectAltName ?? "").split(/,\s*/).filter(Boolean);
  const dns = sans.find((s) => s.startsWith("DNS:") && !s.includes("*"));
  if (dns) return dns.slice(4);
  const ip = sans.find((s) => s.startsWith("IP Address:"))?.slice("IP Address:".length);
  if (ip) return ip.includes(":") ? `[${ip}]` : ip;
  const cn = /^CN=(.+)$/m.exec(cert.subject)?.[1]?.trim();
  return cn && !cn.includes("*") && !/\s/.test(cn) ? cn : undefined;
}
