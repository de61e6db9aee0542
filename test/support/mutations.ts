/**
 * Input generation for the fuzz test: a seeded PRNG, mutations of encoded protobuf
 * (bytes) and of decoded messages (values), so every failure reproduces from its seed.
 */

/** mulberry32: small, fast and good enough to drive a fuzzer reproducibly. */
export class Prng {
  #state: number;

  constructor(seed: number) {
    this.#state = seed >>> 0;
  }

  /** A float in [0, 1). */
  next(): number {
    this.#state = (this.#state + 0x6d2b79f5) >>> 0;
    let t = this.#state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('pick from an empty list');
    return items[this.int(items.length)]!;
  }

  bytes(length: number): Uint8Array {
    const out = new Uint8Array(length);
    for (let i = 0; i < length; i++) out[i] = this.int(256);
    return out;
  }
}

/** Encodes a non-negative integer (below 2^53) as a protobuf varint. */
export function varint(value: number): number[] {
  const out: number[] = [];
  let rest = value;
  while (rest >= 0x80) {
    out.push((rest % 0x80) | 0x80);
    rest = Math.floor(rest / 0x80);
  }
  out.push(rest);
  return out;
}

/** -1 as an int32/int64 varint: ten bytes. */
const MINUS_ONE = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];

interface WireField {
  /** Offset of the field's key. */
  start: number;
  /** Offset just after the key. */
  valueStart: number;
  /** Offset of a length-delimited field's payload. */
  payloadStart: number;
  end: number;
  wireType: number;
}

/** The top-level fields of a well-formed encoding; stops at the first malformed one. */
function scanFields(bytes: Uint8Array): WireField[] {
  const fields: WireField[] = [];
  const readVarint = (at: number): [number, number] | undefined => {
    let value = 0;
    let scale = 1;
    for (let i = at; i < bytes.length && i < at + 10; i++) {
      const byte = bytes[i]!;
      value += (byte & 0x7f) * scale;
      scale *= 128;
      if ((byte & 0x80) === 0) return [value, i + 1];
    }
    return undefined;
  };
  let at = 0;
  while (at < bytes.length) {
    const key = readVarint(at);
    if (!key) break;
    const [tag, valueStart] = key;
    const wireType = tag & 7;
    let payloadStart = valueStart;
    let end: number;
    if (wireType === 0) {
      const value = readVarint(valueStart);
      if (!value) break;
      end = value[1];
    } else if (wireType === 1) end = valueStart + 8;
    else if (wireType === 5) end = valueStart + 4;
    else if (wireType === 2) {
      const length = readVarint(valueStart);
      if (!length) break;
      payloadStart = length[1];
      end = payloadStart + length[0];
    } else break;
    if (end > bytes.length) break;
    fields.push({ start: at, valueStart, payloadStart, end, wireType });
    at = end;
  }
  return fields;
}

function splice(bytes: Uint8Array, start: number, end: number, insert: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(bytes.length - (end - start) + insert.length);
  out.set(bytes.subarray(0, start), 0);
  out.set(insert, start);
  out.set(bytes.subarray(end), start + insert.length);
  return out;
}

/** Byte-level mutations: bit flips, truncation, tag tampering, huge lengths, odd varints. */
export function mutateBytes(rng: Prng, input: Uint8Array): { bytes: Uint8Array; how: string } {
  let bytes = input;
  const hows: string[] = [];
  const rounds = 1 + rng.int(3);
  for (let round = 0; round < rounds; round++) {
    const fields = scanFields(bytes);
    const field = fields.length > 0 ? rng.pick(fields) : undefined;
    switch (rng.int(9)) {
      case 0: {
        if (bytes.length === 0) break;
        const flips = 1 + rng.int(8);
        bytes = Uint8Array.from(bytes);
        for (let i = 0; i < flips; i++) bytes[rng.int(bytes.length)]! ^= 1 << rng.int(8);
        hows.push(`flip ${flips} bits`);
        break;
      }
      case 1:
        bytes = bytes.subarray(0, rng.int(bytes.length + 1));
        hows.push(`truncate to ${bytes.length}`);
        break;
      case 2: {
        // A new key: another field number (often one the message has), another wire type.
        if (!field) break;
        const fieldNumber = rng.chance(0.7) ? 1 + rng.int(20) : 1 + rng.int(536_870_911);
        const wireType = rng.pick([0, 1, 2, 3, 4, 5, 6, 7]);
        bytes = splice(bytes, field.start, field.valueStart, varint(fieldNumber * 8 + wireType));
        hows.push(`retag a field as ${fieldNumber}/${wireType}`);
        break;
      }
      case 3: {
        // A length prefix far beyond the message: the decoder must not trust it.
        const lengthDelimited = fields.filter(f => f.wireType === 2);
        if (lengthDelimited.length === 0) break;
        const target = rng.pick(lengthDelimited);
        const huge = rng.pick([2 ** 31 - 1, 2 ** 32 - 1, 2 ** 28, 0x7fff_ffff_ffff]);
        bytes = splice(bytes, target.valueStart, target.payloadStart, varint(huge));
        hows.push(`length ${huge}`);
        break;
      }
      case 4: {
        // An extra varint field: unknown enum numbers, negative and absurd integers.
        const fieldNumber = 1 + rng.int(24);
        const value = rng.pick([
          MINUS_ONE,
          varint(99),
          varint(2 ** 31 - 1),
          varint(2 ** 32 - 1),
          varint(2 ** 53 - 1),
          [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01],
        ]);
        bytes = Uint8Array.from([...bytes, ...varint(fieldNumber * 8), ...value]);
        hows.push(`append varint field ${fieldNumber}`);
        break;
      }
      case 5: {
        const at = rng.int(bytes.length + 1);
        const junk = rng.bytes(1 + rng.int(16));
        bytes = splice(bytes, at, at, junk);
        hows.push(`insert ${junk.length} random bytes`);
        break;
      }
      case 6: {
        if (!field) break;
        bytes = splice(bytes, field.start, field.end, []);
        hows.push('drop a field');
        break;
      }
      case 7: {
        if (!field) break;
        const copy = bytes.slice(field.start, field.end);
        const times = 1 + rng.int(rng.chance(0.1) ? 2_000 : 8);
        const repeated: number[] = [];
        for (let i = 0; i < times; i++) repeated.push(...copy);
        bytes = Uint8Array.from([...bytes, ...repeated]);
        hows.push(`repeat a field ${times} times`);
        break;
      }
      default: {
        // A length-delimited field whose payload is random: nested junk, invalid UTF-8.
        const fieldNumber = 1 + rng.int(24);
        const payload = rng.bytes(rng.int(64));
        bytes = Uint8Array.from([
          ...bytes,
          ...varint(fieldNumber * 8 + 2),
          ...varint(payload.length),
          ...payload,
        ]);
        hows.push(`append junk field ${fieldNumber}`);
      }
    }
  }
  return { bytes, how: hows.join(', ') };
}

