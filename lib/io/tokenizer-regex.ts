/**
 * Oniguruma (the regex engine behind Hugging Face tokenizers' Split / Replace patterns) -> JS RegExp with
 * the `u` flag. The two differ in ways that change token ids, so the pattern is rewritten, not passed:
 *   \s \S -> White_Space property (JS \s adds U+FEFF, lacks U+0085); \d -> \p{Nd}; \w -> L|M|N|Pc;
 *   .  -> [^\n] (Onig's dot matches \r and U+2028); ^ $ -> line anchors (before/after \n only);
 *   \A \z \Z \h \x{..} \pL \p{^X} \p{Han}; (?i:...) -> per-letter classes (JS 20 has no modifiers;
 *   Onig's folding also sends s to U+017F and k to U+212A); capturing groups -> (?:...);
 *   possessive X*+ X++ X?+ and atomic (?>X) -> (?=(?<aN>X))\k<aN> (lookahead does not backtrack).
 * Checked against Onig through the tokenizers library on the fixture tokenizers' patterns and on a
 * table of edge cases (see test/tokenizer.test.js). Anything not handled throws, naming the pattern.
 */

const WORD = '\\p{L}\\p{M}\\p{N}\\p{Pc}';
const SYNTAX = new Set('^$\\.*+?()[]{}|/'.split(''));
const CASE_EXTRA: Record<string, string> = { s: '\u017f', S: '\u017f', '\u017f': 'sS', k: '\u212a', K: '\u212a', '\u212a': 'kK', '\u00e5': '\u212b', '\u00c5': '\u212b', '\u212b': '\u00e5\u00c5' };
const POSIX: Record<string, string> = {
  alpha: '\\p{Alphabetic}', digit: '\\p{Nd}', alnum: '\\p{Alphabetic}\\p{Nd}', space: '\\p{White_Space}',
  upper: '\\p{Uppercase}', lower: '\\p{Lowercase}', punct: '\\p{P}', xdigit: '0-9A-Fa-f', word: WORD,
  cntrl: '\\p{Cc}', blank: '\\p{Zs}\\t',
};

export class RegexTranslateError extends Error {}

function escapeLiteral(c: string, inClass: boolean): string {
  if (SYNTAX.has(c) || (inClass && c === '-')) return '\\' + c;
  return c;
}

function caseVariants(c: string): string[] {
  const out = new Set<string>([c]);
  for (const v of [c.toLowerCase(), c.toUpperCase()]) if (Array.from(v).length === 1) out.add(v);
  for (const v of CASE_EXTRA[c] ?? '') out.add(v);
  return [...out];
}

function propertyName(name: string, negate: boolean): string {
  let n = name;
  let neg = negate;
  if (n.startsWith('^')) {
    n = n.slice(1);
    neg = !neg;
  }
  const tag = neg ? 'P' : 'p';
  for (const cand of [n, `Script=${n}`]) {
    try {
      new RegExp(`\\${tag}{${cand}}`, 'u');
      return `\\${tag}{${cand}}`;
    } catch {
      /* try the next spelling */
    }
  }
  throw new RegexTranslateError(`unknown property \\p{${name}}`);
}

