/**
 * The device-login screen: where to go, the code to enter, and a countdown until the code expires. On a TTY it
 * is an ink screen; otherwise (or with --json) `plainDeviceCode` writes two plain lines. It only shows: the
 * login command polls the provider and unmounts it when done.
 */
import { useEffect, useState } from 'react';
import { Box, Text, render, useInput, useStdin } from 'ink';
import type { DeviceCodePrompt } from '../identity/human.js';

export function formatRemaining(ms: number): string {
  const s = Math.max(0, Math.ceil(ms / 1000));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

/** The non-TTY form: two lines, no colour. */
export function plainDeviceCode(prompt: DeviceCodePrompt, now: number): [string, string] {
  return [
    `To sign in, open ${prompt.verificationUri} and enter the code ${prompt.userCode}`,
    `(the code expires in ${formatRemaining(prompt.expiresAt - now)}${prompt.verificationUriComplete ? `; or open ${prompt.verificationUriComplete}` : ''})`,
  ];
}

function CancelKey({ onCancel }: { onCancel: () => void }) {
  useInput((input, key) => {
    if (key.escape || (key.ctrl && input === 'c')) onCancel();
  });
  return null;
}

export function DeviceCodeScreen({ prompt, now, onCancel }: { prompt: DeviceCodePrompt; now: () => number; onCancel?: () => void }) {
  const [t, setT] = useState(now());
  const { isRawModeSupported } = useStdin();
  useEffect(() => {
    const timer = setInterval(() => setT(now()), 1000);
    return () => clearInterval(timer);
  }, [now]);
  const left = prompt.expiresAt - t;
  return (
    <Box flexDirection="column" borderStyle="round" paddingX={1}>
      {isRawModeSupported && onCancel ? <CancelKey onCancel={onCancel} /> : null}
      <Text>
        Open <Text color="cyan">{prompt.verificationUri}</Text>
      </Text>
      <Text>
        and enter the code <Text bold color="green">{prompt.userCode}</Text>
      </Text>
      {prompt.verificationUriComplete ? <Text dimColor>or open {prompt.verificationUriComplete}</Text> : null}
      <Text dimColor>{left > 0 ? `waiting for you to sign in… the code expires in ${formatRemaining(left)}` : 'the code has expired'}</Text>
    </Box>
  );
}

/** Shows the screen on `stream`; returns a function that removes it. */
export function showDeviceCode(
  prompt: DeviceCodePrompt,
  streams: { stdout: NodeJS.WritableStream; stdin: NodeJS.ReadableStream },
  opts: { now: () => number; onCancel?: () => void },
): () => void {
  const app = render(<DeviceCodeScreen prompt={prompt} now={opts.now} {...(opts.onCancel ? { onCancel: opts.onCancel } : {})} />, {
    stdout: streams.stdout as NodeJS.WriteStream,
    stdin: streams.stdin as NodeJS.ReadStream,
    patchConsole: false,
    exitOnCtrlC: false,
  });
  return () => {
    app.clear();
    app.unmount();
  };
}
