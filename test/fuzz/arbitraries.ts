import fc from 'fast-check';

/*
 * Generators of hostile input, shared by the fuzz suites: strings of every Unicode plane and
 * of none (lone surrogates), control characters, case mappings that change a string's length,
 * huge and empty strings, JSON values of the wrong type, prototype keys, deep nesting; and the
 * valid values a JSON Schema describes, to break from there.
 */

/** Characters that have broken parsers, databases and normalisers somewhere. */
export const HOSTILE_CHARACTERS = [
  '\u0000', // PostgreSQL text cannot hold it
  '\u0001',
  '\u0008',
  '\t',
  '\n',
  '\r',
  '\u001b',
  '\u001f',
  '\u007f',
  '\u0085', // NEL: whitespace to some trims, not to others
  '\u00a0', // no-break space: JavaScript trims it, PostgreSQL does not
  '\u00ad',
  '\u0130', // İ: lower-cases to two code units (i + combining dot)
  '\u00df', // ß: upper-cases to two
  '\ufb03', // ﬃ: NFKC-normalises to three
  '\u2126', // Ω (ohm): NFKC-normalises to another code point
  '\u0301', // a combining accent with nothing to combine with
  '\u200b',
  '\u200d',
  '\u200e',
  '\u202e', // right-to-left override
  '\u2028',
  '\u2029',
  '\u3000',
  '\ufeff', // byte order mark: JavaScript trims it
  '\ufffd',
  '\uffff', // a noncharacter
  '\ud800', // lone high surrogate
  '\udfff', // lone low surrogate
  '\u{1f600}', // astral: two code units, one character
  '\u{e0001}', // a tag character
  '\u{10ffff}', // the last code point, a noncharacter
  '"',
  '\\',
  "'",
  '`',
  '<',
  '>',
  '&',
  '%',
  '/',
  '.',
  ';',
  '=',
  '?',
  '#',
  ' ',
  '$',
  '{',
  '}',
  '*',
] as const;

/** One UTF-16 code unit of any value, lone surrogates included. */
const codeUnit = fc.integer({ min: 0, max: 0xffff }).map((unit) => String.fromCharCode(unit));

/** Strings that are hard to handle: any plane, lone surrogates, control characters, the characters above. */
export const hostileString: fc.Arbitrary<string> = fc.oneof(
  { weight: 2, arbitrary: fc.string({ unit: fc.constantFrom(...HOSTILE_CHARACTERS), maxLength: 24 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 24 }) },
  { weight: 1, arbitrary: fc.string({ unit: codeUnit, maxLength: 24 }) },
  { weight: 1, arbitrary: fc.string({ maxLength: 24 }) },
  { weight: 1, arbitrary: fc.constantFrom('', ' ', '\u0000', 'null', 'undefined', '__proto__', 'NaN', '-0', '1e309', '{}', '[]') },
  // Huge: past every length limit, still under the 16 kB body limit (or just over it).
  {
    weight: 1,
    arbitrary: fc
      .tuple(
        fc.constantFrom('a', '\u0130', '\u{1f600}', ' ', '\u0000', '\ufb03', '%'),
        fc.constantFrom(73, 200, 255, 513, 4000, 5500, 17000),
      )
      .map(([character, count]) => character.repeat(count)),
  },
);

/** JSON numbers where strings belong, and the edges of numbers. */
export const hostileNumber: fc.Arbitrary<number> = fc.oneof(
  fc.integer(),
  fc.constantFrom(0, -0, -1, 1.5, 2 ** 53, -(2 ** 53), 1e308, -1e308, 5e-324, Number.MAX_SAFE_INTEGER + 2),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
);

/** Keys that reach an object's prototype when code assigns them carelessly. */
export const PROTOTYPE_KEYS = [
  '__proto__',
  'constructor',
  'prototype',
  'toString',
  'hasOwnProperty',
  'valueOf',
  '__defineGetter__',
] as const;

export const hostileKey: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...PROTOTYPE_KEYS) },
  { weight: 2, arbitrary: hostileString.filter((key) => key.length < 200) },
);

/**
 * An object with these own properties, `__proto__` included: assigning that key would set the
 * prototype instead, while JSON.parse (what the server does) makes it an own property.
 */
export function objectOf(entries: readonly (readonly [string, unknown])[]): Record<string, unknown> {
  const object: Record<string, unknown> = {};
  for (const [key, value] of entries) Object.defineProperty(object, key, { value, enumerable: true, writable: true, configurable: true });
  return object;
}

