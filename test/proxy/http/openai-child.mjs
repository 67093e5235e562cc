// The plain `openai` client through the tunnel (OPENAI_BASE_URL / OPENAI_API_KEY from the environment):
// chat completions and responses, streamed and not. Prints one JSON line with what it read.
import OpenAI from 'openai';

const client = new OpenAI();
const prompt = process.env.TEST_PROMPT ?? '';
const chat = await client.chat.completions.create({ model: 'gpt-test', messages: [{ role: 'user', content: prompt }] });
let chatStreamed = '';
const stream = await client.chat.completions.create({ model: 'gpt-test', stream: true, messages: [{ role: 'user', content: prompt }] });
for await (const chunk of stream) chatStreamed += chunk.choices[0]?.delta?.content ?? '';
const resp = await client.responses.create({ model: 'gpt-test', input: prompt });
let respStreamed = '';
const rs = await client.responses.create({ model: 'gpt-test', input: prompt, stream: true });
for await (const ev of rs) if (ev.type === 'response.output_text.delta') respStreamed += ev.delta;
let denied = null;
try {
  await client.files.delete('file-123');
} catch (err) {
  denied = { status: err.status, message: err.message };
}
process.stdout.write(`${JSON.stringify({ chat: chat.choices[0].message.content, chatStreamed, resp: resp.output_text, respStreamed, denied, env: process.env })}\n`);
