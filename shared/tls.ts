/**
 * TLS building blocks shared by both agents: one port, mutual TLS 1.3,
 * ALPN `h2` → gRPC, ALPN `zferry-lane/2` → data lanes.
 *
 * What a server built with tls.createServer(serverTlsOptions(...)) refuses by
 * itself (Node 20 + its bundled OpenSSL 3; verified in test/tls.test.ts with the
 * real `openssl s_client`):
 *
 *   case                                   server 'tlsClientError'                      client sees
 *   ------------------------------------   ------------------------------------------   --------------------------------------------
 *   no client certificate                  ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE     alert 116 certificate_required
 *                                                                                        (Node: ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED)
 *   client cert from another CA            ECONNRESET "socket hang up",                  no alert, the connection just closes
 *                                          socket.authorizationError =                   (s_client: "unexpected eof while reading";
 *                                          UNABLE_TO_VERIFY_LEAF_SIGNATURE                Node client: 'close' without 'error')
 *   expired client cert                    same, authorizationError = CERT_HAS_EXPIRED   same
 *   server cert used as client cert        same, authorizationError = INVALID_PURPOSE    same
 *   (extKeyUsage serverAuth only)          (OpenSSL's `sslclient` purpose check)
 *   TLS 1.2 or older                       ERR_SSL_UNSUPPORTED_PROTOCOL                  alert 70 protocol_version
 *   ALPN offered but none matches          ERR_SSL_NO_APPLICATION_PROTOCOL               alert 120 no_application_protocol
 *   NO ALPN offered                        not refused: 'secureConnection' fires with    handshake completes
 *                                          socket.alpnProtocol === false
 *
 * So no extra check is needed for the certificate cases: Node's server lets
 * OpenSSL verify the chain (including expiry and the extKeyUsage purpose) and
 * destroys the socket itself when the result is an error, before
 * 'secureConnection'. Only "no ALPN" must be handled by the caller: use
 * selectedAlpn() and close the socket when it returns null.
 * describeTlsClientError(err, socket) turns a 'tlsClientError' into one line.
 *
 * The client side of a refusal: with TLS 1.3 the client sends its certificate in
 * its last flight, after it has seen the server's Finished, so the CLIENT
 * reports the handshake as done ('secureConnect' fires with authorized=true,
 * `openssl s_client` prints "CONNECTED" and the negotiated ALPN) and learns of
 * the refusal only afterwards: an alert ('error' event) for the no-certificate
 * case, or a bare close for the verification failures. Never treat
 * 'secureConnect' as proof of acceptance: wait for the first reply from the peer.
 *
 * Use tls.createServer (or a TLSSocket with `server` set) so that Node's
 * rejectUnauthorized handling runs. peerCertAllowsClientAuth() is a
 * belt-and-braces check that agrees with what OpenSSL already enforced.
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { isAbsolute, resolve } from 'node:path';
import * as tls from 'node:tls';
import { fingerprintDer, parseSubjectAltName } from './cert-names.js';
import type { TlsPaths } from './config-schema.js';

/**
 * TLS 1.3 suites, cheapest first: AES-128-GCM has fewer rounds than AES-256-GCM and is what the
 * lanes spend most of their CPU on; all three are AEADs of equal standing in TLS 1.3.
 */
export const CIPHERSUITES = 'TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256';

