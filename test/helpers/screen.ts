/**
 * What a terminal shows after the bytes written to it: enough of a VT100 for ink's output (text, newlines,
 * cursor up, column 0, erase line / to end of screen); other sequences are ignored.
 */
export function screenAfter(bytes: string): string[] {
  const lines: string[] = [''];
  let row = 0;
  let col = 0;
  const put = (ch: string) => {
    const l = lines[row] ?? '';
    lines[row] = l.slice(0, col).padEnd(col, ' ') + ch + l.slice(col + 1);
    col += 1;
  };
  for (let i = 0; i < bytes.length; ) {
    const csi = /^\u001b\[([?0-9;]*)([A-Za-z])/.exec(bytes.slice(i));
    if (csi) {
      const n = Number(csi[1]) || 1;
      if (csi[2] === 'A') row = Math.max(0, row - n);
      else if (csi[2] === 'G') col = 0;
      else if (csi[2] === 'K') lines[row] = csi[1] === '2' ? '' : (lines[row] ?? '').slice(0, col);
      else if (csi[2] === 'J') lines.splice(row + 1), (lines[row] = (lines[row] ?? '').slice(0, col));
      i += csi[0].length;
      continue;
    }
    const ch = bytes[i]!;
    if (ch === '\u001b') i += 2;
    else {
      if (ch === '\n') {
        row += 1;
        col = 0;
        while (lines.length <= row) lines.push('');
      } else if (ch === '\r') col = 0;
      else put(ch);
      i += 1;
    }
  }
  return lines.filter((l) => l.trim() !== '');
}

