import { createElement } from 'react';
import { render } from 'ink-testing-library';
import { describe, expect, it, vi } from 'vitest';
import { EventEmitter } from 'node:events';
import { DeviceCodeScreen, plainDeviceCode, showDeviceCode } from '../../src/tui/device-code.js';
import { screenAfter } from '../helpers/screen.js';

// ink renders only its last frame when it believes it runs in CI (is-in-ci reads the environment when ink is
// loaded); these tests look at the frames a terminal shows, so the CI run's own CI=true must not reach ink.
vi.hoisted(() => {
  for (const k of Object.keys(process.env)) if (k === 'CI' || k === 'CONTINUOUS_INTEGRATION' || k.startsWith('CI_')) delete process.env[k];
});

class FakeTty extends EventEmitter {
  isTTY = true;
  columns = 100;
  rows = 30;
  written = '';
  write(chunk: string | Uint8Array, ...rest: unknown[]): boolean {
    this.written += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
    const cb = rest.find((r) => typeof r === 'function') as (() => void) | undefined;
    cb?.();
    return true;
  }
}

const prompt = { verificationUri: 'https://id.example.com/device', verificationUriComplete: 'https://id.example.com/device?user_code=WDJB-MJHT', userCode: 'WDJB-MJHT', expiresAt: 1_000_000 + 600_000 };

describe('device code screen', () => {
  it('shows the URL, the code and a countdown', () => {
    const { lastFrame, unmount } = render(createElement(DeviceCodeScreen, { prompt, now: () => 1_000_000 + 75_000 }));
    const f = lastFrame() ?? '';
    expect(f).toContain('https://id.example.com/device');
    expect(f).toContain('WDJB-MJHT');
    expect(f).toContain('expires in 8:45');
    unmount();
  });

  it('on a terminal, the screen is gone once the login is done: no border left behind', async () => {
    const stdout = new FakeTty();
    const stdin = Object.assign(new EventEmitter(), { isTTY: false, setEncoding() {}, resume() {}, pause() {}, read: () => null, ref() {}, unref() {} });
    let clock = 1_000_000;
    const hide = showDeviceCode(prompt, { stdout: stdout as unknown as NodeJS.WritableStream, stdin: stdin as unknown as NodeJS.ReadableStream }, { now: () => (clock += 1000) });
    await new Promise((r) => setTimeout(r, 1100)); // the countdown has redrawn the screen
    expect(screenAfter(stdout.written).join('\n')).toContain('WDJB-MJHT');
    hide();
    await new Promise((r) => setTimeout(r, 50));
    const left = screenAfter(stdout.written);
    expect(left.join('\n'), JSON.stringify(stdout.written)).not.toMatch(/[╭╮╰╯│─]|WDJB-MJHT/);
  });

  it('prints two plain lines without a terminal', () => {
    expect(plainDeviceCode(prompt, 1_000_000)).toEqual([
      'To sign in, open https://id.example.com/device and enter the code WDJB-MJHT',
      '(the code expires in 10:00; or open https://id.example.com/device?user_code=WDJB-MJHT)',
    ]);
  });
});
