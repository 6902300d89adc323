/** The SLM Swap Mastra client: evaluation's prompts, the served model's id, the agent, optional Langfuse tracing. */

export { PROMPTS_FILE, TRACKS, buildMessages, buildPrompt, checkTrack, isTrack, loadTemplates, renderTools } from "./prompts.ts";
export type { Message, Tool, Track } from "./prompts.ts";
export { DEFAULT_FT_DIR, DEFAULT_MODELS_DIR, REPO_ROOT, SERVERS, adapterDir, findAdapter, mergedDir, servedModelId } from "./served_model.ts";
export type { Server, ServedModelOptions } from "./served_model.ts";
export {
  DEFAULT_TIMEOUT_MS,
  EVAL_MAX_TOKENS,
  SlmClientError,
  answer,
  answerPrompt,
  checkSettings,
  createSlmAgent,
  createSlmModel,
  describeFailure,
} from "./client.ts";
export type { SlmErrorKind, SlmReply, SlmSettings } from "./client.ts";
export { slmSettingsFromEnv } from "./settings.ts";
export { LANGFUSE_VARS, SERVICE_NAME, createSlmMastra, langfuseSettingsFromEnv } from "./tracing.ts";
export type { LangfuseSettings } from "./tracing.ts";
