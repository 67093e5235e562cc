// An agent built with @openai/agents, run as `dlpctl connect … -- node agent-child.mjs` would run it:
// it knows only OPENAI_BASE_URL and OPENAI_API_KEY (the tunnel's URL and token). Usage:
//   node agent-child.mjs responses|chat stream|once
// Prints one JSON line: the final output, and the environment it saw (so the test can look for secrets).
import { Agent, run, tool, setOpenAIAPI } from '@openai/agents';
import { z } from 'zod';

const [api, mode] = process.argv.slice(2);
if (api === 'chat') setOpenAIAPI('chat_completions');
const customers = JSON.parse(process.env.TEST_CUSTOMERS_JSON ?? '[]');

const getCustomers = tool({
  name: 'get_customers',
  description: 'Returns customer rows from the CRM.',
  parameters: z.object({ limit: z.number() }),
  execute: async ({ limit }) => JSON.stringify(customers.slice(0, limit)),
});

const agent = new Agent({ name: 'support', instructions: 'List the customers with their contact details.', model: 'gpt-test', tools: [getCustomers] });

let finalOutput;
let streamedText = '';
if (mode === 'stream') {
  const result = await run(agent, 'Who are our customers?', { stream: true, tracingDisabled: true });
  for await (const ev of result) {
    if (ev.type === 'raw_model_stream_event' && ev.data.type === 'output_text_delta') streamedText += ev.data.delta;
  }
  await result.completed;
  finalOutput = result.finalOutput;
} else {
  const result = await run(agent, 'Who are our customers?', { tracingDisabled: true });
  finalOutput = result.finalOutput;
}
process.stdout.write(`${JSON.stringify({ finalOutput, streamedText, env: process.env })}\n`);
