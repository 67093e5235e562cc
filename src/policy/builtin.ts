/**
 * Built-in policies a config can list without defining them (DESIGN §4). `recommended` is the sensible floor for
 * a PostgreSQL resource used by an agent.
 */
import type { Policy } from '../config/types.js';
import type { EngineRule } from './match.js';

const recommendedRules: EngineRule[] = [
  {
    name: 'no-drop-truncate',
    when: { sql: { statements: ['drop', 'truncate'] } },
    action: 'deny',
    message: 'DROP and TRUNCATE are not allowed through dlpctl (recommended policy); schema changes go through migrations',
  },
  {
    name: 'no-alter-system',
    when: { sql: { commands: ['ALTER SYSTEM'] } },
    action: 'deny',
    message: 'ALTER SYSTEM changes the server configuration and is not allowed (recommended policy)',
  },
  {
    name: 'no-copy-program',
    when: { sql: { commands: ['COPY TO PROGRAM', 'COPY FROM PROGRAM'] } },
    action: 'deny',
    message: 'COPY … TO/FROM PROGRAM runs a shell command on the database server and is not allowed (recommended policy)',
  },
  {
    name: 'no-server-file-access',
    when: { sql: { functions: ['pg_read_file', 'pg_read_binary_file', 'lo_export', 'dblink*'] } },
    action: 'deny',
    message: 'functions that read server files, export large objects or open dblink connections are not allowed (recommended policy)',
  },
  {
    name: 'no-functions-by-proxy',
    when: { sql: { commands: ['CREATE FUNCTION', 'CREATE PROCEDURE', 'CREATE TRIGGER', 'CREATE EVENT TRIGGER', 'CREATE RULE'] } },
    action: 'deny',
    message:
      'creating functions, procedures, triggers and rules is not allowed through dlpctl (recommended policy): code stored in ' +
      'the database runs later, for anyone, where this policy no longer sees it; deploy it through migrations',
  },
  {
    name: 'no-unsafe-calls',
    when: { sql: { statements: ['call'] } },
    action: 'deny',
    message:
      'this statement calls a function or procedure (or runs a DO block) that is not known to be safe (recommended policy); ' +
      'if calling it through dlpctl is fine, list it in the resource\'s safeFunctions, e.g. safeFunctions: [app.my_function] or [app.*]',
  },
  {
    name: 'unbounded-writes-need-approval',
    when: { sql: { statements: ['update', 'delete'], noWhere: true } },
    action: 'approve',
    message: 'UPDATE or DELETE without a WHERE clause changes every row: it needs approval (recommended policy)',
  },
  {
    name: 'mask-pii-and-secrets',
    action: 'mask',
    entities: ['credit_card', 'us_ssn', 'email', 'phone', 'iban', 'secrets'],
    with: 'partial',
    message: 'personal data and secrets are partially masked (recommended policy)',
  },
  {
    name: 'max-rows',
    action: 'limit',
    maxRows: 100_000,
    message: 'results are limited to 100000 rows (recommended policy)',
  },
];

export const RECOMMENDED_POLICY: Policy = Object.freeze({ name: 'recommended', builtin: true, rules: recommendedRules });

/** The built-in policies by name. */
export const BUILTIN_POLICIES: Readonly<Record<string, Policy>> = Object.freeze({ recommended: RECOMMENDED_POLICY });

export function isBuiltinPolicy(name: string): boolean {
  return Object.hasOwn(BUILTIN_POLICIES, name);
}

/** The policies a resource lists, in its order: config-defined first, then built-ins. Throws on an unknown name. */
export function resolvePolicies(names: readonly string[], defined: Readonly<Record<string, Policy>>): Policy[] {
  return names.map((n) => {
    const p = Object.hasOwn(defined, n) ? defined[n] : BUILTIN_POLICIES[n];
    if (!p) throw new Error(`policy ${n} is neither defined in the config nor built in`);
    return p;
  });
}

/** Plain-text description of the built-in policies, for the man page and `dlpctl policy` help. */
export function describeBuiltinPolicies(): string {
  return [
    'recommended',
    '  A floor for PostgreSQL resources used by agents. List it in a resource\'s policies: [recommended, ...];',
    '  it needs no definition. Its rules:',
    '  no-drop-truncate        deny DROP (of any object, tables included) and TRUNCATE',
    '  no-alter-system         deny ALTER SYSTEM',
    '  no-copy-program         deny COPY ... TO PROGRAM and COPY ... FROM PROGRAM',
    '  no-server-file-access   deny calls to pg_read_file, pg_read_binary_file, lo_export and dblink*',
    '  no-functions-by-proxy   deny CREATE [OR REPLACE] FUNCTION, PROCEDURE, TRIGGER, EVENT TRIGGER and RULE:',
    '                          stored code runs later, outside what the policy sees',
    '  no-unsafe-calls         deny statements of kind call: CALL, DO blocks, and calls of functions not known',
    '                          to be safe (every built-in is, except those that act beyond the statement:',
    '                          other sessions, configuration, server files, replication, statistics, setval;',
    '                          list your own functions in the resource\'s safeFunctions: [schema.name or glob])',
    '  unbounded-writes-need-approval',
    '                          require approval for UPDATE or DELETE without a WHERE clause',
    '                          (anywhere in the statement, e.g. inside a WITH). The rule cannot know your',
    '                          approvers: add an approve rule with approvers for these statements, e.g.',
    '                          when: { sql: { statements: [update, delete], noWhere: true } }, action: approve,',
    '                          approvers: [group:dba]; without one they are denied at once, not held',
    '  mask-pii-and-secrets    mask credit_card, us_ssn, email, phone, iban and secrets with the partial masker',
    '  max-rows                limit results to 100000 rows',
    '  Because it names statement kinds, it also denies statements that cannot be classified (EXECUTE of a',
    '  statement it has not seen prepared, LOAD, code with dynamic SQL or in another language) and anything the',
    '  PostgreSQL parser cannot parse. A rule with when: { sql: { statements: [unknown] } } and action: allow',
    '  lets the classifiable-but-unknown ones (not parse errors) through.',
  ].join('\n');
}
