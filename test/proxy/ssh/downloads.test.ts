/**
 * Downloads through the tunnel with the real OpenSSH clients get the output masking of `cat`: `scp -O` (legacy,
 * an exec of `scp -f`), `scp` (SFTP protocol) and `sftp get` of a text file come back exactly as `cat` of it
 * does; a binary file is refused while a mask rule applies and passes unchanged where none does; an
 * `ssh.paths` rule denies reading a file by any of the three, `scp -r` included, and the denial is recorded.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sh, startSshFixture, type SshFixture, type TestTunnel } from './fixture.js';

let fx: SshFixture;
let masked: TestTunnel;
let unmasked: TestTunnel;
let wrapper: string;
let src: string;
let dst: string;

const SSN = '234-56-7891';
const EMAIL = 'jane.doe@example.com';

beforeAll(async () => {
  fx = await startSshFixture();
  masked = await fx.tunnel({
    policies: `  dl:
    - name: no-secrets
      when: { ssh: { paths: ["**/secret/**", "/etc/shadow"] } }
      action: deny
      message: secrets stay on the host
    - name: pii
      action: mask
      entities: [us_ssn, email]
      with: redact
`,
    use: ['dl'],
  });
  unmasked = await fx.tunnel({ policies: '  none: []\n', use: ['none'] });
  src = path.join(fx.dir, 'src');
  dst = path.join(fx.dir, 'dst');
  await fs.mkdir(path.join(src, 'secret'), { recursive: true });
  await fs.mkdir(dst);
  const lines: string[] = [];
  for (let i = 0; i < 3000; i++) lines.push(`row ${i} ssn ${SSN} mail ${EMAIL} ok`);
  await fs.writeFile(path.join(src, 'people.txt'), lines.join('\n') + '\n');
  await fs.writeFile(path.join(src, 'secret', 'key.txt'), 'the secret key\n');
  await fs.writeFile(path.join(src, 'blob.bin'), Buffer.concat([Buffer.from([0, 1, 2, 0xff]), Buffer.from(`${EMAIL}\n`)]));
  wrapper = path.join(fx.dir, 'dlpctl-ssh');
  await fs.writeFile(wrapper, '#!/bin/sh\nexec $DLPCTL_SSH "$@"\n', { mode: 0o755 });
});
afterAll(async () => {
  await fx?.stop();
});

const env = (t: TestTunnel) => ({ ...process.env, ...t.env });
const read = (f: string) => fs.readFile(f, 'utf8');

async function catOf(t: TestTunnel, file: string): Promise<string> {
  const r = await sh(`$DLPCTL_SSH box cat ${file}`, { env: env(t) });
  expect(r.code).toBe(0);
  return r.stdout;
}

async function sftpGet(t: TestTunnel, remote: string, local: string): Promise<{ code: number; out: string }> {
  const batch = path.join(fx.dir, `batch-${path.basename(local)}`);
  await fs.writeFile(batch, `get ${remote} ${local}\n`);
  const r = await sh(`sftp -S ${wrapper} -b ${batch} box 2>&1`, { env: env(t) });
  return { code: r.code, out: r.stdout };
}

describe('downloads through the tunnel are masked like cat', { timeout: 240_000 }, () => {
  it('scp -O, scp and sftp get of a text file with an SSN and an email come back as cat shows it', async () => {
    const file = path.join(src, 'people.txt');
    const cat = await catOf(masked, file);
    expect(cat).not.toContain(SSN);
    expect(cat).not.toContain(EMAIL);
    expect(cat.split('\n')[0]).toMatch(/^row 0 ssn \S+ mail \S+ ok$/);

    const legacy = await sh(`scp -O -S ${wrapper} box:${file} ${dst}/legacy.txt`, { env: env(masked) });
    expect(legacy.stderr).toBe('');
    expect(legacy.code).toBe(0);
    expect(await read(`${dst}/legacy.txt`)).toBe(cat);

    const modern = await sh(`scp -S ${wrapper} box:${file} ${dst}/modern.txt`, { env: env(masked) });
    expect(modern.stderr).toBe('');
    expect(modern.code).toBe(0);
    expect(await read(`${dst}/modern.txt`)).toBe(cat);

    const got = await sftpGet(masked, file, `${dst}/sftp.txt`);
    expect(got.code, got.out).toBe(0);
    expect(await read(`${dst}/sftp.txt`)).toBe(cat);

    // The masking is counted in the record, never the values.
    const dump = await fx.dump();
    expect(dump).not.toContain(SSN);
    expect(dump).not.toContain(EMAIL);
    expect((await fx.events()).some((e) => e.type === 'mask.summary')).toBe(true);
  });

  it('a binary file is refused while a mask rule applies, with a message; it passes unchanged where none does', async () => {
    const file = path.join(src, 'blob.bin');
    const legacy = await sh(`scp -O -S ${wrapper} box:${file} ${dst}/blob-legacy`, { env: env(masked) });
    expect(legacy.code).not.toBe(0);
    expect(legacy.stderr).toContain('a binary file cannot be masked');
    await expect(fs.stat(`${dst}/blob-legacy`)).rejects.toThrow();
    const modern = await sh(`scp -S ${wrapper} box:${file} ${dst}/blob-modern`, { env: env(masked) });
    expect(modern.code).not.toBe(0);
    await expect(fs.stat(`${dst}/blob-modern`)).rejects.toThrow();
    const got = await sftpGet(masked, file, `${dst}/blob-sftp`);
    expect(got.code).not.toBe(0);
    expect(got.out).toContain('a binary file cannot be masked');

    for (const [flag, name] of [['-O', 'plain-legacy'], ['', 'plain-modern']] as const) {
      const r = await sh(`scp ${flag} -S ${wrapper} box:${file} ${dst}/${name}`, { env: env(unmasked) });
      expect(r.code).toBe(0);
      expect((await fs.readFile(`${dst}/${name}`)).equals(await fs.readFile(file))).toBe(true);
    }
  });

  it('an ssh.paths rule denies reading a file by scp -O, scp -r, scp and sftp; the denial is recorded', async () => {
    const secret = path.join(src, 'secret', 'key.txt');
    const legacy = await sh(`scp -O -S ${wrapper} box:${secret} ${dst}/s1`, { env: env(masked) });
    expect(legacy.code).not.toBe(0);
    expect(legacy.stderr).toContain('denied by policy dl rule no-secrets');
    expect(legacy.stderr).toContain('secrets stay on the host');
    await expect(fs.stat(`${dst}/s1`)).rejects.toThrow();

    // A directory: the other files arrive (masked), the secret one does not.
    const rec = await sh(`scp -O -r -S ${wrapper} box:${src} ${dst}/tree`, { env: env(masked) });
    expect(rec.code).not.toBe(0);
    expect(rec.stderr).toContain('denied by policy dl rule no-secrets');
    expect(await read(`${dst}/tree/people.txt`)).toBe(await catOf(masked, path.join(src, 'people.txt')));
    await expect(fs.stat(`${dst}/tree/secret/key.txt`)).rejects.toThrow();

    const modern = await sh(`scp -S ${wrapper} box:${secret} ${dst}/s2`, { env: env(masked) });
    expect(modern.code).not.toBe(0);
    await expect(fs.stat(`${dst}/s2`)).rejects.toThrow();
    const got = await sftpGet(masked, `${src}/./secret/../secret/key.txt`, `${dst}/s3`);
    expect(got.code).not.toBe(0);
    expect(got.out).toContain('secrets stay on the host');
    await expect(fs.stat(`${dst}/s3`)).rejects.toThrow();

    const denials = (await fx.events()).filter((e) => e.type === 'ssh.command' && e.decision === 'deny' && e.rule === 'dl/no-secrets');
    expect(denials.some((e) => e.type === 'ssh.command' && e.channel === 'exec')).toBe(true);
    expect(denials.some((e) => e.type === 'ssh.command' && e.channel === 'sftp' && e.command.includes('key.txt'))).toBe(true);
    // Other files still download through sftp on the same tunnel.
    expect((await sftpGet(masked, path.join(src, 'people.txt'), `${dst}/after.txt`)).code).toBe(0);
  });
});
