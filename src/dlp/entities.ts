/**
 * Entity names and groups. An entity name is stable: it appears in policies (`entities: [...]`), in
 * masking output (`[REDACTED:credit_card]`) and in audit counts, so renaming one is a breaking change.
 */
import { DlpctlError } from '../errors.js';

export const PII_ENTITIES = ['credit_card', 'us_ssn', 'email', 'phone', 'iban', 'ipv4', 'ipv6'] as const;

export const SECRET_ENTITIES = [
  'jwt',
  'private_key',
  'aws_access_key_id',
  'aws_secret_access_key',
  'github_token',
  'gitlab_token',
  'openai_api_key',
  'anthropic_api_key',
  'slack_token',
  'slack_webhook',
  'stripe_key',
  'google_api_key',
  'npm_token',
  'connection_string',
  'generic_secret',
] as const;

export const ENTITY_NAMES = [...PII_ENTITIES, ...SECRET_ENTITIES] as const;

export type BuiltinEntity = (typeof ENTITY_NAMES)[number];
export type SecretEntity = (typeof SECRET_ENTITIES)[number];

/** Group names a policy may use in place of a list of entities. */
export const ENTITY_GROUPS: Readonly<Record<string, readonly string[]>> = {
  secrets: SECRET_ENTITIES,
  pii: PII_ENTITIES,
  all: ENTITY_NAMES,
};

const builtin: ReadonlySet<string> = new Set(ENTITY_NAMES);
const secretSet: ReadonlySet<string> = new Set(SECRET_ENTITIES);

export function isBuiltinEntity(name: string): name is BuiltinEntity {
  return builtin.has(name);
}

export function isSecretEntity(name: string): boolean {
  return secretSet.has(name);
}

/**
 * Expands groups (`secrets`, `pii`, `all`) and validates every name. `extra` lists the names of custom
 * detectors that are also acceptable. Throws a `DlpctlError('DLP_PATTERN')` naming the unknown entity.
 */
export function expandEntities(list: readonly string[], extra: readonly string[] = []): string[] {
  const out = new Set<string>();
  const custom = new Set(extra);
  for (const raw of list) {
    const name = raw.trim();
    const group = ENTITY_GROUPS[name];
    if (group !== undefined) {
      for (const e of group) out.add(e);
    } else if (builtin.has(name) || custom.has(name)) {
      out.add(name);
    } else {
      throw new DlpctlError('DLP_PATTERN', `unknown DLP entity "${name}"; known entities: ${[...ENTITY_NAMES, ...custom].join(', ')}, and the groups ${Object.keys(ENTITY_GROUPS).join(', ')}`);
    }
  }
  return [...out];
}
