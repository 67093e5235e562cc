import { describe, expect, it } from 'vitest';
import { TUNNEL_NODE_FLAGS, tunnelFlagsToAdd } from '../../src/cli/tunnel-node-flags.js';

describe('tunnelFlagsToAdd', () => {
  it('adds every tunnel flag to a plain node', () => {
    expect(tunnelFlagsToAdd([], undefined)).toEqual([...TUNNEL_NODE_FLAGS]);
    expect(tunnelFlagsToAdd(['--enable-source-maps'], '--trace-warnings')).toEqual([...TUNNEL_NODE_FLAGS]);
  });

  it('adds nothing once the process runs with them (no second re-exec)', () => {
    expect(tunnelFlagsToAdd([...TUNNEL_NODE_FLAGS], undefined)).toEqual([]);
  });

  it("leaves a flag the user set in NODE_OPTIONS to them, whatever its value or spelling", () => {
    expect(tunnelFlagsToAdd([], '--max-semi-space-size=32')).toEqual(['--liftoff-only']);
    expect(tunnelFlagsToAdd([], ' --trace-warnings  --max_semi_space_size=4 ')).toEqual(['--liftoff-only']);
    expect(tunnelFlagsToAdd([], '--liftoff-only --max-semi-space-size=16')).toEqual([]);
  });

  it("leaves a flag given on node's command line to the user", () => {
    expect(tunnelFlagsToAdd(['--max-semi-space-size=64'], undefined)).toEqual(['--liftoff-only']);
    expect(tunnelFlagsToAdd(['--liftoff_only'], '')).toEqual(['--max-semi-space-size=8']);
  });

  it('does not take a longer flag with the same prefix for the flag itself', () => {
    expect(tunnelFlagsToAdd(['--max-semi-space-size-extra=1'], '--liftoff-only-x')).toEqual([...TUNNEL_NODE_FLAGS]);
  });
});