/** Arrays or objects nested `depth` deep around a leaf. */
export function nested(depth: number, leaf: unknown, kind: 'array' | 'object'): unknown {
  let value = leaf;
  for (let level = 0; level < depth; level += 1) value = kind === 'array' ? [value] : { a: value };
  return value;
}

/** Any JSON value, of the hostile kinds above, a few levels deep; sometimes nested very deep. */
export const hostileJson: fc.Arbitrary<unknown> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.letrec((tie) => ({
      value: fc.oneof(
        { depthSize: 'small', withCrossShrink: true },
        hostileString,
        hostileNumber,
        fc.boolean(),
        fc.constant(null),
        fc.array(tie('value'), { maxLength: 4 }),
        fc.array(fc.tuple(hostileKey, tie('value')), { maxLength: 4 }).map(objectOf),
      ),
    })).value,
  },
  {
    weight: 1,
    arbitrary: fc
      .tuple(
        // Deeper nesting goes as raw text (deepJsonText): the test's own helpers walk values by recursion.
        fc.constantFrom(64, 500),
        fc.constantFrom<'array' | 'object'>('array', 'object'),
        fc.constantFrom<unknown>('x', 1, null),
      )
      .map(([depth, kind, leaf]) => nested(depth, leaf, kind)),
  },
);

/** JSON text nested thousands deep, just under the 16 kB body limit: arrays, objects, or both. */
export const deepJsonText: fc.Arbitrary<string> = fc.constantFrom(
  `${'['.repeat(7999)}${']'.repeat(7999)}`,
  `${'{"a":'.repeat(2700)}1${'}'.repeat(2700)}`,
  `{"email":${'['.repeat(5000)}"x"${']'.repeat(5000)},"password":"x"}`,
  `${'[{"a":'.repeat(1500)}null${'}]'.repeat(1500)}`,
);

/** A value of another JSON type than `value`'s (a number for a string, a string for an array…). */
export function wrongTypeFor(value: unknown): fc.Arbitrary<unknown> {
  const choices: fc.Arbitrary<unknown>[] = [
    fc.constant(null),
    fc.boolean(),
    hostileNumber,
    fc.constant({}),
    fc.constant([]),
    fc.array(hostileString, { maxLength: 3 }),
  ];
  if (typeof value !== 'string') choices.push(hostileString);
  return fc.oneof(...choices).filter((other) => typeof other !== typeof value || Array.isArray(other) !== Array.isArray(value));
}

/** What an HTTP header may carry, as Node's client sends it: tab, visible ASCII, space, and Latin-1's upper half. */
const headerUnit = fc
  .oneof(
    { weight: 8, arbitrary: fc.integer({ min: 0x20, max: 0x7e }) },
    { weight: 1, arbitrary: fc.integer({ min: 0x80, max: 0xff }) },
    { weight: 1, arbitrary: fc.constant(0x09) },
  )
  .map((code) => String.fromCharCode(code));

export const headerValue: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: fc.string({ unit: headerUnit, maxLength: 40 }) },
  { weight: 1, arbitrary: fc.constantFrom('', ' ', '\t', 'null', 'undefined', '0', '-1', '__proto__') },
  { weight: 1, arbitrary: fc.constantFrom(300, 2000, 6000).map((count) => 'A'.repeat(count)) },
);

/** A path segment as it goes on the request line: percent-encoded text, or broken escapes. */
export const hostilePathSegment: fc.Arbitrary<string> = fc.oneof(
  {
    weight: 3,
    arbitrary: hostileString
      .filter((text) => text.length < 2000)
      .map((text) => encodeURIComponent(text.replace(/[\ud800-\udfff]/g, '\ufffd'))),
  },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      '%', // truncated
      '%G0',
      '%E0%A4%A', // truncated multi-byte
      '%C0%AF', // overlong "/"
      '%ED%A0%80', // an encoded lone surrogate
      '%FF%FE',
      '%00',
      '%2F',
      '%2e%2e',
      '..',
      '.',
      '%20',
      '%25',
      '~',
      '%F0%9F%98',
      'a%00b',
      '%u0041',
    ),
  },
  { weight: 1, arbitrary: fc.constantFrom(0, 1, -1, 1.5, 2 ** 60).map(String) },
  { weight: 1, arbitrary: fc.constantFrom(200, 3000).map((count) => 'x'.repeat(count)) },
);

