import net from 'node:net';

interface Link {
  readonly client: net.Socket;
  readonly upstream: net.Socket;
  /** Bytes held back during a cut, per direction, in order. */
  readonly toUpstream: Buffer[];
  readonly toClient: Buffer[];
  /** One side closed during a cut: the other learns of it only when the cut ends. */
  dead: boolean;
}

/**
 * A TCP proxy between one executor and one admin that can cut the link the way a failed
 * switch or a dropped route does: nothing is forwarded either way and nobody gets a FIN
 * or a reset. The bytes are held back, so a healed link delivers them late, as TCP
 * retransmission would; a link that "dies" instead is destroyed.
 */
export class CuttableProxy {
  readonly #server: net.Server;
  readonly #links = new Set<Link>();
  readonly #upstreamPort: number;
  #cut = false;
  port = 0;

  constructor(upstreamPort: number) {
    this.#upstreamPort = upstreamPort;
    this.#server = net.createServer(client => this.#accept(client));
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(0, '127.0.0.1', () => resolve());
    });
    const address = this.#server.address();
    this.port = typeof address === 'object' && address ? address.port : 0;
  }

  get isCut(): boolean {
    return this.#cut;
  }

  /** Stops forwarding both ways without closing anything (a black hole). */
  cut(): void {
    this.#cut = true;
  }

  /** Ends a cut: `resume` delivers what was held back; `die` drops every held connection. */
  heal(how: 'resume' | 'die'): void {
    this.#cut = false;
    for (const link of [...this.#links]) {
      if (how === 'die' || link.dead) {
        link.client.destroy();
        link.upstream.destroy();
        this.#links.delete(link);
      } else {
        for (const chunk of link.toUpstream.splice(0)) link.upstream.write(chunk);
        for (const chunk of link.toClient.splice(0)) link.client.write(chunk);
      }
    }
  }

  async stop(): Promise<void> {
    for (const link of this.#links) {
      link.client.destroy();
      link.upstream.destroy();
    }
    this.#links.clear();
    await new Promise<void>(resolve => this.#server.close(() => resolve()));
  }

  #accept(client: net.Socket): void {
    const upstream = net.connect(this.#upstreamPort, '127.0.0.1');
    const link: Link = { client, upstream, toUpstream: [], toClient: [], dead: false };
    this.#links.add(link);
    const close = (): void => {
      if (this.#cut) {
        link.dead = true;
        return;
      }
      if (!this.#links.delete(link)) return;
      client.destroy();
      upstream.destroy();
    };
    // A dead admin behind the proxy is a refused or reset connection: pass that on as a close.
    client.on('error', close).on('close', close);
    upstream.on('error', close).on('close', close);
    // Forwarded by hand rather than piped: a pipe resumes paused sockets on 'drain'.
    // During a cut, connection attempts hang too, as SYNs into a black hole do.
    client.on('data', (chunk: Buffer) => {
      if (this.#cut) link.toUpstream.push(chunk);
      else upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      if (this.#cut) link.toClient.push(chunk);
      else client.write(chunk);
    });
  }
}
