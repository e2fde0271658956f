/*
 * test/helpers/dkimpy.ts — Python's dkimpy (Debian python3-dkim) as a
 * third-party DKIM/ARC signer and verifier for the tests, plus DKIM test
 * keys made with node:crypto and their DNS TXT records.
 *
 * dkimpy looks its keys up through a `dnsfunc` the helper gives it from
 * the test's own records, so verification needs no DNS server; signing
 * needs none anyway. Always /usr/bin/python3 (the Debian one that has
 * the package), never a python3 earlier in PATH.
 */
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';

const PY = '/usr/bin/python3';

export interface TestKey {
  readonly alg: 'rsa' | 'ed25519';
  /** PEM (PKCS#8) for Postern's key files. */
  readonly pem: string;
  /** What dkimpy takes as privkey: PKCS#1 PEM for RSA, base64 of the 32-byte seed for Ed25519. */
  readonly dkimpyKey: string;
  /** The TXT record's text: "v=DKIM1; k=…; p=…". */
  readonly record: string;
}

export function rsaKey(bits = 2048): TestKey {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: bits });
  return {
    alg: 'rsa',
    pem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    dkimpyKey: privateKey.export({ type: 'pkcs1', format: 'pem' }).toString(),
    record: `v=DKIM1; k=rsa; p=${publicKey.export({ type: 'spki', format: 'der' }).toString('base64')}`,
  };
}

export function ed25519Key(): TestKey {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const jwk = privateKey.export({ format: 'jwk' });
  const pub = publicKey.export({ format: 'jwk' });
  return {
    alg: 'ed25519',
    pem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    dkimpyKey: Buffer.from(jwk.d ?? '', 'base64url').toString('base64'),
    record: `v=DKIM1; k=ed25519; p=${Buffer.from(pub.x ?? '', 'base64url').toString('base64')}`,
  };
}

/** A TXT record's text as zone-file strings of at most 255 characters each. */
export function txtStrings(text: string): string {
  const parts: string[] = [];
  for (let i = 0; i < text.length; i += 250) parts.push(`"${text.slice(i, i + 250)}"`);
  return `( ${parts.join(' ')} )`;
}

function python(script: string, input: Buffer, env: Record<string, string>): Buffer {
  return execFileSync(PY, ['-c', script], { input, env: { ...process.env, ...env }, maxBuffer: 64 * 1024 * 1024 });
}

const SIGN = `
import sys, os, dkim
msg = sys.stdin.buffer.read()
alg = b'ed25519-sha256' if os.environ['ALG'] == 'ed25519' else b'rsa-sha256'
sig = dkim.sign(msg, os.environ['SEL'].encode(), os.environ['DOM'].encode(), os.environ['KEY'].encode(), signature_algorithm=alg, canonicalize=(b'relaxed', b'relaxed'))
sys.stdout.buffer.write(sig)
`;

/** A DKIM-Signature field (with CRLF) that dkimpy makes for `msg`. */
export function dkimpySign(msg: Buffer, key: TestKey, selector: string, domain: string): string {
  return python(SIGN, msg, { ALG: key.alg, SEL: selector, DOM: domain, KEY: key.dkimpyKey }).toString('latin1');
}

/** The message on stdin, and a dnsfunc answering TXT queries from $RECORDS (name → text). */
const WITH_RECORDS = `
import sys, os, json, dkim
msg = sys.stdin.buffer.read()
records = json.loads(os.environ['RECORDS'])
def dnsfunc(name, timeout=5):
    n = name.decode() if isinstance(name, bytes) else name
    v = records.get(n.rstrip('.'))
    return v.encode() if v is not None else None
`;

/** dkimpy's verdict on each DKIM-Signature of `msg`, keys looked up in `records` (name → TXT text). */
export function dkimpyVerify(msg: Buffer, records: Record<string, string>): boolean[] {
  return dkimpyVerifyMany([msg], records)[0] ?? [];
}