/** Random bytes: mostly short, now and then a few kilobytes. */
export function randomBytes(rng: Prng): Uint8Array {
  return rng.bytes(rng.chance(0.9) ? rng.int(64) : rng.int(8_192));
}

function pageToken(value: unknown): string {
  return Buffer.from(JSON.stringify(value), 'utf8').toString('base64url');
}

/** Strings that probe validation: ids out of range, odd text, crafted page tokens, bad cron. */
const ODD_STRINGS: readonly string[] = [
  '',
  ' ',
  '0',
  '-1',
  '1e3',
  '9223372036854775807',
  '9223372036854775808',
  '99999999999999999999',
  '\u0000',
  '\uFFFD\uD800',
  '../../etc/passwd',
  "'; drop table job; --",
  '%_\\',
  'Mars/Olympus_Mons',
  'Europe/Berlin',
  '0 0 0 ? * MON-FRI',
  '0/0 * * * * ?',
  '* * * * * ? 1970',
  '1-2000000000 * * * * ?',
  '0 0 0 31 2 ? 2099',
  '9999999999',
  '2026-02-30',
  '99999-01-01',
  pageToken({ a: '99999999999999999999' }),
  pageToken({ a: -1 }),
  pageToken({ t: 1e300, i: '1' }),
  pageToken({ t: -8.64e15, i: '1' }),
  pageToken({ t: 8.64e15, i: '1' }),
  pageToken({ t: 'soon', i: '1' }),
  pageToken([]),
  'not base64 at all!',
];

const ODD_NUMBERS: readonly number[] = [
  -1,
  0,
  1,
  99,
  1_000,
  1_001,
  4_097,
  100_000,
  2 ** 31 - 1,
  -(2 ** 31),
  2 ** 32 - 1,
];

const ODD_DATES: readonly Date[] = [
  new Date(0),
  new Date(-8.64e15),
  new Date(8.64e15),
  new Date(-62_135_596_800_001),
  new Date(253_402_300_800_000),
];

function oddString(rng: Prng): string {
  switch (rng.int(4)) {
    case 0:
      return 'x'.repeat(rng.pick([255, 256, 4_096, 4_097, 65_536]));
    case 1:
      return '\u20AC'.repeat(rng.pick([100, 1_500, 30_000]));
    default:
      return rng.pick(ODD_STRINGS);
  }
}

/**
 * Replaces one to three leaves of a decoded message with probing values (recursing into
 * nested messages and lists). Returns a new object; the input is left alone.
 */
export function mutateValue(rng: Prng, message: unknown): unknown {
  let value = structuredClone(message);
  const rounds = 1 + rng.int(3);
  for (let round = 0; round < rounds; round++) value = mutateOnce(rng, value, 0);
  return value;
}

function mutateOnce(rng: Prng, value: unknown, depth: number): unknown {
  if (typeof value === 'string') return oddString(rng);
  if (typeof value === 'number') return rng.pick(ODD_NUMBERS);
  if (typeof value === 'boolean') return !value;
  if (value instanceof Date) return rng.pick(ODD_DATES);
  if (Array.isArray(value)) {
    const items = value as unknown[];
    if (items.length === 0 || rng.chance(0.2)) return rng.chance(0.5) ? [] : [oddString(rng)];
    if (rng.chance(0.2)) return Array.from({ length: rng.pick([101, 1_001, 5_000]) }, () => items[0]);
    const index = rng.int(items.length);
    const copy = [...items];
    copy[index] = mutateOnce(rng, items[index], depth + 1);
    return copy;
  }
  if (typeof value === 'object' && value !== null) {
    const record = value as Record<string, unknown>;
    const keys = Object.keys(record).filter(key => key !== '$case');
    if (keys.length === 0 || depth > 6) return value;
    const key = rng.pick(keys);
    if (rng.chance(0.1)) return { ...record, [key]: undefined };
    return { ...record, [key]: mutateOnce(rng, record[key], depth + 1) };
  }
  return value;
}