/** Translates an Oniguruma pattern to a JS pattern string for `new RegExp(src, 'gu')`. */
export function translateOniguruma(pattern: string): string {
  const out: string[] = [];
  // One frame per open group: where it starts in `out`, its kind, and the case-insensitivity to restore.
  const groups: { start: number; atomic: boolean; ciBefore: boolean }[] = [];
  let ci = false;
  let named = 0;
  let lastAtom = -1; // index in `out` where the last quantifiable atom starts; -1 = none
  const p = pattern;
  let i = 0;

  const readEscape = (inClass: boolean): string => {
    // p[i] === '\\'
    const c = p[i + 1];
    if (c === undefined) throw new RegexTranslateError('pattern ends with a backslash');
    i += 2;
    switch (c) {
      case 's': return '\\p{White_Space}';
      case 'S': return '\\P{White_Space}';
      case 'd': return '\\p{Nd}';
      case 'D': return '\\P{Nd}';
      case 'w': return inClass ? WORD : `[${WORD}]`;
      case 'W':
        if (inClass) throw new RegexTranslateError('\\W inside a character class');
        return `[^${WORD}]`;
      case 'h': return inClass ? '0-9a-fA-F' : '[0-9a-fA-F]';
      case 'H':
        if (inClass) throw new RegexTranslateError('\\H inside a character class');
        return '[^0-9a-fA-F]';
      case 't': return '\\t';
      case 'n': return '\\n';
      case 'r': return '\\r';
      case 'f': return '\\f';
      case 'v': return '\\v';
      case 'a': return '\\x07';
      case 'e': return '\\x1b';
      case 'p':
      case 'P': {
        if (p[i] === '{') {
          const end = p.indexOf('}', i);
          if (end < 0) throw new RegexTranslateError('unterminated \\p{');
          const name = p.slice(i + 1, end);
          i = end + 1;
          return propertyName(name, c === 'P');
        }
        const name = p[i++];
        if (!name) throw new RegexTranslateError('\\p without a name');
        return propertyName(name, c === 'P');
      }
      case 'x': {
        if (p[i] === '{') {
          const end = p.indexOf('}', i);
          if (end < 0) throw new RegexTranslateError('unterminated \\x{');
          const hex = p.slice(i + 1, end);
          i = end + 1;
          return `\\u{${hex}}`;
        }
        const hex = p.slice(i, i + 2);
        i += 2;
        return `\\x${hex}`;
      }
      case 'u': {
        const hex = p.slice(i, i + 4);
        i += 4;
        return `\\u${hex}`;
      }
      default:
        break;
    }
    if (!inClass) {
      if (c === 'A') return '^';
      if (c === 'z') return '$';
      if (c === 'Z') return '(?=\\n?$)';
      if (c === 'b') return `(?:(?<=[${WORD}])(?![${WORD}])|(?<![${WORD}])(?=[${WORD}]))`;
      if (c === 'B') return `(?:(?<=[${WORD}])(?=[${WORD}])|(?<![${WORD}])(?![${WORD}]))`;
    }
    if (/[0-9A-Za-z]/.test(c)) throw new RegexTranslateError(`unsupported escape \\${c}`);
    // Identity escape of punctuation: JS's u mode only accepts escaped syntax characters.
    const cp = String.fromCodePoint(p.codePointAt(i - 1)!);
    i += cp.length - 1;
    return escapeLiteral(cp, inClass);
  };

  const readClass = (): string => {
    // p[i] === '['
    let s = '[';
    i++;
    if (p[i] === '^') {
      s += '^';
      i++;
    }
    let first = true;
    while (i < p.length) {
      const c = p[i];
      if (c === ']' && !first) {
        i++;
        return s + ']';
      }
      first = false;
      if (c === '[') {
        const m = /^\[:(\^?)([a-z]+):\]/.exec(p.slice(i));
        if (!m || !(m[2] in POSIX) || m[1]) throw new RegexTranslateError('nested character classes are not supported');
        s += POSIX[m[2]];
        i += m[0].length;
        continue;
      }
      if (c === '&' && p[i + 1] === '&') throw new RegexTranslateError('class intersection (&&) is not supported');
      if (c === '\\') {
        s += readEscape(true);
        continue;
      }
      const cp = String.fromCodePoint(p.codePointAt(i)!);
      i += cp.length;
      if (c === '-') {
        s += '-';
        continue;
      }
      const rangeStart = p[i] === '-' && p[i + 1] !== ']' && p[i + 1] !== undefined;
      if (ci && rangeStart && /^[a-zA-Z]$/.test(cp) && /^[a-zA-Z]$/.test(p[i + 1])) {
        // An ASCII letter range under (?i): add the other case (and the two non-ASCII folds).
        const lo = cp.toLowerCase();
        const hi = p[i + 1].toLowerCase();
        if ((cp === lo) !== (p[i + 1] === hi)) throw new RegexTranslateError('mixed-case ranges inside (?i) are not supported');
        s += `${lo}-${hi}${lo.toUpperCase()}-${hi.toUpperCase()}`;
        if (lo <= 's' && 's' <= hi) s += '\u017f';
        if (lo <= 'k' && 'k' <= hi) s += '\u212a';
        i += 2;
        continue;
      }
      const inRange = rangeStart || (s.endsWith('-') && !s.endsWith('\\-'));
      if (ci && !inRange) s += caseVariants(cp).map((v) => escapeLiteral(v, true)).join('');
      else if (ci && /\p{L}/u.test(cp)) throw new RegexTranslateError('non-ASCII letter ranges inside (?i) are not supported');
      else s += escapeLiteral(cp, true);
    }
    throw new RegexTranslateError('unterminated character class');
  };

  const applyQuantifier = (q: string, mode: string) => {
    if (lastAtom < 0) throw new RegexTranslateError(`quantifier ${q} with nothing to repeat`);
    if (mode === '+') {
      const atom = out.splice(lastAtom).join('');
      const name = `a${named++}`;
      out.push(`(?=(?<${name}>${atom}${q}))\\k<${name}>`);
    } else {
      out.push(q + mode);
    }
    lastAtom = -1;
  };

  while (i < p.length) {
    const c = p[i];
    if (c === '\\') {
      lastAtom = out.length;
      out.push(readEscape(false));
      continue;
    }
    if (c === '[') {
      lastAtom = out.length;
      out.push(readClass());
      continue;
    }
    if (c === '(') {
      const rest = p.slice(i);
      if (rest.startsWith('(?#')) {
        const end = p.indexOf(')', i);
        if (end < 0) throw new RegexTranslateError('unterminated comment group');
        i = end + 1;
        continue;
      }
      const frame = { start: out.length, atomic: false, ciBefore: ci };
      let m: RegExpExecArray | null;
      if ((m = /^\(\?([imx]*)(?:-([imx]*))?\)/.exec(rest))) {
        // Inline flags for the rest of the enclosing group.
        if (m[1].includes('x') || m[1].includes('m')) throw new RegexTranslateError(`unsupported inline flags ${m[0]}`);
        if (m[1].includes('i')) ci = true;
        if (m[2]?.includes('i')) ci = false;
        i += m[0].length;
        continue;
      }
      if ((m = /^\(\?([imx]*)(?:-([imx]*))?:/.exec(rest))) {
        if (m[1].includes('x') || m[1].includes('m')) throw new RegexTranslateError(`unsupported group flags ${m[0]}`);
        if (m[1].includes('i')) ci = true;
        if (m[2]?.includes('i')) ci = false;
        out.push('(?:');
        i += m[0].length;
      } else if (rest.startsWith('(?>')) {
        frame.atomic = true;
        out.push('(?:');
        i += 3;
      } else if ((m = /^\(\?(=|!|<=|<!)/.exec(rest))) {
        out.push(m[0]);
        i += m[0].length;
      } else if ((m = /^\(\?(<[A-Za-z_]\w*>|'[A-Za-z_]\w*'|P<[A-Za-z_]\w*>)/.exec(rest))) {
        out.push('(?:');
        i += m[0].length;
      } else if (rest.startsWith('(?')) {
        throw new RegexTranslateError(`unsupported group ${rest.slice(0, 4)}`);
      } else {
        out.push('(?:');
        i += 1;
      }
      groups.push(frame);
      lastAtom = -1;
      continue;
    }
    if (c === ')') {
      const frame = groups.pop();
      if (!frame) throw new RegexTranslateError('unbalanced )');
      i++;
      out.push(')');
      if (frame.atomic) {
        const inner = out.splice(frame.start).join('');
        const name = `a${named++}`;
        out.push(`(?=(?<${name}>${inner}))\\k<${name}>`);
      }
      ci = frame.ciBefore;
      lastAtom = frame.start;
      continue;
    }
    if (c === '*' || c === '+' || c === '?') {
      i++;
      let mode = '';
      if (p[i] === '?' || p[i] === '+') mode = p[i++];
      applyQuantifier(c, mode);
      continue;
    }
    if (c === '{') {
      const m = /^\{(\d*)(,(\d*))?\}/.exec(p.slice(i));
      if (m && (m[1] !== '' || (m[2] && m[3] !== ''))) {
        i += m[0].length;
        const q = m[1] === '' ? `{0,${m[3]}}` : m[0];
        let mode = '';
        // Onig: {n,m}? is lazy; {n,m}+ is NOT possessive in its default syntax (it repeats the interval).
        if (p[i] === '?') mode = p[i++];
        const atomStart = lastAtom;
        applyQuantifier(q, mode);
        if (p[i] === '+') {
          i++;
          const atom = out.splice(atomStart).join('');
          out.push(`(?:${atom})+`);
        }
        continue;
      }
      lastAtom = out.length;
      out.push('\\{');
      i++;
      continue;
    }
    if (c === '}' || c === ']') {
      lastAtom = out.length;
      out.push('\\' + c);
      i++;
      continue;
    }
    if (c === '|') {
      out.push('|');
      lastAtom = -1;
      i++;
      continue;
    }
    if (c === '.') {
      lastAtom = out.length;
      out.push('[^\\n]');
      i++;
      continue;
    }
    if (c === '^') {
      out.push('(?<![^\\n])');
      lastAtom = -1;
      i++;
      continue;
    }
    if (c === '$') {
      out.push('(?![^\\n])');
      lastAtom = -1;
      i++;
      continue;
    }
    const cp = String.fromCodePoint(p.codePointAt(i)!);
    i += cp.length;
    lastAtom = out.length;
    if (ci) {
      const vs = caseVariants(cp);
      out.push(vs.length > 1 ? `[${vs.map((v) => escapeLiteral(v, true)).join('')}]` : escapeLiteral(cp, false));
    } else {
      out.push(escapeLiteral(cp, false));
    }
  }
  if (groups.length) throw new RegexTranslateError('unbalanced (');
  return out.join('');
}

/** Compiles an Oniguruma pattern to a global, unicode JS RegExp. Throws RegexTranslateError. */
export function compileOniguruma(pattern: string): RegExp {
  const src = translateOniguruma(pattern);
  try {
    return new RegExp(src, 'gu');
  } catch (e) {
    throw new RegexTranslateError(`JS RegExp rejected the translation ${JSON.stringify(src)}: ${(e as Error).message}`);
  }
}

/** A global RegExp matching the literal string `s`. */
export function literalRegExp(s: string): RegExp {
  return new RegExp(s.replace(/[\\^$.*+?()[\]{}|/]/g, '\\$&'), 'gu'); // '-' is literal outside a class
}