const ARC_SIGN = `${WITH_RECORDS}
# arc_sign reads the chain and this ADMD's Authentication-Results; dnsfunc serves the keys it verifies.
import dkim as _d
_d.get_txt = lambda name, timeout=5: dnsfunc(name)
hdrs = dkim.arc_sign(msg, os.environ['SEL'].encode(), os.environ['DOM'].encode(), os.environ['KEY'].encode(), os.environ['SRV'].encode())
sys.stdout.buffer.write(b''.join(hdrs))
`;

/** The ARC set (AAR, AMS, AS, with CRLFs) dkimpy seals `msg` with as ADMD `srvId`; `msg` carries that ADMD's Authentication-Results. */
export function dkimpyArcSign(msg: Buffer, key: TestKey, selector: string, domain: string, srvId: string, records: Record<string, string>): string {
  return python(ARC_SIGN, msg, { SEL: selector, DOM: domain, KEY: key.dkimpyKey, SRV: srvId, RECORDS: JSON.stringify(records) }).toString('latin1');
}

const ARC_VERIFY = `${WITH_RECORDS}
cv, results, comment = dkim.arc_verify(msg, dnsfunc=dnsfunc)
print(json.dumps({'cv': cv.decode() if isinstance(cv, bytes) else str(cv), 'comment': str(comment)}))
`;

/** dkimpy's validation of the ARC chain of `msg` (cv: "pass", "fail" or "none"). */
export function dkimpyArcVerify(msg: Buffer, records: Record<string, string>): { cv: string; comment: string } {
  return JSON.parse(python(ARC_VERIFY, msg, { RECORDS: JSON.stringify(records) }).toString('utf8')) as { cv: string; comment: string };
}

const SIGN_MANY = `
import sys, json, base64, dkim
out = []
for j in json.loads(sys.stdin.buffer.read()):
    msg = base64.b64decode(j['msg'])
    sig = dkim.sign(msg, j['sel'].encode(), j['dom'].encode(), j['key'].encode(), signature_algorithm=j['alg'].encode(), canonicalize=(j['hc'].encode(), j['bc'].encode()), length=j['length'])
    out.append(base64.b64encode(sig).decode())
print(json.dumps(out))
`;

export interface DkimpySignJob {
  readonly msg: Buffer;
  readonly key: TestKey;
  readonly selector: string;
  readonly domain: string;
  readonly canon: readonly ['relaxed' | 'simple', 'relaxed' | 'simple'];
  /** Sign with l= (the body length). */
  readonly length?: boolean;
}

/** The DKIM-Signature fields (with CRLF) dkimpy makes for many messages, in one Python process. */
export function dkimpySignMany(jobs: readonly DkimpySignJob[]): string[] {
  const input = jobs.map((j) => ({ msg: j.msg.toString('base64'), sel: j.selector, dom: j.domain, key: j.key.dkimpyKey, alg: j.key.alg === 'ed25519' ? 'ed25519-sha256' : 'rsa-sha256', hc: j.canon[0], bc: j.canon[1], length: j.length === true }));
  const out = JSON.parse(python(SIGN_MANY, Buffer.from(JSON.stringify(input)), {}).toString('utf8')) as string[];
  return out.map((b) => Buffer.from(b, 'base64').toString('latin1'));
}

const VERIFY_MANY = `${WITH_RECORDS.replace('msg = sys.stdin.buffer.read()', 'import base64\nmsgs = [base64.b64decode(m) for m in json.loads(sys.stdin.buffer.read())]')}
res = []
for msg in msgs:
    d = dkim.DKIM(msg)
    n = len([h for h in d.headers if h[0].lower() == b'dkim-signature'])
    out = []
    for i in range(n):
        try:
            out.append(bool(d.verify(idx=i, dnsfunc=dnsfunc)))
        except Exception as e:
            out.append(False)
    res.append(out)
print(json.dumps(res))
`;

/** dkimpy's verdict on each DKIM-Signature of each message, in one Python process. */
export function dkimpyVerifyMany(msgs: readonly Buffer[], records: Record<string, string>): boolean[][] {
  return JSON.parse(python(VERIFY_MANY, Buffer.from(JSON.stringify(msgs.map((m) => m.toString('base64')))), { RECORDS: JSON.stringify(records) }).toString('utf8')) as boolean[][];
}
