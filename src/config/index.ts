/**
 * config/: loading and validating dlpctl.yaml, secret references, user settings (DESIGN §3).
 */
export type * from './types.js';
export { SQL_STATEMENT_KINDS, SSH_CHANNEL_KINDS } from './types.js';
export { loadConfig, findConfigFile, configSearchPaths, CONFIG_FILE_NAME } from './load.js';
export type { LoadConfigOptions, FindConfigOptions, ConfigCandidate, ConfigSource } from './load.js';
export { parseConfig, closestMatch } from './validate.js';
export type { ParseHooks } from './validate.js';
export {
  CONFIG_SCHEMA,
  BUILTIN_POLICY_NAMES,
  ENTITY_GROUP_NAMES,
  RULE_ACTIONS,
  MASKER_NAMES,
  TLS_MODES,
  STRING_FORMATS,
  schemaKeyPaths,
  describeType,
} from './schema.js';
export type { SchemaNode, SchemaKeyEntry, ObjectNode } from './schema.js';
export { renderConfigManPage, renderConfigMarkdownReference } from './docs.js';
export {
  parseSecretString,
  scanSecretString,
  isSecretString,
  resolveSecret,
  secretFilePath,
  secretEnvNames,
  configSecretStrings,
  redactSecretString,
  redactConfigForOutput,
  describeTarget,
  describeStore,
  stripUrlCredentials,
  SECRET_REF_KINDS,
} from './secrets.js';
export type { KeychainReader, ResolveSecretOptions, SecretScan } from './secrets.js';
export { parseDuration, parseSize, tryParseDuration, tryParseSize, formatDuration, formatSize } from './units.js';
export { getSetting, setSetting, unsetSetting, listSettings, settingsPath, SETTINGS, SETTING_KEYS } from './settings.js';
export type { SettingKey, SettingDef, SettingsOptions } from './settings.js';
export { isLoopbackHost, parseListen } from './formats.js';
