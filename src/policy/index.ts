/** The policy engine: SQL/HTTP/SSH classification and rule evaluation → `Decision` (DESIGN §4). Pure. */
export { initSqlParser, isSqlParserReady } from './sql/parser.js';
export { classifySql, clearSqlCache, type SqlClassification, type SqlStatement } from './sql/classify.js';
export { statementLineage, type LineageInput, type StatementLineage } from './sql/lineage.js';
export {
  analyzeFunction, withFunctionFacts, UNSAFE_VOLATILE_BUILTINS, type FunctionAnalysis, type ProcRow,
} from './sql/functions.js';
export { evaluate } from './evaluate.js';
export { normalizeHttpPath, type EngineRule } from './match.js';
export { BUILTIN_POLICIES, RECOMMENDED_POLICY, describeBuiltinPolicies, isBuiltinPolicy, resolvePolicies } from './builtin.js';
export { lintPolicies, type LintFinding, type LintInput, type LintOptions } from './lint.js';
export { runPolicyTests, type PolicyTestConfig, type PolicyTestOptions, type PolicyTestResult } from './test-runner.js';
export { explain, formatExplanation, type Explanation, type RuleExplanation, type StatementSummary } from './explain.js';
export type {
  Decision, DecisionAction, DecisionBasis, EvaluationContext, LimitSources, Limits, MaskDirective, MatchedRule,
  PolicyAction, PolicyIdentity, PolicyResource, RuleRef, StatementDecision,
} from './types.js';
export { MaskEngineCache, type MaskEngineOptions } from './mask-engine.js';
