/**
 * The evaluation's prompt, built in TypeScript: the same templates (read from
 * `slm_swap/prompts.json` at run time, never copied) and the same one-pass
 * substitution as `slm_swap/prompts.py`, so the served SLM sees the text it was scored on.
 */

import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

export const PROMPTS_FILE = fileURLToPath(new URL("../../prompts.json", import.meta.url));
export const TRACKS = ["structured", "toolcall"] as const;
export type Track = (typeof TRACKS)[number];
export type Tool = Record<string, unknown>;
export interface Message {
  role: "user";
  content: string;
}

// The same pattern as prompts.py: one pass, so braces in user text or JSON are never placeholders.
const PLACEHOLDER = /\{(user_text|tools)\}/g;
const templateCache = new Map<string, Record<Track, string>>();

export function isTrack(value: unknown): value is Track {
  return typeof value === "string" && (TRACKS as readonly string[]).includes(value);
}

export function checkTrack(track: unknown): Track {
  if (!isTrack(track)) {
    throw new TypeError(`unknown track ${JSON.stringify(track)}; expected one of ${TRACKS.join(", ")}`);
  }
  return track;
}

export function loadTemplates(promptsFile: string = PROMPTS_FILE): Record<Track, string> {
  const cached = templateCache.get(promptsFile);
  if (cached) return cached;
  let data: unknown;
  try {
    data = JSON.parse(readFileSync(promptsFile, "utf8"));
  } catch (error) {
    throw new Error(`${promptsFile}: cannot read the prompt templates (${(error as Error).message})`);
  }
  const templates = {} as Record<Track, string>;
  for (const track of TRACKS) {
    const template = (data as Record<string, { template?: unknown } | undefined>)?.[track]?.template;
    if (typeof template !== "string") throw new Error(`${promptsFile}: no string template for track ${track}`);
    templates[track] = template;
  }
  templateCache.set(promptsFile, templates);
  return templates;
}

/** One compact JSON line per tool, as `render_tools` in prompts.py writes them. */
export function renderTools(tools: readonly Tool[]): string {
  if (!Array.isArray(tools)) throw new TypeError(`tools must be an array of tool objects, got ${typeName(tools)}`);
  return tools
    .map((tool, index) => {
      if (tool === null || typeof tool !== "object" || Array.isArray(tool)) {
        throw new TypeError(`tools[${index}] must be an object, got ${typeName(tool)}`);
      }
      return JSON.stringify(tool);
    })
    .join("\n");
}

export function buildPrompt(track: Track, userText: string, tools: readonly Tool[], promptsFile?: string): string {
  checkTrack(track);
  if (typeof userText !== "string") throw new TypeError(`userText must be a string, got ${typeName(userText)}`);
  const values: Record<string, string> = { user_text: userText, tools: renderTools(tools) };
  // A replacer function, not a replacement string: "$&" or "$1" in user text stays literal.
  return loadTemplates(promptsFile)[track].replace(PLACEHOLDER, (_match, name: string) => values[name]);
}

/** The chat messages every caller sends: hosted model, SLM, fine-tuning and this client. */
export function buildMessages(prompt: string): Message[] {
  if (typeof prompt !== "string") throw new TypeError(`prompt must be a string, got ${typeName(prompt)}`);
  return [{ role: "user", content: prompt }];
}

function typeName(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  return typeof value;
}
