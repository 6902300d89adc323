/**
 * Which model id a request names: the same choice as `served_model_id` in slm_swap/serving/launch.py.
 *
 * `transformers serve` is pinned to the checkpoint it loaded and answers only to that
 * folder's absolute path: the merged checkpoint when the track has an adapter, else the
 * base. vLLM serves the adapter as a LoRA module named after the track, and the base
 * under the path it was given.
 */

import { existsSync, realpathSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { checkTrack, type Track } from "./prompts.ts";

export const REPO_ROOT = fileURLToPath(new URL("../../../", import.meta.url));
export const DEFAULT_FT_DIR = join(REPO_ROOT, "slm_swap", "04_ft");
export const DEFAULT_MODELS_DIR = join(REPO_ROOT, "slm_swap", "models");
export const SERVERS = ["transformers", "vllm"] as const;
export type Server = (typeof SERVERS)[number];

export interface ServedModelOptions {
  track: Track;
  /** The base checkpoint folder, as given to tools/serve.py (relative paths are read from the working directory). */
  baseModel: string;
  ftDir?: string;
  modelsDir?: string;
  server?: Server;
}

export function adapterDir(track: Track, ftDir: string = DEFAULT_FT_DIR): string {
  return join(ftDir, `adapter_${checkTrack(track)}`);
}

/** The track's adapter folder when fine-tuning has published one (it holds adapter_config.json). */
export function findAdapter(track: Track, ftDir: string = DEFAULT_FT_DIR): string | null {
  const folder = adapterDir(track, ftDir);
  return existsSync(join(folder, "adapter_config.json")) ? folder : null;
}

export function mergedDir(baseModel: string, track: Track, modelsDir: string = DEFAULT_MODELS_DIR): string {
  return join(modelsDir, `${basename(resolve(baseModel))}-${checkTrack(track)}-merged`);
}

export function servedModelId(options: ServedModelOptions): string {
  const { track, baseModel, ftDir = DEFAULT_FT_DIR, modelsDir = DEFAULT_MODELS_DIR, server = "transformers" } = options;
  if (typeof baseModel !== "string" || baseModel === "") {
    throw new TypeError("baseModel must be the base checkpoint folder tools/serve.py serves");
  }
  const adapter = findAdapter(track, ftDir);
  if (server === "vllm") return adapter ? track : baseModel;
  if (server !== "transformers") throw new TypeError(`unknown server ${JSON.stringify(server)}; expected ${SERVERS.join(" or ")}`);
  return absolutePath(adapter ? mergedDir(baseModel, track, modelsDir) : baseModel);
}

// Python's Path.resolve() follows symbolic links; realpath does the same where the folder exists.
function absolutePath(path: string): string {
  const absolute = resolve(path);
  return existsSync(absolute) ? realpathSync(absolute) : absolute;
}
