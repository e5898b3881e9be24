import { once } from 'node:events';
import net from 'node:net';

/** Which way a hang holds the bytes: towards the server, towards the client, or both. */
export type HangDirection = 'both' | 'toServer' | 'toClient';

/**
 * A TCP relay between the app and a server (PostgreSQL), with the faults a network or a
 * server can have, on demand: refuse connections, cut them (a reset, as a killed server or a
 * broken link gives), or hang (accept and hold every byte, as a partition does; nothing,
 * not even a close, gets through until it is restored).
 */
export interface FaultProxy {
  readonly port: number;
  /** `url` with its host and port replaced by the proxy's. */
  via(url: string): string;
  /** Nothing listens on the port any more (connecting is ECONNREFUSED), and every open connection is reset. */
  refuse(): Promise<void>;
  /** Resets every open connection, both ends; new connections are accepted as before. */
  cut(): void;
  /** Stops forwarding (one way or both), for open and new connections alike. */
  hang(direction?: HangDirection): void;
  /**
   * Listens and forwards again. What a hang held is delivered, closes included; or, with
   * `loseHeld`, the connections it held are lost, as after a partition long enough for the
   * server to give up on them: closed on the server's side, while the client is told nothing
   * (its bytes go nowhere, nothing comes back) until it closes them itself.
   */
  restore(options?: { loseHeld?: boolean }): Promise<void>;
  close(): Promise<void>;
}

interface Relay {
  client: net.Socket;
  server: net.Socket;
  /** Bytes held by a hang, per direction, with a close that came during it. */
  held: { toServer: Buffer[]; toClient: Buffer[]; closed: boolean };
  /** Lost in a partition: the client's end leads nowhere. */
  lost: boolean;
}

/** Starts a relay on a free local port to `target` (a host and port). */
export async function startFaultProxy(target: { host: string; port: number }): Promise<FaultProxy> {
  const relays = new Set<Relay>();
  let holding = { toServer: false, toClient: false };

  const destroy = (relay: Relay, reset: boolean) => {
    relays.delete(relay);
    for (const socket of [relay.client, relay.server]) {
      if (reset && !socket.destroyed && socket.readyState !== 'opening') socket.resetAndDestroy();
      else socket.destroy();
    }
  };

  const listener = net.createServer((client) => {
    const server = net.connect(target.port, target.host);
    const relay: Relay = { client, server, held: { toServer: [], toClient: [], closed: false }, lost: false };
    relays.add(relay);
    const forward = (direction: 'toServer' | 'toClient', to: net.Socket) => (chunk: Buffer) => {
      if (relay.lost) return;
      if (holding[direction]) relay.held[direction].push(chunk);
      else if (!to.destroyed) to.write(chunk);
    };
    client.on('data', forward('toServer', server));
    server.on('data', forward('toClient', client));
    const ended = (socket: net.Socket) => () => {
      // A partition carries no close either: it reaches the other end once restored, or never.
      if (relay.lost && socket === server) return;
      if (holding.toServer || holding.toClient) relay.held.closed = true;
      else destroy(relay, false);
    };
    for (const socket of [client, server]) {
      socket.on('error', () => undefined);
      socket.on('close', ended(socket));
    }
  });
  listener.on('error', () => undefined);

  const listen = async (port: number) => {
    listener.listen(port, '127.0.0.1');
    await once(listener, 'listening');
  };
  await listen(0);
  const port = (listener.address() as net.AddressInfo).port;

  const cut = () => {
    for (const relay of [...relays]) destroy(relay, true);
  };

  return {
    port,
    via(url) {
      const parsed = new URL(url);
      parsed.host = `127.0.0.1:${port}`;
      return parsed.toString();
    },
    async refuse() {
      if (!listener.listening) return;
      const closed = new Promise<void>((resolve) => listener.close(() => resolve()));
      cut();
      await closed;
    },
    cut,
    hang(direction = 'both') {
      holding = { toServer: direction !== 'toClient', toClient: direction !== 'toServer' };
    },
    async restore(options = {}) {
      const wasHolding = holding.toServer || holding.toClient;
      holding = { toServer: false, toClient: false };
      for (const relay of [...relays]) {
        const { held } = relay;
        if (wasHolding && options.loseHeld) {
          relay.lost = true;
          relay.server.destroy();
          if (held.closed) destroy(relay, false);
          continue;
        }
        for (const chunk of held.toServer.splice(0)) if (!relay.server.destroyed) relay.server.write(chunk);
        for (const chunk of held.toClient.splice(0)) if (!relay.client.destroyed) relay.client.write(chunk);
        if (held.closed) {
          relay.server.end();
          relay.client.end();
        }
      }
      // The same port again: the app's connection string names it.
      if (!listener.listening) await listen(port);
    },
    async close() {
      holding = { toServer: false, toClient: false };
      cut();
      if (listener.listening) await new Promise<void>((resolve) => listener.close(() => resolve()));
    },
  };
}
