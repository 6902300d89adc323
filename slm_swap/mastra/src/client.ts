/**
 * A Mastra agent on the locally served SLM that answers with the raw text evaluation scored.
 *
 * The agent has no instructions (evaluation sends no system message), no tools, no memory
 * and no retries; every call sends the evaluation's user message, temperature 0 and the
 * evaluation's output cap. Failures become one `SlmClientError` whose `kind` says what went
 * wrong; there is no fallback to another model.
 */

import { Agent } from "@mastra/core/agent";
import type { OpenAICompatibleConfig } from "@mastra/core/llm";

import { buildMessages, buildPrompt, checkTrack, type Tool, type Track } from "./prompts.ts";

/** Evaluation's `--max-new-tokens` default; tests/serving/test_mastra.py checks it against EvalSettings. */
export const EVAL_MAX_TOKENS = 256;
export const DEFAULT_TIMEOUT_MS = 120_000;
const BODY_EXCERPT_CHARS = 300;

export interface SlmSettings {
  /** The server's OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1 (tools/serve.py prints it). */
  baseURL: string;
  /** The id requests name; `servedModelId` picks the adapter's when there is one. */
  modelId: string;
  track: Track;
  maxTokens?: number;
  timeoutMs?: number;
  /** Only for servers started with a key (vllm --api-key); transformers serve checks none. */
  apiKey?: string;
}

export type SlmErrorKind = "bad_argument" | "unreachable" | "http_status" | "timeout" | "bad_response";

export class SlmClientError extends Error {
  readonly kind: SlmErrorKind;
  readonly status: number | undefined;

  constructor(kind: SlmErrorKind, message: string, options: { cause?: unknown; status?: number } = {}) {
    super(message, { cause: options.cause });
    this.name = "SlmClientError";
    this.kind = kind;
    this.status = options.status;
  }
}

export interface SlmReply {
  text: string;
  finishReason: string;
  usage: { inputTokens?: number; outputTokens?: number };
}