/** A query value as it goes on the request line. */
export const hostileQueryValue: fc.Arbitrary<string> = fc.oneof(
  hostilePathSegment,
  fc.constantFrom(
    '',
    '1e2',
    '0x10',
    '-1',
    '0',
    '101',
    '1.5',
    'NaN',
    'Infinity',
    '+5',
    ' 5',
    '5 ',
    '%205',
    '9'.repeat(400),
    'true',
    '[]',
    '%5B%5D',
  ),
);

/** Marks a value that is filled in when the request is sent (a token or id made during the run). */
export class Ref {
  constructor(readonly name: string) {}
  toString(): string {
    return `Ref(${this.name})`;
  }
}

/* eslint-disable @typescript-eslint/no-explicit-any -- JSON Schema, parsed JSON */
type Schema = any;

/** Values the schema's field names are given besides the ones the schema alone describes. */
export type Hints = Readonly<Record<string, fc.Arbitrary<unknown>>>;

/** Resolves a `#/components/...` reference within the document. */
function resolve(schema: Schema, document: Schema): Schema {
  let current = schema;
  while (current && typeof current.$ref === 'string') {
    const pointer = (current.$ref as string).replace(/^#\//, '').split('/');
    current = pointer.reduce((node: Schema, key) => node?.[key.replace(/~1/g, '/').replace(/~0/g, '~')], document);
  }
  return current;
}

/**
 * Valid values of a JSON Schema (the subset zod-to-openapi writes), with `hints` mixed in by
 * property name: the schema says "a string", the hint knows which strings the service has.
 */
export function valueOf(schema: Schema, document: Schema, hints: Hints = {}, name?: string): fc.Arbitrary<unknown> {
  const own = schemaValue(resolve(schema, document), document, hints);
  const hint = name === undefined ? undefined : hints[name];
  return hint ? fc.oneof({ weight: 1, arbitrary: own }, { weight: 3, arbitrary: hint }) : own;
}

function schemaValue(schema: Schema, document: Schema, hints: Hints): fc.Arbitrary<unknown> {
  if (schema === undefined || schema === true || Object.keys(schema).length === 0) return hostileJson;
  if (schema.enum) return fc.constantFrom(...(schema.enum as unknown[]));
  if (schema.const !== undefined) return fc.constant(schema.const);
  const alternatives = (schema.anyOf ?? schema.oneOf) as Schema[] | undefined;
  if (alternatives) return fc.oneof(...alternatives.map((alternative) => valueOf(alternative, document, hints)));
  if (Array.isArray(schema.type)) {
    return fc.oneof(...(schema.type as string[]).map((type) => schemaValue({ ...schema, type }, document, hints)));
  }
  switch (schema.type) {
    case 'null':
      return fc.constant(null);
    case 'boolean':
      return fc.boolean();
    case 'integer':
      return fc.integer({ min: schema.minimum ?? -(2 ** 31), max: schema.maximum ?? 2 ** 31 });
    case 'number':
      return fc.double({ min: schema.minimum, max: schema.maximum, noNaN: true, noDefaultInfinity: true });
    case 'string':
      return stringOf(schema);
    case 'array': {
      const items = valueOf(schema.items ?? {}, document, hints);
      const constraints = { minLength: schema.minItems ?? 0, maxLength: Math.min(schema.maxItems ?? 4, 4) };
      // Distinct items unless told otherwise: the service refuses repeats the document cannot state (a role twice).
      return schema.uniqueItems === false
        ? fc.array(items, constraints)
        : fc.uniqueArray(items, { ...constraints, selector: (v) => JSON.stringify(v) });
    }
    case 'object':
    default: {
      const properties = (schema.properties ?? {}) as Record<string, Schema>;
      const required = new Set<string>(schema.required ?? []);
      const fields = Object.fromEntries(
        Object.entries(properties).map(([key, property]) => [key, valueOf(property, document, hints, key)]),
      );
      return fc.record(fields, { requiredKeys: Object.keys(fields).filter((key) => required.has(key)) });
    }
  }
}

function stringOf(schema: Schema): fc.Arbitrary<string> {
  const minLength = schema.minLength ?? 0;
  const maxLength = Math.min(schema.maxLength ?? 40, 40);
  switch (schema.format) {
    case 'uuid':
      return fc.uuid();
    case 'email':
      return fc.emailAddress().filter((email) => email.length <= (schema.maxLength ?? 254));
    case 'date-time':
      return fc.date({ noInvalidDate: true, min: new Date(0), max: new Date(4102444800000) }).map((date) => date.toISOString());
    default:
      if (schema.pattern) return fc.stringMatching(new RegExp(schema.pattern as string));
      return fc.string({ minLength, maxLength: Math.max(minLength, maxLength) });
  }
}
