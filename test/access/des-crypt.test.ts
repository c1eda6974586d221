// Traditional DES crypt against the real thing: hashes written by Apache's `htpasswd -d` for
// random passwords (non-ASCII bytes and more than 8 of them included) under its random salts,
// and by the system crypt() (through perl) under every one of the 4096 salts.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { test } from 'node:test';
import { desCrypt } from '../../src/access/des-crypt';
import { checkPassword, passwordFormat } from '../../src/access/passwords';

const ALPHABET = './0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/** A random password of 0 to 12 bytes: printable ASCII, or any byte but NUL and newline (argv and `$(…)` cannot carry them). */
function randomPassword(): Buffer {
  const ascii = randomInt(2) === 0;
  const out = Buffer.alloc(randomInt(13));
  for (let i = 0; i < out.length; i++) {
    let b: number;
    do b = ascii ? 32 + randomInt(95) : 1 + randomInt(255);
    while (b === 10);
    out[i] = b;
  }
  return out;
}

/** `htpasswd -nbd u <password>` with the password's exact bytes (printf turns octal escapes back into them). */
function htpasswdDes(password: Buffer): string {
  const octal = [...password].map((b) => '\\' + b.toString(8).padStart(3, '0')).join('');
  const line = execFileSync('sh', ['-c', 'exec htpasswd -nbd u "$(printf "$1")"', 'sh', octal], { stdio: ['ignore', 'pipe', 'ignore'] });
  return line.toString('latin1').trim().slice(2);
}

/** The system crypt() of each [password, salt], in one perl run. */
function systemCrypt(pairs: [Buffer, string][]): string[] {
  const input = pairs.map(([pw, salt]) => `${pw.toString('hex')} ${salt}\n`).join('');
  const script =
    'while (<STDIN>) { chomp; my ($h, $s) = split / /, $_, 2; my $r = crypt(pack("H*", $h), $s); print((defined $r ? $r : "undef"), "\\n") }';
  return execFileSync('perl', ['-e', script], { input }).toString('latin1').split('\n').slice(0, pairs.length);
}

const show = (pw: Buffer, salt: string): string => `password hex "${pw.toString('hex')}", salt "${salt}"`;

test('matches htpasswd -d for random passwords (0-12 bytes, non-ASCII too) under its random salts; a wrong password fails', () => {
  for (let n = 0; n < 120; n++) {
    const pw = randomPassword();
    const stored = htpasswdDes(pw);
    assert.equal(passwordFormat(stored), 'descrypt', stored);
    assert.equal(desCrypt(pw, stored), stored, show(pw, stored));
    // A change in the low 7 bits of a byte among the first 8 is a wrong password.
    const wrong = Buffer.from(pw.length === 0 ? 'x' : pw);
    if (pw.length > 0) wrong[randomInt(Math.min(8, wrong.length))] ^= 1 << randomInt(7);
    if (!wrong.includes(0)) assert.notEqual(desCrypt(wrong, stored), stored, show(wrong, stored));
    // Through checkPassword (a string, as Basic auth gives it) when the bytes are UTF-8.
    const text = pw.toString('utf8');
    if (Buffer.from(text, 'utf8').equals(pw)) {
      assert.equal(checkPassword(text, stored, 'descrypt'), true, show(pw, stored));
      assert.equal(checkPassword('\u0001' + text, stored, 'descrypt'), false, show(pw, stored));
    }
  }
});

test('matches the system crypt() under every one of the 4096 salts, for chosen and random passwords', () => {
  const chosen = ['', 'a', 'password', 'passwordXYZ', 'pässwörd', '\u00ff\u00ff\u00ff\u00ff\u00ff\u00ff\u00ff\u00ff', ' ~:!"#$%'].map((s) =>
    Buffer.from(s, s.startsWith('\u00ff') ? 'latin1' : 'utf8'),
  );
  const pairs: [Buffer, string][] = [];
  for (let i = 0; i < 4096; i++) {
    const salt = ALPHABET[i & 63]! + ALPHABET[i >> 6]!;
    pairs.push([chosen[i % chosen.length]!, salt], [randomPassword(), salt]);
  }
  const expected = systemCrypt(pairs);
  pairs.forEach(([pw, salt], i) => {
    assert.equal(expected[i]!.length, 13, show(pw, salt));
    assert.equal(desCrypt(pw, salt), expected[i], show(pw, salt));
    assert.equal(desCrypt(pw, expected[i]!), expected[i], 'the salt is read from a whole stored hash too');
  });
});

test("as crypt(): bytes after the 8th and each byte's high bit are ignored; the key ends at a NUL", () => {
  const pairs: [Buffer, string][] = [
    [Buffer.from('password'), 'ab'],
    [Buffer.from('passwordANYTHING'), 'ab'],
    [Buffer.from('p\u00e1ssword', 'latin1'), 'ab'],
    [Buffer.from('pass\u00e1word', 'latin1'), 'ab'],
  ];
  const expected = systemCrypt(pairs);
  assert.equal(expected[0], 'abJnggxhB/yWI');
  assert.equal(expected[1], expected[0]);
  for (const [i, [pw, salt]] of pairs.entries()) assert.equal(desCrypt(pw, salt), expected[i], show(pw, salt));
  // 'á' is 0xe1: its low 7 bits are 'a' (0x61), so the third password is the first.
  assert.equal(expected[2], expected[0]);
  assert.notEqual(expected[3], expected[0]);
  // A C string ends at its NUL (argv cannot carry one, so the comparison is with the shorter password).
  assert.equal(desCrypt(Buffer.from('pass\0word'), 'ab'), desCrypt(Buffer.from('pass'), 'ab'));
  assert.notEqual(desCrypt(Buffer.from('pass\0word'), 'ab'), expected[0]);
});

test('a salt outside ./0-9A-Za-z, or a missing one, gives no hash, as the system crypt() fails', () => {
  const settings = ['!a', 'a!', 'a ', '$a', 'a', ''];
  const system = systemCrypt(settings.map((s) => [Buffer.from('password'), s]));
  settings.forEach((setting, i) => {
    assert.ok(system[i] === '*0' || system[i] === 'undef', `crypt() fails for "${setting}": ${system[i]}`);
    assert.equal(desCrypt(Buffer.from('password'), setting), undefined, setting);
    if (setting.length === 2) assert.equal(checkPassword('password', setting + 'JnggxhB/yWI', 'descrypt'), false, setting);
  });
});

test('a verification takes well under a millisecond', (t) => {
  const passwords = Array.from({ length: 64 }, () => randomPassword());
  for (let i = 0; i < 200; i++) desCrypt(passwords[i % 64]!, 'ab');
  const rounds = 2000;
  const start = process.hrtime.bigint();
  for (let i = 0; i < rounds; i++) desCrypt(passwords[i % 64]!, 'ab');
  const each = Number(process.hrtime.bigint() - start) / rounds / 1000;
  t.diagnostic(`${each.toFixed(1)} µs per crypt`);
  assert.ok(each < 1000, `${each} µs per crypt`);
});
