// Password hashes as Apache's `htpasswd` writes them, checked the way Apache on Linux checks them
// (apr_password_validate): bcrypt `$2y$` (-B), `$apr1$` MD5 (-m, the default), `{SHA}` (-s),
// the system crypt() formats `$1$` MD5, `$5$` SHA-256 (-2) and `$6$` SHA-512 (-5), and
// traditional DES crypt (-d, see des-crypt.ts). Plaintext (-p) is refused when the file is read
// (see passwordFormat): Apache on Linux never accepts a plaintext entry (it hands it to crypt(),
// which does not return it unchanged).
//
// Every comparison of a computed hash with the stored one is constant-time. Successful checks
// are remembered (see VerifyCache) because bcrypt is slow by design and runs on the event loop.

import { createHash, timingSafeEqual } from 'node:crypto';
import bcrypt from 'bcryptjs';
import { desCrypt } from './des-crypt';

export type PasswordFormat = 'bcrypt' | 'apr1' | 'md5crypt' | 'sha1' | 'sha256crypt' | 'sha512crypt' | 'descrypt';

/** The format of a stored hash, or a sentence saying why it cannot be used. */
export function passwordFormat(hash: string): PasswordFormat | { refused: string } {
  if (/^\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}$/.test(hash)) return 'bcrypt';
  if (/^\$apr1\$[^$]{0,8}\$[./0-9A-Za-z]{22}$/.test(hash)) return 'apr1';
  if (/^\$1\$[^$]{0,8}\$[./0-9A-Za-z]{22}$/.test(hash)) return 'md5crypt';
  if (/^\{SHA\}[A-Za-z0-9+/]{27}=$/.test(hash)) return 'sha1';
  if (/^\$5\$(rounds=\d+\$)?[^$]{0,16}\$[./0-9A-Za-z]{43}$/.test(hash)) return 'sha256crypt';
  if (/^\$6\$(rounds=\d+\$)?[^$]{0,16}\$[./0-9A-Za-z]{86}$/.test(hash)) return 'sha512crypt';
  // Two salt characters and 11 of hash, all in crypt's alphabet (crypt() fails on any other salt).
  if (/^[./0-9A-Za-z]{13}$/.test(hash)) return 'descrypt';
  return {
    refused:
      'not a hash Apache checks on Linux (plaintext, htpasswd -p, is accepted only on Windows and NetWare, and other forms are unknown); hash it with htpasswd -B',
  };
}

/** Whether `password` matches `hash` (of a format passwordFormat accepted). */
export function checkPassword(password: string, hash: string, format: PasswordFormat): boolean {
  const pw = Buffer.from(password, 'utf8');
  let computed: string;
  switch (format) {
    case 'bcrypt':
      // bcryptjs reads the cost and salt from the stored hash; the result keeps its `$2y$` prefix.
      computed = bcrypt.hashSync(password, hash.slice(0, 29));
      if (computed.slice(0, 4) !== hash.slice(0, 4)) computed = hash.slice(0, 4) + computed.slice(4);
      break;
    case 'apr1':
      computed = md5Crypt(pw, hash, '$apr1$');
      break;
    case 'md5crypt':
      computed = md5Crypt(pw, hash, '$1$');
      break;
    case 'sha1':
      computed = '{SHA}' + createHash('sha1').update(pw).digest('base64');
      break;
    case 'sha256crypt':
      computed = shaCrypt(pw, hash, 'sha256');
      break;
    case 'sha512crypt':
      computed = shaCrypt(pw, hash, 'sha512');
      break;
    case 'descrypt':
      // Undefined only for a salt passwordFormat does not accept: then nothing matches, as with crypt().
      computed = desCrypt(pw, hash) ?? '';
      break;
  }
  return sameText(computed, hash);
}

/** Constant-time equality of two ASCII strings (the length is not secret: it is the format's). */
export function sameText(a: string, b: string): boolean {
  const x = Buffer.from(a, 'latin1');
  const y = Buffer.from(b, 'latin1');
  return x.length === y.length && timingSafeEqual(x, y);
}

const ITOA64 = './0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/** crypt()'s base-64 of three bytes (b2 most significant), `n` characters, least significant first. */
function to64(b2: number, b1: number, b0: number, n: number): string {
  let w = (b2 << 16) | (b1 << 8) | b0;
  let out = '';
  for (let i = 0; i < n; i++) {
    out += ITOA64[w & 0x3f];
    w >>>= 6;
  }
  return out;
}

