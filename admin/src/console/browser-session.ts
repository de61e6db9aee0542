import type { HandlerContext } from '@connectrpc/connect';
import { Metadata, ServerError, Status } from 'nice-grpc';
import type { LoginResponse } from '@jobstream/proto/admin';
import type { BrowserCall } from './operator-api-bridge.js';

/**
 * The header the console sends with every call. A page on another site cannot send it
 * without a CORS preflight, which this server never grants, so a call carrying it comes
 * from a page of this origin (or from a program, which has no victim's cookie anyway).
 */
export const CONSOLE_HEADER = 'x-jobstream-console';

export interface BrowserSessionsOptions {
  /** Served over TLS: the cookie is `Secure` and uses the `__Host-` prefix. */
  secure: boolean;
  now: () => Date;
}

/**
 * How the console's browser authenticates, and what keeps other sites from acting as its
 * user (CSRF):
 *
 * - Login from the console puts the session token in an HttpOnly, SameSite=Strict cookie
 *   and takes it out of the answer: page scripts (and so an injected one) never hold it.
 * - A call authenticated by that cookie must carry {@link CONSOLE_HEADER}, and any call
 *   with an `Origin` or `Sec-Fetch-Site` header naming another site is refused. SameSite
 *   alone would already keep the cookie off cross-site requests; the header and origin
 *   checks do not depend on the browser getting that right.
 * - Programs may call with `authorization: Bearer <token>` like on the gRPC port; the
 *   cookie is then ignored.
 */
export class BrowserSessions {
  readonly cookieName: string;
  readonly #secure: boolean;
  readonly #now: () => Date;

  constructor(options: BrowserSessionsOptions) {
    this.#secure = options.secure;
    this.#now = options.now;
    this.cookieName = options.secure ? '__Host-jobstream-session' : 'jobstream-session';
  }

  /** The call's metadata for the handlers, or PERMISSION_DENIED for a cross-site request. */
  admit(context: HandlerContext, peer: string): BrowserCall {
    const headers = context.requestHeader;
    const origin = headers.get('origin');
    if (origin !== null && origin !== new URL(context.url).origin) {
      throw new ServerError(Status.PERMISSION_DENIED, `cross-origin request from ${origin} refused`);
    }
    const site = headers.get('sec-fetch-site');
    if (site !== null && site !== 'same-origin' && site !== 'none') {
      throw new ServerError(Status.PERMISSION_DENIED, `cross-site request (${site}) refused`);
    }
    const metadata = Metadata();
    const authorization = headers.get('authorization');
    const token = this.#cookieToken(headers.get('cookie'));
    if (authorization !== null) {
      metadata.set('authorization', authorization);
    } else if (token !== undefined) {
      if (headers.get(CONSOLE_HEADER) !== '1') {
        throw new ServerError(
          Status.PERMISSION_DENIED,
          `a call authenticated by the console's cookie must send the header "${CONSOLE_HEADER}: 1"`,
        );
      }
      metadata.set('authorization', `Bearer ${token}`);
    }
    return { metadata, peer };
  }

  /** Moves a console login's session token into the cookie; a logout clears it. */
  onResponse(method: string, response: unknown, context: HandlerContext): unknown {
    const fromConsole = context.requestHeader.get(CONSOLE_HEADER) === '1';
    if (method === 'login' && fromConsole) {
      const login = response as LoginResponse;
      const maxAgeSeconds = Math.max(
        0,
        Math.floor(((login.expiresAt?.getTime() ?? 0) - this.#now().getTime()) / 1000),
      );
      context.responseHeader.append('set-cookie', this.#cookie(login.token, maxAgeSeconds));
      return { ...login, token: '' } satisfies LoginResponse;
    }
    if (method === 'logout' && fromConsole) {
      context.responseHeader.append('set-cookie', this.#cookie('', 0));
    }
    return response;
  }

  #cookie(value: string, maxAgeSeconds: number): string {
    const attributes = [`${this.cookieName}=${value}`, 'Path=/', `Max-Age=${maxAgeSeconds}`, 'HttpOnly'];
    attributes.push('SameSite=Strict');
    if (this.#secure) attributes.push('Secure');
    return attributes.join('; ');
  }

  #cookieToken(header: string | null): string | undefined {
    if (header === null) return undefined;
    for (const part of header.split(';')) {
      const separator = part.indexOf('=');
      if (separator > 0 && part.slice(0, separator).trim() === this.cookieName) {
        const value = part.slice(separator + 1).trim();
        return value === '' ? undefined : value;
      }
    }
    return undefined;
  }
}
