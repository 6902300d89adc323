/**
 * The client's settings from the environment, read once at the application's edge:
 * `slmSettingsFromEnv(process.env)`. tools/serve.py prints the values to set.
 *
 * SLM_BASE_URL   the server's base URL (http://127.0.0.1:8000/v1)
 * SLM_TRACK      structured or toolcall
 * SLM_MODEL_PATH the base checkpoint folder, as evaluation and tools/serve.py read it
 * SLM_SERVER     transformers (default) or vllm: how the adapter is served, which decides the model id
 */

import { checkSettings, type SlmSettings } from "./client.ts";
import { SERVERS, servedModelId, type Server } from "./served_model.ts";
import { checkTrack } from "./prompts.ts";

export function slmSettingsFromEnv(env: Record<string, string | undefined>): SlmSettings {
  const read = (name: string): string => {
    const value = (env[name] ?? "").trim();
    if (value === "") throw new Error(`${name} is not set; start the server with python tools/serve.py --track <track> and set what it prints`);
    return value;
  };
  const server = (env.SLM_SERVER ?? "").trim() || "transformers";
  if (!(SERVERS as readonly string[]).includes(server)) {
    throw new Error(`SLM_SERVER must be one of ${SERVERS.join(", ")}, got ${JSON.stringify(server)}`);
  }
  const track = checkTrack(read("SLM_TRACK"));
  const modelId = servedModelId({ track, baseModel: read("SLM_MODEL_PATH"), server: server as Server });
  return checkSettings({ baseURL: read("SLM_BASE_URL"), modelId, track });
}
