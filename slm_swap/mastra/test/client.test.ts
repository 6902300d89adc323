/**
 * The Mastra client over real HTTP on 127.0.0.1: the request it sends, the text it returns from a
 * real `transformers serve` (when tests/serving/test_mastra.py provides one), and a clear error per failure.
 */

import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { readFileSync } from "node:fs";
import { after, test } from "node:test";

import {
  EVAL_MAX_TOKENS,
  SlmClientError,
  answer,
  answerPrompt,
  buildPrompt,
  createSlmAgent,
  createSlmMastra,
  langfuseSettingsFromEnv,
  slmSettingsFromEnv,
  type SlmSettings,
  type Track,
} from "../src/index.ts";

type Handler = (body: string, req: http.IncomingMessage, res: http.ServerResponse) => void;
const servers: http.Server[] = [];
after(() => servers.forEach((server) => (server.closeAllConnections(), server.close())));

async function localServer(handler: Handler): Promise<{ url: string; bodies: string[] }> {
  const bodies: string[] = [];
  const server = http.createServer((req, res) => {
    let body = "";
    req.on("data", (chunk) => (body += chunk));
    req.on("end", () => (bodies.push(body), handler(body, req, res)));
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`, bodies };
}

function completion(content: string, model: string): string {
  return JSON.stringify({
    id: "c1",
    object: "chat.completion",
    created: 1,
    model,
    choices: [{ index: 0, message: { role: "assistant", content }, finish_reason: "stop" }],
    usage: { prompt_tokens: 5, completion_tokens: 3, total_tokens: 8 },
  });
}

function settings(baseURL: string, overrides: Partial<SlmSettings> = {}): SlmSettings {
  return { baseURL, modelId: "/models/tiny", track: "structured", ...overrides };
}

async function rejects(call: Promise<unknown>, kind: string, message: RegExp): Promise<SlmClientError> {
  const error = await call.then(
    () => assert.fail("expected an SlmClientError"),
    (caught: unknown) => caught,
  );
  assert.ok(error instanceof SlmClientError, `not an SlmClientError: ${error}`);
  assert.equal(error.kind, kind, error.message);
  assert.match(error.message, message);
  return error;
}

const TOOLS = [{ name: "get_weather", parameters: { city: { type: "string" } } }];

test("sends exactly evaluation's request and returns the text byte for byte", async () => {
  const raw = '  {"name": "get_weather"}\n\u00e9 trailing  ';
  const server = await localServer((body, _req, res) => {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(completion(raw, JSON.parse(body).model));
  });
  const s = settings(server.url);
  const reply = await answer(createSlmAgent(s), s, "Weather in Paris?", TOOLS);
  assert.equal(reply.text, raw);
  assert.equal(reply.usage.outputTokens, 3);
  assert.equal(server.bodies.length, 1);
  assert.deepEqual(JSON.parse(server.bodies[0]), {
    model: "/models/tiny",
    max_tokens: EVAL_MAX_TOKENS,
    temperature: 0,
    messages: [{ role: "user", content: buildPrompt("structured", "Weather in Paris?", TOOLS) }],
  });
});

test("server down is an unreachable error that says how to start it", async () => {
  const server = await localServer(() => undefined);
  const url = server.url;
  await new Promise<void>((resolve) => servers.pop()!.close(() => resolve()));
  const s = settings(url);
  await rejects(answerPrompt(createSlmAgent(s), s, "p"), "unreachable", /cannot reach the SLM server at .*ECONNREFUSED.*tools\/serve\.py/);
});

test("HTTP 500 is an http_status error with the status and the body, asked once (no retry)", async () => {
  const server = await localServer((_body, _req, res) => {
    res.writeHead(500, { "content-type": "application/json" });
    res.end('{"error": "model crashed"}');
  });
  const s = settings(server.url);
  const error = await rejects(answerPrompt(createSlmAgent(s), s, "p"), "http_status", /answered HTTP 500: \{"error": "model crashed"\}/);
  assert.equal(error.status, 500);
  assert.equal(server.bodies.length, 1);
});

test("a server that never answers is a timeout error after timeoutMs", async () => {
  const server = await localServer(() => undefined);
  const s = settings(server.url, { timeoutMs: 300 });
  const started = Date.now();
  await rejects(answerPrompt(createSlmAgent(s), s, "p"), "timeout", /no reply from the SLM server at .* within 300 ms/);
  assert.ok(Date.now() - started < 5000);
});

test("a reply that is not a chat completion is a bad_response error", async () => {
  const server = await localServer((_body, _req, res) => {
    res.writeHead(200, { "content-type": "application/json" });
    res.end("<html>not json</html>");
  });
  const s = settings(server.url);
  await rejects(answerPrompt(createSlmAgent(s), s, "p"), "bad_response", /sent a reply that is not a chat completion: <html>not json<\/html>/);
});

test("bad arguments are refused before any request", async () => {
  const server = await localServer(() => assert.fail("no request expected"));
  const good = settings(server.url);
  const cases: [Partial<SlmSettings>, RegExp][] = [
    [{ baseURL: "127.0.0.1:8000" }, /baseURL must be/],
    [{ baseURL: `${server.url}/chat/completions` }, /must stop before \/chat\/completions/],
    [{ modelId: "" }, /modelId must be a non-empty string/],
    [{ track: "chat" as Track }, /unknown track "chat"/],
    [{ maxTokens: 0 }, /maxTokens must be a positive integer, got 0/],
    [{ timeoutMs: -1 }, /timeoutMs must be a positive number, got -1/],
  ];
  for (const [override, message] of cases) {
    assert.throws(() => createSlmAgent({ ...good, ...override }), message);
    await rejects(answerPrompt(createSlmAgent(good), { ...good, ...override }, "p"), "bad_argument", message);
  }
  const agent = createSlmAgent(good);
  await rejects(answer(agent, good, "x", "tools" as never), "bad_argument", /tools must be an array/);
  await rejects(answer(agent, good, 7 as never, TOOLS), "bad_argument", /userText must be a string/);
  await rejects(answerPrompt(agent, good, ""), "bad_argument", /prompt must be a non-empty string/);
  assert.equal(server.bodies.length, 0);
});

test("settings from the environment name what is missing", () => {
  assert.throws(() => slmSettingsFromEnv({ SLM_TRACK: "structured", SLM_MODEL_PATH: "m" }), /SLM_BASE_URL is not set/);
  assert.throws(() => slmSettingsFromEnv({ SLM_BASE_URL: "http://127.0.0.1:1/v1", SLM_TRACK: "x", SLM_MODEL_PATH: "m" }), /unknown track "x"/);
  assert.throws(() => slmSettingsFromEnv({ SLM_BASE_URL: "http://h/v1", SLM_TRACK: "structured", SLM_MODEL_PATH: "m", SLM_SERVER: "tgi" }), /SLM_SERVER must be one of/);
  const vllm = slmSettingsFromEnv({ SLM_BASE_URL: "http://127.0.0.1:8000/v1/", SLM_TRACK: "toolcall", SLM_MODEL_PATH: "m", SLM_SERVER: "vllm" });
  assert.equal(vllm.baseURL, "http://127.0.0.1:8000/v1");
});

test("Langfuse tracing is off without LANGFUSE_*, and a partial set is an error", () => {
  assert.equal(langfuseSettingsFromEnv({}), null);
  assert.throws(() => langfuseSettingsFromEnv({ LANGFUSE_PUBLIC_KEY: "pk" }), /half configured: set LANGFUSE_SECRET_KEY, LANGFUSE_HOST too/);
  assert.throws(
    () => langfuseSettingsFromEnv({ LANGFUSE_PUBLIC_KEY: "pk", LANGFUSE_SECRET_KEY: "sk", LANGFUSE_HOST: "cloud" }),
    /LANGFUSE_HOST must be an http\(s\) URL/,
  );
});

// The real server and the texts evaluation produced for these rows (tests/serving/test_mastra.py provides both).
const real = process.env.SLM_TEST_CASES ? JSON.parse(readFileSync(process.env.SLM_TEST_CASES, "utf8")) : null;
const skipReal = real ? false : "SLM_TEST_CASES not set (tests/serving/test_mastra.py starts a real server and sets it)";

test("a real transformers serve answers with exactly the text evaluation produced", { skip: skipReal }, async () => {
  const s = settings(real.base_url, { modelId: real.model_id, track: real.track, maxTokens: real.max_tokens, timeoutMs: 300_000 });
  const agent = createSlmAgent(s);
  for (const item of real.cases) {
    const reply = item.user_text === undefined ? await answerPrompt(agent, s, item.prompt) : await answer(agent, s, item.user_text, item.tools);
    assert.equal(reply.text, item.text, `case ${item.id}`);
  }
});

test("the real server refuses a model id it does not serve, as an http_status 400", { skip: skipReal }, async () => {
  const s = settings(real.base_url, { modelId: "/not/the/served/model", maxTokens: 2, timeoutMs: 300_000 });
  await rejects(answerPrompt(createSlmAgent(s), s, "p"), "http_status", /answered HTTP 400: .*pinned/);
});

test("with LANGFUSE_* set, the call is traced through @mastra/langfuse", { skip: real?.langfuse ? false : "no Langfuse receiver given" }, async () => {
  const s = settings(real.base_url, { modelId: real.model_id, track: real.track, maxTokens: real.max_tokens, timeoutMs: 300_000 });
  const agent = createSlmAgent(s, "slm-traced");
  const mastra = createSlmMastra(agent, langfuseSettingsFromEnv(real.langfuse));
  const item = real.cases[0];
  const reply = await answerPrompt(agent, s, item.prompt);
  assert.equal(reply.text, item.text);
  await mastra.shutdown();
});
