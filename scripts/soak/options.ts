import { CliError } from '../cli';
import type { SigningClient } from './http';

/**
 * The server to soak, refused unless it is on this machine: the soak sends thousands of
 * requests and leaves accounts behind, which no shared or production server should get.
 */
export function loopbackUrl(text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new CliError(`--url "${text}" is not a URL (e.g. http://127.0.0.1:3000)`);
  }
  const host = url.hostname.toLowerCase();
  const loopback = host === 'localhost' || host === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
  if (!loopback) {
    throw new CliError(
      `refusing ${url.host}: the soak loads a server with thousands of requests and leaves accounts behind, so it runs only against one on this machine (localhost, 127.0.0.0/8 or [::1])`,
    );
  }
  if (url.protocol !== 'http:')
    throw new CliError(`--url must be http:// (got ${url.protocol}//): the soak talks to a local server directly`);
  if (url.pathname !== '/' || url.search !== '' || url.username !== '' || url.password !== '') {
    throw new CliError(`--url must be just the server's origin, e.g. http://127.0.0.1:3000 (got ${text})`);
  }
  return url;
}

/** A whole number of seconds (or connections) within bounds, from an option's text. */
export function wholeNumber(option: string, value: string | undefined, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  const number = /^\d+$/.test(value.trim()) ? Number(value.trim()) : NaN;
  if (!(number >= min && number <= max)) throw new CliError(`--${option} must be a whole number from ${min} to ${max} (got "${value}")`);
  return number;
}

/**
 * The client that signs: `--client id:secret`, `--client id` (its secret from HMAC_CLIENTS),
 * or the first client of HMAC_CLIENTS; none with `--unsigned`. Never echoes a secret.
 */
export function signingClient(
  option: string | undefined,
  hmacClients: ReadonlyMap<string, string>,
  unsigned: boolean,
): SigningClient | undefined {
  if (unsigned) {
    if (option !== undefined) throw new CliError('--client and --unsigned exclude each other');
    return undefined;
  }
  if (option !== undefined) {
    const colon = option.indexOf(':');
    if (colon > 0) {
      const secret = option.slice(colon + 1);
      if (secret === '') throw new CliError('--client id:secret has an empty secret');
      return { id: option.slice(0, colon), secret };
    }
    const secret = hmacClients.get(option);
    if (secret === undefined) throw new CliError(`client "${option}" is not in HMAC_CLIENTS; pass --client id:secret`);
    return { id: option, secret };
  }
  const first = hmacClients.entries().next().value;
  if (first === undefined) {
    throw new CliError(
      'no signing client: pass --client id:secret (a client the server lists in HMAC_CLIENTS), set HMAC_CLIENTS here as the server has it, or --unsigned against a server with HMAC_MODE optional or off',
    );
  }
  return { id: first[0], secret: first[1] };
}

/** `EMAIL:PASSWORD` of an existing admin account; the password may hold colons, the email cannot. */
export function adminCredentials(option: string | undefined): { email: string; password: string } | undefined {
  if (option === undefined) return undefined;
  const colon = option.indexOf(':');
  if (colon <= 0 || colon === option.length - 1) throw new CliError('--admin must be EMAIL:PASSWORD of an account with the admin role');
  return { email: option.slice(0, colon), password: option.slice(colon + 1) };
}