/** Poul-Henning Kamp's MD5 crypt, with Apache's `$apr1$` or glibc's `$1$` magic. */
function md5Crypt(pw: Buffer, stored: string, magic: string): string {
  const rest = stored.slice(magic.length);
  const salt = Buffer.from(rest.slice(0, Math.min(8, rest.indexOf('$'))), 'latin1');
  let final = createHash('md5').update(pw).update(salt).update(pw).digest();
  const ctx = createHash('md5').update(pw).update(magic).update(salt);
  for (let left = pw.length; left > 0; left -= 16) ctx.update(final.subarray(0, Math.min(left, 16)));
  for (let i = pw.length; i !== 0; i >>>= 1) ctx.update((i & 1) !== 0 ? Buffer.of(0) : pw.subarray(0, 1));
  final = ctx.digest();
  for (let i = 0; i < 1000; i++) {
    const h = createHash('md5');
    h.update((i & 1) !== 0 ? pw : final);
    if (i % 3 !== 0) h.update(salt);
    if (i % 7 !== 0) h.update(pw);
    h.update((i & 1) !== 0 ? final : pw);
    final = h.digest();
  }
  const f = final;
  return (
    magic +
    salt.toString('latin1') +
    '$' +
    to64(f[0], f[6], f[12], 4) +
    to64(f[1], f[7], f[13], 4) +
    to64(f[2], f[8], f[14], 4) +
    to64(f[3], f[9], f[15], 4) +
    to64(f[4], f[10], f[5], 4) +
    to64(0, 0, f[11], 2)
  );
}

// The byte order of SHA-crypt's output encoding (Drepper's specification), three bytes a group.
const SHA256_ORDER = [0, 10, 20, 21, 1, 11, 12, 22, 2, 3, 13, 23, 24, 4, 14, 15, 25, 5, 6, 16, 26, 27, 7, 17, 18, 28, 8, 9, 19, 29];
const SHA512_ORDER = [
  0, 21, 42, 22, 43, 1, 44, 2, 23, 3, 24, 45, 25, 46, 4, 47, 5, 26, 6, 27, 48, 28, 49, 7, 50, 8, 29, 9, 30, 51, 31, 52, 10, 53, 11, 32, 12,
  33, 54, 34, 55, 13, 56, 14, 35, 15, 36, 57, 37, 58, 16, 59, 17, 38, 18, 39, 60, 40, 61, 19, 62, 20, 41,
];

/** Ulrich Drepper's SHA-256/SHA-512 crypt (`$5$`, `$6$`), as glibc's crypt() computes it. */
function shaCrypt(pw: Buffer, stored: string, alg: 'sha256' | 'sha512'): string {
  const magic = alg === 'sha256' ? '$5$' : '$6$';
  let rest = stored.slice(3);
  let rounds = 5000;
  let roundsText = '';
  const r = /^rounds=(\d+)\$/.exec(rest);
  if (r !== null) {
    rounds = Math.min(999_999_999, Math.max(1000, Number(r[1])));
    roundsText = `rounds=${rounds}$`;
    rest = rest.slice(r[0].length);
  }
  const salt = Buffer.from(rest.slice(0, Math.min(16, rest.indexOf('$'))), 'latin1');
  const hashLen = alg === 'sha256' ? 32 : 64;
  const H = () => createHash(alg);
  const b = H().update(pw).update(salt).update(pw).digest();
  const a = H().update(pw).update(salt);
  let n = pw.length;
  for (; n > hashLen; n -= hashLen) a.update(b);
  a.update(b.subarray(0, n));
  for (let i = pw.length; i > 0; i >>>= 1) a.update((i & 1) !== 0 ? b : pw);
  let c = a.digest();
  const dp = H();
  for (let i = 0; i < pw.length; i++) dp.update(pw);
  const p = repeatTo(dp.digest(), pw.length);
  const ds = H();
  for (let i = 0; i < 16 + c[0]; i++) ds.update(salt);
  const s = repeatTo(ds.digest(), salt.length);
  for (let i = 0; i < rounds; i++) {
    const h = H();
    h.update((i & 1) !== 0 ? p : c);
    if (i % 3 !== 0) h.update(s);
    if (i % 7 !== 0) h.update(p);
    h.update((i & 1) !== 0 ? c : p);
    c = h.digest();
  }
  const order = alg === 'sha256' ? SHA256_ORDER : SHA512_ORDER;
  let out = '';
  for (let i = 0; i < order.length; i += 3) out += to64(c[order[i]], c[order[i + 1]], c[order[i + 2]], 4);
  out += alg === 'sha256' ? to64(0, c[31], c[30], 3) : to64(0, 0, c[63], 2);
  return magic + roundsText + salt.toString('latin1') + '$' + out;
}

function repeatTo(block: Buffer, length: number): Buffer {
  const out = Buffer.alloc(length);
  for (let i = 0; i < length; i += block.length) block.copy(out, i, 0, Math.min(block.length, length - i));
  return out;
}

/**
 * Successful checks, so that a client sending the same right password on every request pays
 * the hash (bcrypt: milliseconds to a second, on the event loop) once. The key is a SHA-256 of
 * user, password and stored hash: the password itself is never kept, and a changed password file
 * (a reload) gives new keys. Failures are not remembered, so a guess always costs a full check.
 * Bounded: the oldest entry goes when it is full.
 */
export class VerifyCache {
  private readonly seen = new Map<string, true>();

  constructor(private readonly max = 4096) {}

  check(user: string, password: string, hash: string, format: PasswordFormat): boolean {
    const key = createHash('sha256').update(user).update('\0').update(password).update('\0').update(hash).digest('base64');
    if (this.seen.has(key)) return true;
    if (!checkPassword(password, hash, format)) return false;
    if (this.seen.size >= this.max) this.seen.delete(this.seen.keys().next().value as string);
    this.seen.set(key, true);
    return true;
  }

  get size(): number {
    return this.seen.size;
  }
}
