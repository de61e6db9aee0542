import { isIPv4, isIPv6 } from 'node:net';
import { ServerError, Status } from 'nice-grpc';

/**
 * Limits on ExecutorService.Connect, checked before a call costs a database round trip
 * or holds a stream: Connect attempts and failed authentications per remote host (token
 * buckets), and concurrent streams per executor group on this admin.
 */
export interface ConnectLimitsOptions {
  /** Concurrent streams one executor group (one token) may hold on this admin. */
  maxStreamsPerGroup: number;
  /** Connect attempts per second per remote host, in bursts of up to twice as many; 0 disables. */
  attemptsPerSecond: number;
  /** Failed authentications per second per remote host, in bursts of up to twice as many; 0 disables. */
  failedAuthenticationsPerSecond: number;
  /** Hosts whose buckets are remembered; beyond it the least recently seen are forgotten. */
  maxTrackedHosts?: number;
  /** Milliseconds on a monotonic clock (tests replace it). */
  now?: () => number;
}

const DEFAULT_MAX_TRACKED_HOSTS = 10_000;
/** How often buckets that refilled completely are dropped (they hold no information). */
const SWEEP_INTERVAL_MS = 10_000;

export class ConnectLimits {
  readonly #maxStreamsPerGroup: number;
  readonly #attempts: HostBuckets | undefined;
  readonly #failures: HostBuckets | undefined;
  readonly #streamsPerGroup = new Map<string, number>();

  constructor(options: ConnectLimitsOptions) {
    const now = options.now ?? (() => performance.now());
    const maxHosts = options.maxTrackedHosts ?? DEFAULT_MAX_TRACKED_HOSTS;
    this.#maxStreamsPerGroup = options.maxStreamsPerGroup;
    this.#attempts =
      options.attemptsPerSecond > 0
        ? new HostBuckets(options.attemptsPerSecond, 2 * options.attemptsPerSecond, maxHosts, now)
        : undefined;
    this.#failures =
      options.failedAuthenticationsPerSecond > 0
        ? new HostBuckets(
            options.failedAuthenticationsPerSecond,
            2 * options.failedAuthenticationsPerSecond,
            maxHosts,
            now,
          )
        : undefined;
  }

  /**
   * Admits one Connect call from `peer` (CallContext.peer) or throws RESOURCE_EXHAUSTED.
   * The caller reports a failed authentication and the group it authenticated as on the
   * returned admission, and releases it when the call ends.
   */
  admit(peer: string): ConnectAdmission {
    const host = peerHost(peer);
    // Checked first and without taking a token: a host that keeps failing to authenticate
    // must not also use up the attempts its well-configured executors need later.
    if (this.#failures && !this.#failures.hasToken(host)) {
      throw new ServerError(
        Status.RESOURCE_EXHAUSTED,
        `too many failed Connect authentications from ${host}; retry later`,
      );
    }
    if (this.#attempts && !this.#attempts.take(host)) {
      throw new ServerError(Status.RESOURCE_EXHAUSTED, `too many Connect attempts from ${host}; retry later`);
    }
    return new ConnectAdmission(this, host);
  }

  /** Streams currently held per group id (for tests and diagnostics). */
  streamsOf(groupId: string): number {
    return this.#streamsPerGroup.get(groupId) ?? 0;
  }

