/** Every man page dlpctl ships, rendered from the code: dlpctl(1) from the command tree, dlpctl.yaml(5) from the schema. */
import { renderCommandManPage } from './man.js';
import { buildProgram } from './program.js';

export async function renderManPages(): Promise<Record<string, string>> {
  const [{ renderConfigManPage }, { describeBuiltinPolicies }] = await Promise.all([
    import('../config/index.js'),
    import('../policy/index.js'),
  ]);
  const program = buildProgram(async () => {});
  return {
    'dlpctl.1': renderCommandManPage(program, {
      sections: [{ title: 'Built-in policies', body: describeBuiltinPolicies() }],
    }),
    'dlpctl.yaml.5': renderConfigManPage(),
  };
}
