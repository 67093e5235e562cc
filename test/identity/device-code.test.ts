import { createElement } from 'react';
import { render } from 'ink-testing-library';
import { describe, expect, it } from 'vitest';
import { DeviceCodeScreen, plainDeviceCode } from '../../src/tui/device-code.js';

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

  it('prints two plain lines without a terminal', () => {
    expect(plainDeviceCode(prompt, 1_000_000)).toEqual([
      'To sign in, open https://id.example.com/device and enter the code WDJB-MJHT',
      '(the code expires in 10:00; or open https://id.example.com/device?user_code=WDJB-MJHT)',
    ]);
  });
});
