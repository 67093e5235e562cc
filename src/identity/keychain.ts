/**
 * `${keychain:NAME}` secret references (DESIGN §3): the OS keychain entry with service `dlpctl` and account
 * NAME (create it with `secret-tool store --label=dlpctl service dlpctl username NAME` on Linux, Keychain
 * Access on macOS, Credential Manager on Windows).
 */
import type { KeychainReader } from '../config/secrets.js';

export function keychainReader(): KeychainReader {
  return async (name) => {
    const { AsyncEntry } = await import('@napi-rs/keyring');
    return new AsyncEntry('dlpctl', name, { linux: { store: 'secret-service' } }).getPassword();
  };
}