  /** Hosts with a rate-limit bucket in memory (bounded by maxTrackedHosts per limit). */
  get trackedHosts(): number {
    return Math.max(this.#attempts?.size ?? 0, this.#failures?.size ?? 0);
  }

  /** @internal */
  failedAuthentication(host: string): void {
    this.#failures?.take(host);
  }

  /** @internal */
  holdStream(groupId: string, appName: string): void {
    const held = this.#streamsPerGroup.get(groupId) ?? 0;
    if (held >= this.#maxStreamsPerGroup) {
      throw new ServerError(
        Status.RESOURCE_EXHAUSTED,
        `executor group "${appName}" already holds ${held} streams on this admin, the most allowed ` +
          '(JOBSTREAM_MAX_STREAMS_PER_GROUP); retry later or connect to another admin',
      );
    }
    this.#streamsPerGroup.set(groupId, held + 1);
  }

  /** @internal */
  releaseStream(groupId: string): void {
    const held = (this.#streamsPerGroup.get(groupId) ?? 1) - 1;
    if (held <= 0) this.#streamsPerGroup.delete(groupId);
    else this.#streamsPerGroup.set(groupId, held);
  }
}

/** One admitted Connect call. */
export class ConnectAdmission {
  readonly #limits: ConnectLimits;
  readonly host: string;
  #groupId: string | undefined;
  #released = false;

  constructor(limits: ConnectLimits, host: string) {
    this.#limits = limits;
    this.host = host;
  }

  /** The call's token was not accepted: counts against the host's failed-authentication budget. */
  authenticationFailed(): void {
    this.#limits.failedAuthentication(this.host);
  }

  /** Takes one of the group's stream slots until release(), or throws RESOURCE_EXHAUSTED. */
  holdStream(group: { id: string; appName: string }): void {
    if (this.#groupId !== undefined || this.#released) throw new Error('stream slot already taken');
    this.#limits.holdStream(group.id, group.appName);
    this.#groupId = group.id;
  }

  /** Gives the stream slot back; safe to call more than once. */
  release(): void {
    if (this.#released) return;
    this.#released = true;
    if (this.#groupId !== undefined) this.#limits.releaseStream(this.#groupId);
  }
}

/**
 * Token buckets keyed by host, in a Map kept in least-recently-used order. A bucket that
 * has refilled completely is the same as no bucket, so sweeps drop those; the size cap
 * forgets the least recently seen hosts, which at worst gives such a host a fresh burst.
 */
class HostBuckets {
  readonly #buckets = new Map<string, { tokens: number; at: number }>();
  readonly #rate: number;
  readonly #burst: number;
  readonly #maxHosts: number;
  readonly #now: () => number;
  #lastSweep: number;

  constructor(ratePerSecond: number, burst: number, maxHosts: number, now: () => number) {
    this.#rate = ratePerSecond / 1000;
    this.#burst = burst;
    this.#maxHosts = maxHosts;
    this.#now = now;
    this.#lastSweep = now();
  }

  get size(): number {
    return this.#buckets.size;
  }

  hasToken(host: string): boolean {
    const now = this.#now();
    this.#sweep(now);
    const bucket = this.#buckets.get(host);
    return bucket === undefined || this.#tokens(bucket, now) >= 1;
  }

  /** Takes a token if there is one. */
  take(host: string): boolean {
    const now = this.#now();
    const bucket = this.#buckets.get(host);
    const tokens = bucket === undefined ? this.#burst : this.#tokens(bucket, now);
    this.#buckets.delete(host);
    this.#buckets.set(host, { tokens: tokens >= 1 ? tokens - 1 : tokens, at: now });
    this.#sweep(now);
    return tokens >= 1;
  }

  #tokens(bucket: { tokens: number; at: number }, now: number): number {
    return Math.min(this.#burst, bucket.tokens + (now - bucket.at) * this.#rate);
  }

  #sweep(now: number): void {
    if (now - this.#lastSweep >= SWEEP_INTERVAL_MS) {
      this.#lastSweep = now;
      for (const [host, bucket] of this.#buckets) {
        if (this.#tokens(bucket, now) >= this.#burst) this.#buckets.delete(host);
      }
    }
    for (const host of this.#buckets.keys()) {
      if (this.#buckets.size <= this.#maxHosts) break;
      this.#buckets.delete(host);
    }
  }
}

/**
 * The host part of a grpc-js peer ("10.0.0.7:51234", "::1:51234", "unknown"). IPv4-mapped
 * IPv6 addresses count as their IPv4 address, and IPv6 hosts by their /64 prefix: one
 * client usually holds a whole /64, so per-address buckets would be trivial to evade.
 */
export function peerHost(peer: string): string {
  let host = peer;
  const withPort = /^\[?(.*?)\]?:(\d{1,5})$/.exec(peer);
  if (withPort?.[1] !== undefined && (isIPv4(withPort[1]) || isIPv6(stripZone(withPort[1])))) {
    host = withPort[1];
  }
  host = stripZone(host.replace(/^\[(.*)\]$/, '$1'));
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(host);
  if (mapped?.[1] !== undefined && isIPv4(mapped[1])) return mapped[1];
  if (isIPv6(host)) return `${ipv6Groups(host).slice(0, 4).join(':')}::/64`;
  return host;
}

function stripZone(address: string): string {
  const percent = address.indexOf('%');
  return percent === -1 ? address : address.slice(0, percent);
}

/** The eight groups of a valid IPv6 address, in lowercase hex without leading zeros. */
function ipv6Groups(address: string): string[] {
  const parts = (text: string): string[] => {
    if (text === '') return [];
    const groups = text.split(':');
    const last = groups.at(-1) ?? '';
    if (!last.includes('.')) return groups;
    // An embedded IPv4 address fills the last two groups.
    const [a = 0, b = 0, c = 0, d = 0] = last.split('.').map(Number);
    return [...groups.slice(0, -1), ((a << 8) | b).toString(16), ((c << 8) | d).toString(16)];
  };
  const [head = '', tail] = address.split('::');
  const first = parts(head);
  const last = tail === undefined ? [] : parts(tail);
  const zeros = tail === undefined ? [] : Array<string>(8 - first.length - last.length).fill('0');
  return [...first, ...zeros, ...last].map(group => parseInt(group, 16).toString(16));
}
