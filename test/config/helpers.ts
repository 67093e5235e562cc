import { DlpctlError } from '../../src/errors.js';
import { parseConfig } from '../../src/config/index.js';
import type { ParseHooks } from '../../src/config/index.js';

/** Parses `text` expecting CONFIG_INVALID; returns the error. */
export function configError(text: string, hooks: ParseHooks = {}): DlpctlError {
  try {
    parseConfig(text, 'dlpctl.yaml', hooks);
  } catch (err) {
    if (err instanceof DlpctlError) return err;
    throw err;
  }
  throw new Error('expected the config to be rejected');
}

/** The problem lines of a rejected config. */
export const problems = (text: string, hooks: ParseHooks = {}): readonly string[] => configError(text, hooks).details;

/** Joins lines; a leading `version: 1` is added by callers as needed. */
export const yaml = (...lines: string[]): string => `${lines.join('\n')}\n`;
