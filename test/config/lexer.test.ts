// The lexer alone: logical lines, words, ${VAR}.

import * as assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError } from '../../src/config/errors';
import { expandVars, splitLines, tokenize } from '../../src/config/lexer';

const where = { file: 'f.conf', line: 7 };

test('splitLines: comments, blanks, continuation, CRLF', () => {
  const text = ['# c', '  # c2', '', 'A 1', '  B \\', '2 \\', '   3', 'C "#" # not a comment', 'D \\\\', 'E\r', 'F \\'].join('\n');
  assert.deepEqual(splitLines(text), [
    { line: 4, text: 'A 1' },
    { line: 5, text: 'B 2    3' },
    { line: 8, text: 'C "#" # not a comment' },
    { line: 9, text: 'D \\\\' },
    { line: 10, text: 'E' },
    { line: 11, text: 'F \\' },
  ]);
  assert.deepEqual(splitLines('X \\\r\nY\r\n'), [{ line: 1, text: 'X Y' }]);
});

test('tokenize: blanks, quotes and backslashes as Apache', () => {
  assert.deepEqual(tokenize('a  b\tc', where), ['a', 'b', 'c']);
  assert.deepEqual(tokenize('"a b" \'c d\'', where), ['a b', 'c d']);
  assert.deepEqual(tokenize('"a \\"q\\" \\\\ \\n"', where), ['a "q" \\ \\n']);
  assert.deepEqual(tokenize("'it\\'s' \"x'y\"", where), ["it's", "x'y"]);
  assert.deepEqual(tokenize('^/a\\.b$ x\\\\y', where), ['^/a\\.b$', 'x\\y']);
  assert.deepEqual(tokenize('"" a', where), ['', 'a']);
  assert.deepEqual(tokenize('"a"b', where), ['a', 'b']);
  assert.deepEqual(tokenize('key="a b"', where), ['key="a', 'b"']);
  assert.throws(
    () => tokenize('"open', where),
    (e: unknown) => e instanceof ConfigError && e.message.startsWith('f.conf:7: missing closing "'),
  );
});

test('expandVars: Define values, then env; an undefined name is kept as written and reported (Apache warns and goes on)', () => {
  const vars: Record<string, string> = { A: 'x', EMPTY: '' };
  const look = (n: string) => vars[n];
  assert.equal(expandVars('${A}/${A}-${EMPTY}.', look, where), 'x/x-.');
  assert.equal(expandVars('no vars $A {A}', look, where), 'no vars $A {A}');
  assert.equal(expandVars('${unterminated', look, where), '${unterminated');
  const missing: string[] = [];
  assert.equal(
    expandVars('a ${B} c ${A} ${C}', look, where, Infinity, (n) => missing.push(n)),
    'a ${B} c x ${C}',
  );
  assert.deepEqual(missing, ['B', 'C']);
});
