/**
 * Ask the served SLM one request through a Mastra agent and print its raw reply.
 *
 *   SLM_BASE_URL=http://127.0.0.1:8000/v1 SLM_TRACK=structured SLM_MODEL_PATH=slm_swap/models/smollm2-135m-instruct \
 *     node slm_swap/mastra/examples/answer.ts "What is the weather in Paris?" slm_swap/mastra/examples/weather_tools.json
 *
 * With LANGFUSE_PUBLIC_KEY, LANGFUSE_SECRET_KEY and LANGFUSE_HOST set, the call is traced in Langfuse.
 */

import { readFileSync } from "node:fs";

import { SlmClientError, answer, createSlmAgent, createSlmMastra, langfuseSettingsFromEnv, slmSettingsFromEnv } from "../src/index.ts";

const [userText, toolsFile] = process.argv.slice(2);
if (userText === undefined || toolsFile === undefined) {
  console.error("usage: node examples/answer.ts USER_TEXT TOOLS_JSON_FILE");
  process.exit(2);
}
const settings = slmSettingsFromEnv(process.env);
const agent = createSlmAgent(settings);
const mastra = createSlmMastra(agent, langfuseSettingsFromEnv(process.env));
try {
  const reply = await answer(agent, settings, userText, JSON.parse(readFileSync(toolsFile, "utf8")));
  process.stdout.write(`${reply.text}\n`);
} catch (error) {
  if (!(error instanceof SlmClientError)) throw error;
  console.error(`error (${error.kind}): ${error.message}`);
  process.exitCode = 1;
} finally {
  await mastra.shutdown(); // flushes the Langfuse exporter
}
