import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { createContextValues, type ConnectRouter } from '@connectrpc/connect';
import { connectNodeAdapter } from '@connectrpc/connect-node';
import type { TlsConfig } from '../config.js';
import type { Logger } from '../logger.js';
import { PEER_ADDRESS } from './operator-api-bridge.js';
import { API_POLICY, StaticFiles } from './static-files.js';

type NodeHandler = NonNullable<Parameters<typeof connectNodeAdapter>[0]['fallback']>;

export interface ConsoleServerOptions {
  host: string;
  /** 0 picks a free port. */
  port: number;
  /** The gRPC port's TLS: the console is served with the same certificate, and the same client CA. */
  tls: TlsConfig | undefined;
  /** console/dist: the built single-page app. */
  staticDir: string;
  /** AdminService for browsers (operator-api-bridge.ts). */
  routes: (router: ConnectRouter) => void;
  maxMessageBytes: number;
  logger: Logger;
}

export interface ConsoleServer {
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

/** Sent with every answer, pages and API alike. */
function securityHeaders(tls: boolean): Record<string, string> {
  return {
    'x-frame-options': 'DENY',
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    'cross-origin-opener-policy': 'same-origin',
    'cross-origin-resource-policy': 'same-origin',
    'permissions-policy': 'camera=(), microphone=(), geolocation=(), payment=(), usb=()',
    ...(tls ? { 'strict-transport-security': 'max-age=31536000' } : {}),
  };
}

/**
 * The web console's HTTP(S) server: the single-page app's files and AdminService for
 * browsers on one origin, so the page needs no CORS and another site gets none.
 */
export async function startConsoleServer(options: ConsoleServerOptions): Promise<ConsoleServer> {
  const files = new StaticFiles(options.staticDir);
  if (!files.built) {
    options.logger.warn(
      { dir: options.staticDir },
      'the console is not built (npm run build -w @jobstream/console): serving its API only',
    );
  }
  const headers = securityHeaders(options.tls !== undefined);
  const serveFile: NodeHandler = (request, response) => {
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.writeHead(405, { allow: 'GET, HEAD', 'content-security-policy': API_POLICY });
      response.end('method not allowed\n');
      return;
    }
    const pathname = new URL(request.url ?? '/', 'http://console').pathname;
    const acceptsGzip = /\bgzip\b/.test(request.headers['accept-encoding'] ?? '');
    const answer = files.answer(pathname, acceptsGzip);
    response.writeHead(answer.status, { ...answer.headers, 'content-length': answer.body.length });
    if (request.method === 'HEAD') response.end();
    else response.end(answer.body);
  };
  const api = connectNodeAdapter({
    routes: options.routes,
    // Browsers speak gRPC-Web; the Connect protocol lets curl call with JSON. Plain gRPC
    // stays on the gRPC port (it needs HTTP/2 trailers).
    grpc: false,
    grpcWeb: true,
    connect: true,
    readMaxBytes: options.maxMessageBytes,
    writeMaxBytes: options.maxMessageBytes,
    fallback: serveFile,
    contextValues: request => createContextValues().set(PEER_ADDRESS, peerOf(request)),
  });
  const handle = (request: IncomingMessage, response: ServerResponse): void => {
    for (const [name, value] of Object.entries(headers)) response.setHeader(name, value);
    // Answers of the API have no page to protect; a policy that allows nothing still stops
    // a browser from rendering one as a document.
    if (!response.hasHeader('content-security-policy'))
      response.setHeader('content-security-policy', API_POLICY);
    api(request, response);
  };

  const tls = options.tls;
  const server =
    tls === undefined
      ? createHttpServer(handle)
      : createHttpsServer(
          {
            cert: tls.cert,
            key: tls.key,
            // Under mutual TLS every client of the admin presents a certificate, browsers too.
            ...(tls.clientCa === undefined
              ? {}
              : { ca: tls.clientCa, requestCert: true, rejectUnauthorized: true }),
          },
          handle,
        );
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;
  return {
    url: `${tls === undefined ? 'http' : 'https'}://${host}:${port}/`,
    port,
    close: () =>
      new Promise<void>(resolve => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function peerOf(request: Parameters<NodeHandler>[0]): string {
  const { remoteAddress, remotePort, remoteFamily } = request.socket;
  if (remoteAddress === undefined) return 'unknown';
  return remoteFamily === 'IPv6'
    ? `ipv6:[${remoteAddress}]:${remotePort}`
    : `ipv4:${remoteAddress}:${remotePort}`;
}
