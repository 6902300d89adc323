/**
 * Parity helper for tests/serving/test_mastra.py: reads JSON lines from stdin and writes one line per case.
 *   {"prompt": P}                                  -> {"messages": JSON.stringify(buildMessages(P))}
 *   {"track": T, "user_text": U, "tools": [...]}   -> {"prompt": buildPrompt(T, U, tools), "messages": ...}
 * A case the builder refuses comes back as {"error": message}.
 */

import { text } from "node:stream/consumers";

import { buildMessages, buildPrompt, type Track } from "../src/prompts.ts";

const lines = (await text(process.stdin)).split("\n").filter((line) => line !== "");
const out: string[] = [];
for (const line of lines) {
  const item = JSON.parse(line) as { prompt?: string; track?: Track; user_text?: string; tools?: Record<string, unknown>[] };
  try {
    const prompt = item.prompt ?? buildPrompt(item.track as Track, item.user_text as string, item.tools as Record<string, unknown>[]);
    out.push(JSON.stringify({ prompt, messages: JSON.stringify(buildMessages(prompt)) }));
  } catch (error) {
    out.push(JSON.stringify({ error: (error as Error).message }));
  }
}
process.stdout.write(out.join("\n") + "\n");