/** TLS 1.3 only, both ends. Node routes TLS_* names in `ciphers` to the TLS 1.3 suite list. */
const TLS13 = { minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3', ciphers: CIPHERSUITES } as const;
// The lane wire format's version: a sender and receiver that frame chunks differently
// (lane/1 carried sha256 digests, lane/2 crc32 checksums) fail the handshake with a clear
// ALPN error instead of misreading each other's frames.

export const LANE_ALPN = 'zferry-lane/2';
export const H2_ALPN = 'h2';
/**
 * Pull mode's control connection (the receiver dials the source): HTTP/2 inside with the roles
 * reversed, under its own name so that a pusher dialing a source, or a puller dialing a
 * receiver, fails the handshake (no_application_protocol) instead of talking to the wrong role.
 */
export const PULL_ALPN = 'zferry-pull/1';
/**
 * A lane the keeping side dialed to the data side (pull, restore): the lane protocol of
 * LANE_ALPN, but routed on the data side's port to the transfer that asked for it, never to
 * that port's own receive path.
 */
export const PULL_LANE_ALPN = 'zferry-pull-lane/1';
/** The receiver's port: pushes (h2 control, lanes), and restores, where the receiver is the data side. */
export const RECEIVER_ALPNS = [H2_ALPN, LANE_ALPN, PULL_ALPN, PULL_LANE_ALPN] as const;
/** A source's port (sender-agent serve): pulls only. */
export const SOURCE_ALPNS = [PULL_ALPN, PULL_LANE_ALPN] as const;

/** The "tls" block of a config file (declared in config-schema.ts). */
export type { TlsPaths };

export interface TlsMaterial {
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
  caPath: string;
  certPath: string;
  keyPath: string;
}

const PEM_MARKERS: Record<keyof TlsPaths, RegExp> = {
  ca: /-----BEGIN CERTIFICATE-----/,
  cert: /-----BEGIN CERTIFICATE-----/,
  key: /-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----/,
};

/**
 * Read CA, certificate and key. Relative paths are relative to `baseDir`
 * (the config file's folder). Errors are one line naming the config key and file,
 * e.g. `tls.key: cannot read /etc/zferry/site-a.key: ENOENT: no such file or directory`.
 */
export function loadTlsMaterial(paths: TlsPaths, baseDir: string): TlsMaterial {
  const read = (k: keyof TlsPaths): { buf: Buffer; path: string } => {
    const raw = paths?.[k];
    if (typeof raw !== 'string' || raw.length === 0) {
      throw new Error(`tls.${k}: missing in the configuration (a path to a PEM file is required)`);
    }
    const path = isAbsolute(raw) ? raw : resolve(baseDir, raw);
    let buf: Buffer;
    try {
      buf = readFileSync(path);
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      const why =
        err.code === 'ENOENT'
          ? 'no such file'
          : err.code === 'EACCES'
            ? 'permission denied'
            : err.code === 'EISDIR'
              ? 'is a directory'
              : err.message.split('\n')[0];
      throw new Error(`tls.${k}: cannot read ${path} (${why})`);
    }
    if (!PEM_MARKERS[k].test(buf.toString('latin1'))) {
      const want = k === 'key' ? 'an unencrypted PEM private key' : 'a PEM certificate';
      if (k === 'key' && /-----BEGIN ENCRYPTED PRIVATE KEY-----/.test(buf.toString('latin1'))) {
        throw new Error(`tls.${k}: ${path} is an encrypted private key; ${want} is required`);
      }
      throw new Error(`tls.${k}: ${path} is not ${want}`);
    }
    return { buf, path };
  };
  const ca = read('ca');
  const cert = read('cert');
  const key = read('key');
  return { ca: ca.buf, cert: cert.buf, key: key.buf, caPath: ca.path, certPath: cert.path, keyPath: key.path };
}

/**
 * Options for tls.createServer / new tls.TLSSocket(socket, {isServer: true, ...}):
 * TLS 1.3 only, client certificate required and verified against the pinned CA
 * during the handshake, ALPN from `alpn` (a client offering only other protocols
 * is refused with no_application_protocol; a client offering none gets
 * `alpnProtocol === false` — close it, see selectedAlpn()).
 */
export function serverTlsOptions(m: Pick<TlsMaterial, 'ca' | 'cert' | 'key'>, alpn: string[]): tls.TlsOptions {
  return {
    ca: m.ca,
    cert: m.cert,
    key: m.key,
    ...TLS13,
    requestCert: true,
    rejectUnauthorized: true,
    honorCipherOrder: true, // gRPC's own client offers AES-256 first; the server's order wins
    ALPNProtocols: [...alpn],
  };
}

/**
 * Options for tls.connect: TLS 1.3 only, the pinned CA only (not the system
 * store), our certificate + key, ALPN, and server identity checking with Node's
 * default tls.checkServerIdentity against `servername ?? host` (DNS SAN for a
 * name, IP SAN for an address). SNI is sent only when that name is not an IP.
 * Add `port` (and anything else) on top.
 */
export function clientTlsOptions(
  m: Pick<TlsMaterial, 'ca' | 'cert' | 'key'>,
  o: { host: string; servername?: string; alpn: string[]; port?: number },
): tls.ConnectionOptions {
  const host = stripBrackets(o.host);
  const expected = o.servername !== undefined && o.servername !== '' ? stripBrackets(o.servername) : host;
  const opts: tls.ConnectionOptions = {
    host,
    ca: m.ca,
    cert: m.cert,
    key: m.key,
    ...TLS13,
    rejectUnauthorized: true,
    ALPNProtocols: [...o.alpn],
    checkServerIdentity: (_hostname: string, cert: tls.PeerCertificate) => tls.checkServerIdentity(expected, cert),
  };
  if (o.port !== undefined) opts.port = o.port;
  if (isIP(expected) === 0) opts.servername = expected;
  return opts;
}

function stripBrackets(h: string): string {
  return h.startsWith('[') && h.endsWith(']') ? h.slice(1, -1) : h;
}

export interface PeerIdentity {
  /** The peer certificate's subject CN. */
  identity: string;
  /** SANs as `DNS:…`, `IP:…`, `URI:…`. */
  sans: string[];
  /** SHA-256 of the peer certificate's DER, uppercase hex with colons. */
  fingerprint: string;
}

/**
 * The authenticated peer of a TLS socket: subject CN, SANs, fingerprint.
 * null when the socket is not authorized, has no peer certificate, or the
 * certificate has no CN or several (ambiguous identity).
 */
export function identityOf(socket: tls.TLSSocket): PeerIdentity | null {
  if (!socket.authorized) return null;
  const cert = socket.getPeerCertificate();
  if (!cert || !cert.raw || Object.keys(cert).length === 0) return null;
  const cn = (cert.subject as unknown as Record<string, string | string[] | undefined> | undefined)?.CN;
  if (typeof cn !== 'string' || cn.length === 0) return null;
  return {
    identity: cn,
    sans: parseSubjectAltName(cert.subjectaltname),
    fingerprint: fingerprintDer(cert.raw),
  };
}

const OID_CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
const OID_SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const OID_ANY_EKU = '2.5.29.37.0';

function ekuAllows(socket: tls.TLSSocket, oid: string): boolean {
  if (!socket.authorized) return false;
  const cert = socket.getPeerCertificate();
  if (!cert || !cert.raw) return false;
  const eku = (cert as tls.PeerCertificate & { ext_key_usage?: string[] }).ext_key_usage;
  // No extKeyUsage extension = any usage (RFC 5280), as OpenSSL treats it.
  if (!eku) return true;
  return eku.includes(oid) || eku.includes(OID_ANY_EKU);
}

/**
 * Server side, after the handshake: true when the client certificate may be used
 * for TLS client authentication (extKeyUsage clientAuth, anyExtendedKeyUsage, or
 * no extKeyUsage at all). OpenSSL already refuses a serverAuth-only certificate
 * during the handshake; this is a defensive double check.
 */
export function peerCertAllowsClientAuth(socket: tls.TLSSocket): boolean {
  return ekuAllows(socket, OID_CLIENT_AUTH);
}

/** Client side: true when the server certificate may be used for TLS server authentication. */
export function peerCertAllowsServerAuth(socket: tls.TLSSocket): boolean {
  return ekuAllows(socket, OID_SERVER_AUTH);
}

/**
 * The negotiated ALPN protocol if it is one of `allowed`, else null
 * (null also when the client offered no ALPN: the handshake succeeds then,
 * so the caller must close the socket).
 */
export function selectedAlpn(socket: tls.TLSSocket, allowed: readonly string[] = RECEIVER_ALPNS): string | null {
  const p = socket.alpnProtocol;
  return typeof p === 'string' && allowed.includes(p) ? p : null;
}

const AUTH_ERRORS: Record<string, string> = {
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'certificate is not signed by the trusted CA',
  UNABLE_TO_GET_ISSUER_CERT: 'certificate is not signed by the trusted CA',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'certificate is not signed by the trusted CA',
  SELF_SIGNED_CERT_IN_CHAIN: 'certificate chain ends in an untrusted CA',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'certificate is self-signed, not issued by the trusted CA',
  CERT_SIGNATURE_FAILURE: 'certificate signature is invalid',
  CERT_HAS_EXPIRED: 'certificate has expired',
  CERT_NOT_YET_VALID: 'certificate is not yet valid (check the clocks)',
  INVALID_PURPOSE: 'certificate may not be used for this role (extKeyUsage: a server certificate used as a client certificate, or the reverse)',
  CERT_REVOKED: 'certificate is revoked',
  ERR_TLS_CERT_ALTNAME_INVALID: "certificate's names (SAN) do not match the host name",
};

const CODE_ERRORS: Record<string, string> = {
  ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE: 'the client sent no certificate',
  ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED: 'the server requires a client certificate and none was sent',
  ERR_SSL_UNSUPPORTED_PROTOCOL: 'the peer does not speak TLS 1.3',
  ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION: 'the peer does not speak TLS 1.3',
  ERR_SSL_NO_APPLICATION_PROTOCOL: `the client offered none of the supported ALPN protocols (${H2_ALPN}, ${LANE_ALPN})`,
  ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL: 'the server supports none of the offered ALPN protocols',
  ERR_SSL_TLSV1_ALERT_UNKNOWN_CA: 'the peer does not trust our certificate (unknown CA)',
  ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED: 'the peer says our certificate has expired',
  ERR_SSL_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE: 'the peer refuses our certificate for this role (extKeyUsage)',
  ERR_SSL_WRONG_VERSION_NUMBER: 'the peer is not speaking TLS',
  ERR_SSL_HTTP_REQUEST: 'the peer sent plain HTTP, not TLS',
};

/**
 * One line explaining a TLS failure, for 'tlsClientError' (server side, pass the
 * socket: its authorizationError carries the verification reason) or for a
 * client 'error'. Example: `client certificate has expired (CERT_HAS_EXPIRED)`.
 */
export function describeTlsClientError(err: Error & { code?: string }, socket?: tls.TLSSocket): string {
  const authErr = socket?.authorizationError as unknown as string | Error | null | undefined;
  const authCode = typeof authErr === 'string' ? authErr : (authErr as { code?: string } | null | undefined)?.code;
  if (authCode) {
    const what = AUTH_ERRORS[authCode];
    return what ? `client ${what} (${authCode})` : `client certificate refused (${authCode})`;
  }
  const code = err.code ?? '';
  if (CODE_ERRORS[code]) return `${CODE_ERRORS[code]} (${code})`;
  if (AUTH_ERRORS[code]) return `${AUTH_ERRORS[code]} (${code})`;
  const reason = (err as { reason?: string }).reason;
  const first = (reason ?? err.message ?? String(err)).split('\n')[0]!;
  return code ? `${first} (${code})` : first;
}
