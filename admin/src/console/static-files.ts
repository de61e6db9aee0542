import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
};

/** Where index.html takes the per-response nonce that page styles are allowed with. */
const NONCE_PLACEHOLDER = '__CSP_NONCE__';

export interface StaticFile {
  readonly contentType: string;
  readonly body: Buffer;
  readonly gzipped: Buffer | undefined;
  /** Vite puts a content hash in asset names: they never change under their name. */
  readonly immutable: boolean;
}

export interface StaticAnswer {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

/**
 * The console's built files (console/dist), read once at startup into memory: a request
 * can only ever name one of them, so no path from a URL reaches the file system. Paths
 * without a file extension are the single-page app's own routes and get index.html.
 */
export class StaticFiles {
  readonly #files = new Map<string, StaticFile>();
  readonly #index: string | undefined;

  constructor(directory: string) {
    const indexFile = path.join(directory, 'index.html');
    this.#index = existsSync(indexFile) ? readFileSync(indexFile, 'utf8') : undefined;
    if (this.#index === undefined) return;
    for (const file of listFiles(directory)) {
      const relative = path.relative(directory, file).split(path.sep).join('/');
      const contentType = CONTENT_TYPES[path.extname(file)];
      if (contentType === undefined || relative === 'index.html') continue;
      const body = readFileSync(file);
      const compressible = /^(text|image\/svg|application\/json)/.test(contentType) && body.length > 1024;
      this.#files.set(`/${relative}`, {
        contentType,
        body,
        gzipped: compressible ? gzipSync(body) : undefined,
        immutable: relative.startsWith('assets/'),
      });
    }
  }

  /** False when console/dist holds no build: the API is served, the pages are not. */
  get built(): boolean {
    return this.#index !== undefined;
  }

  answer(pathname: string, acceptsGzip: boolean): StaticAnswer {
    const file = this.#files.get(pathname);
    if (file !== undefined) {
      const useGzip = acceptsGzip && file.gzipped !== undefined;
      return {
        status: 200,
        headers: {
          'content-type': file.contentType,
          'cache-control': file.immutable ? 'public, max-age=31536000, immutable' : 'no-cache',
          vary: 'accept-encoding',
          ...(useGzip ? { 'content-encoding': 'gzip' } : {}),
          'content-security-policy': API_POLICY,
        },
        body: useGzip ? file.gzipped : file.body,
      };
    }
    if (this.#index === undefined) {
      return text(503, 'the console is not built: run `npm run build -w @jobstream/console`\n');
    }
    if (path.posix.extname(pathname) !== '') return text(404, 'not found\n');
    const nonce = randomBytes(16).toString('base64');
    return {
      status: 200,
      headers: {
        'content-type': 'text/html; charset=utf-8',
        'cache-control': 'no-store',
        'content-security-policy': pagePolicy(nonce),
      },
      body: Buffer.from(this.#index.replaceAll(NONCE_PLACEHOLDER, nonce), 'utf8'),
    };
  }
}

/**
 * The page's policy: scripts, styles, fonts and images only from this origin, calls only
 * to it, no framing, no plugins, no <base>. The UI library writes its CSS variables
 * into a <style> element, which carries the nonce; nothing inline runs.
 */
function pagePolicy(nonce: string): string {
  return [
    "default-src 'none'",
    "script-src 'self'",
    `style-src 'self' 'nonce-${nonce}'`,
    "img-src 'self' data:",
    "font-src 'self'",
    "connect-src 'self'",
    "manifest-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
}

/** Everything that is not the page: nothing may be loaded or framed from it. */
export const API_POLICY = "default-src 'none'; frame-ancestors 'none'";

function text(status: number, body: string): StaticAnswer {
  return {
    status,
    headers: { 'content-type': 'text/plain; charset=utf-8', 'content-security-policy': API_POLICY },
    body: Buffer.from(body, 'utf8'),
  };
}

function listFiles(directory: string): string[] {
  return readdirSync(directory).flatMap(name => {
    const file = path.join(directory, name);
    return statSync(file).isDirectory() ? listFiles(file) : [file];
  });
}
