import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseConfig, secretEnvNames } from '../../src/config/index.js';

const text = readFileSync(new URL('../../examples/dlpctl.yaml', import.meta.url), 'utf8');
const entities = new Set(['credit_card', 'us_ssn', 'email', 'phone', 'iban']);

describe('examples/dlpctl.yaml', () => {
  const config = parseConfig(text, 'examples/dlpctl.yaml', { knownEntities: entities });

  it('has the three resources of the three kinds', () => {
    expect(Object.keys(config.resources)).toEqual(['postgres-prod', 'openai', 'bastion']);
    expect(Object.values(config.resources).map((r) => r.kind)).toEqual(['postgres', 'http', 'ssh']);
    const pg = config.resources['postgres-prod'];
    expect(pg?.kind === 'postgres' && pg.tls.mode).toBe('verify-full');
    expect(pg?.listen).toEqual({ host: '127.0.0.1', port: 5433 });
    expect(pg?.access?.maxDuration).toBe(8 * 3600_000);
    expect(pg?.pos).toMatchObject({ line: 20, col: 3 });
  });

  it('has every rule action, with defaults applied', () => {
    const rules = Object.values(config.policies).flatMap((p) => p.rules);
    expect(new Set(rules.map((r) => r.action))).toEqual(new Set(['allow', 'deny', 'approve', 'mask', 'limit']));
    const bulk = config.policies['prod-guard']?.rules.find((r) => r.name === 'bulk-export');
    expect(bulk).toMatchObject({ maxRows: 10000, maxBytes: 50_000_000, ratePerMinute: 600 });
    expect(config.policies['prod-guard']?.rules.find((r) => r.name === 'writes-need-dba')?.timeout).toBe(15 * 60_000);
    expect(config.policies['llm-limits']?.rules[0]?.maxBodyBytes).toBe(1024 * 1024);
    const masked = config.policies['pii']?.rules[0];
    expect(masked?.with).toBe('redact');
    expect(masked?.keep).toBeUndefined(); // keep belongs to the partial masker only
    expect(masked?.pos?.line).toBeGreaterThan(1);
  });

  it('has detectors, tests and an identity', () => {
    expect(config.detectors.map((d) => d.name)).toEqual(['employee_id', 'gift_card']);
    expect(config.tests).toHaveLength(7);
    expect(config.tests.map((t) => t.resource)).toContain('bastion');
    expect(config.tests[6]?.ssh).toEqual({ channel: 'shell' });
    expect(config.identity?.groupsClaim).toBe('realm_access.roles');
  });

  it('lists every environment variable the references name', () => {
    expect(secretEnvNames(config)).toEqual([
      'APPROVAL_WEBHOOK_TOKEN',
      'DLPCTL_CLIENT_SECRET',
      'DLPCTL_STORE_PASSWORD',
      'OPENAI_API_KEY',
      'PROD_DB_PASSWORD',
    ]);
  });

  it('defaults a resource without tls to require, loopback to disable, and policies to recommended', () => {
    const c = parseConfig(
      'version: 1\nresources:\n  a: { kind: postgres, target: "postgres://u@db.example.com/x" }\n  b: { kind: postgres, target: "postgres://u@127.0.0.1/x" }\n',
      'x.yaml',
    );
    const a = c.resources['a'];
    const b = c.resources['b'];
    expect(a?.kind === 'postgres' && a.tls.mode).toBe('require');
    expect(b?.kind === 'postgres' && b.tls.mode).toBe('disable');
    expect(a?.policies).toEqual(['recommended']);
    expect(a?.default).toBe('allow');
    expect(a?.enforce).toBe(true);
    expect(a?.listen).toEqual({ host: '127.0.0.1', port: 0 });
  });
});