export function checkSettings(settings: SlmSettings): Required<Omit<SlmSettings, "apiKey">> & Pick<SlmSettings, "apiKey"> {
  const bad = (message: string) => new SlmClientError("bad_argument", message);
  if (settings === null || typeof settings !== "object") throw bad("settings must be an object");
  const { baseURL, modelId, maxTokens = EVAL_MAX_TOKENS, timeoutMs = DEFAULT_TIMEOUT_MS, apiKey } = settings;
  let url: URL;
  try {
    url = new URL(baseURL);
  } catch {
    throw bad(`baseURL must be an http(s) URL such as http://127.0.0.1:8000/v1, got ${JSON.stringify(baseURL)}`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw bad(`baseURL must be http(s), got ${JSON.stringify(baseURL)}`);
  if (url.pathname.replace(/\/+$/, "").endsWith("/chat/completions")) {
    throw bad("baseURL must stop before /chat/completions (the client appends it)");
  }
  if (typeof modelId !== "string" || modelId === "") throw bad("modelId must be a non-empty string (see servedModelId)");
  try {
    checkTrack(settings.track);
  } catch (error) {
    throw bad((error as Error).message);
  }
  if (!Number.isInteger(maxTokens) || maxTokens < 1) throw bad(`maxTokens must be a positive integer, got ${maxTokens}`);
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw bad(`timeoutMs must be a positive number, got ${timeoutMs}`);
  return { baseURL: baseURL.replace(/\/+$/, ""), modelId, track: settings.track, maxTokens, timeoutMs, apiKey };
}

/** Mastra's OpenAI-compatible model config (url + model id) for the served SLM, on the chat completions API. */
export function createSlmModel(settings: SlmSettings): OpenAICompatibleConfig {
  const { baseURL, modelId, apiKey } = checkSettings(settings);
  return { providerId: "slm", modelId, url: baseURL, api: "chat", ...(apiKey ? { apiKey } : {}) };
}

/** The Mastra agent: register it in your `Mastra` instance (for tracing) or call `answerPrompt` with it. */
export function createSlmAgent(settings: SlmSettings, id = `slm-${settings?.track}`): Agent {
  const checked = checkSettings(settings);
  return new Agent({
    id,
    name: id,
    instructions: "",
    model: createSlmModel(checked),
    maxRetries: 0,
    defaultOptions: { modelSettings: { temperature: 0, maxOutputTokens: checked.maxTokens } },
  });
}

/** The raw reply to a finished prompt (e.g. a dataset row's `prompt`). */
export async function answerPrompt(agent: Agent, settings: SlmSettings, prompt: string): Promise<SlmReply> {
  const checked = checkSettings(settings);
  if (typeof prompt !== "string" || prompt === "") throw new SlmClientError("bad_argument", "prompt must be a non-empty string");
  const deadline = AbortSignal.timeout(checked.timeoutMs);
  let result;
  try {
    result = await agent.generate(buildMessages(prompt), {
      abortSignal: deadline,
      modelSettings: { temperature: 0, maxOutputTokens: checked.maxTokens },
    });
  } catch (error) {
    throw describeFailure(error, checked.baseURL, checked.timeoutMs);
  }
  // An aborted call resolves with empty text and finish reason "aborted" rather than throwing.
  if (deadline.aborted || result.finishReason === "aborted") {
    throw new SlmClientError("timeout", `no reply from the SLM server at ${checked.baseURL} within ${checked.timeoutMs} ms`);
  }
  if (result.error) throw describeFailure(result.error, checked.baseURL, checked.timeoutMs);
  if (typeof result.text !== "string") {
    throw new SlmClientError("bad_response", `the SLM server at ${checked.baseURL} sent no text content`);
  }
  return {
    text: result.text,
    finishReason: String(result.finishReason),
    usage: { inputTokens: result.usage?.inputTokens, outputTokens: result.usage?.outputTokens },
  };
}

/** Build the evaluation's prompt for the track from the request and tool signatures, and answer it. */
export async function answer(agent: Agent, settings: SlmSettings, userText: string, tools: readonly Tool[]): Promise<SlmReply> {
  let prompt: string;
  try {
    prompt = buildPrompt(checkSettings(settings).track, userText, tools);
  } catch (error) {
    if (error instanceof SlmClientError) throw error;
    throw new SlmClientError("bad_argument", (error as Error).message, { cause: error });
  }
  return answerPrompt(agent, settings, prompt);
}

export function describeFailure(error: unknown, baseURL: string, timeoutMs: number): SlmClientError {
  if (error instanceof SlmClientError) return error;
  const chain = causes(error);
  if (chain.some((e) => e instanceof Error && (e.name === "TimeoutError" || e.name === "AbortError"))) {
    return new SlmClientError("timeout", `no reply from the SLM server at ${baseURL} within ${timeoutMs} ms`, { cause: error });
  }
  // The AI SDK's APICallError carries the HTTP status and body of a refused request.
  const apiError = chain.find((e) => typeof (e as { statusCode?: unknown })?.statusCode === "number") as
    | { statusCode: number; responseBody?: string }
    | undefined;
  if (apiError) {
    const body = (apiError.responseBody ?? "").slice(0, BODY_EXCERPT_CHARS);
    const status = apiError.statusCode;
    if (status >= 200 && status < 300) {
      return new SlmClientError("bad_response", `the SLM server at ${baseURL} sent a reply that is not a chat completion: ${body}`, { cause: error, status });
    }
    return new SlmClientError("http_status", `the SLM server at ${baseURL} answered HTTP ${status}: ${body}`, { cause: error, status });
  }
  const code = chain.map((e) => (e as { code?: unknown })?.code).find((c) => typeof c === "string");
  if (code || chain.some((e) => e instanceof TypeError && /fetch failed/i.test(e.message))) {
    return new SlmClientError(
      "unreachable",
      `cannot reach the SLM server at ${baseURL}${code ? ` (${code})` : ""}; is it running? start it with python tools/serve.py --track <track>`,
      { cause: error },
    );
  }
  const message = error instanceof Error ? error.message : String(error);
  return new SlmClientError("bad_response", `the SLM call to ${baseURL} failed: ${message}`, { cause: error });
}

function causes(error: unknown): unknown[] {
  const chain: unknown[] = [];
  for (let current = error; current !== undefined && current !== null && chain.length < 10; ) {
    chain.push(current);
    current = (current as { cause?: unknown }).cause;
  }
  return chain;
}
