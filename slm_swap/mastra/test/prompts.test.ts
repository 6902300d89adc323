/** The prompt builder and the served model id: the traps Python and TypeScript must agree on. */

import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, sep } from "node:path";
import { test } from "node:test";

import { PROMPTS_FILE, buildMessages, buildPrompt, loadTemplates, renderTools, servedModelId } from "../src/index.ts";

const TOOLS = [{ name: "f", parameters: { x: { type: "string" } } }];

test("templates come from the shared slm_swap/prompts.json, not a copy", () => {
  assert.ok(PROMPTS_FILE.endsWith(`${sep}slm_swap${sep}prompts.json`), PROMPTS_FILE);
  const shared = JSON.parse(readFileSync(PROMPTS_FILE, "utf8"));
  assert.equal(loadTemplates().toolcall, shared.toolcall.template);
});

test("a placeholder inside the user text stays literal (one substitution pass)", () => {
  const prompt = buildPrompt("structured", "say {tools} and {user_text}", TOOLS);
  assert.ok(prompt.endsWith("Request: say {tools} and {user_text}"), prompt);
  assert.equal(prompt.split(JSON.stringify(TOOLS[0])).length, 2);
});

test("replacement patterns such as $& in the user text are not expanded", () => {
  assert.ok(buildPrompt("toolcall", "cost $& and $1 and $$", TOOLS).endsWith("Request: cost $& and $1 and $$"));
});

test("tools render as one compact JSON line each", () => {
  assert.equal(renderTools([{ a: 1 }, { b: "é\n" }]), '{"a":1}\n{"b":"é\\n"}');
  assert.equal(renderTools([]), "");
});

test("bad arguments are refused with the reason", () => {
  assert.throws(() => buildPrompt("chat" as never, "x", TOOLS), /unknown track "chat"; expected one of structured, toolcall/);
  assert.throws(() => buildPrompt("structured", 42 as never, TOOLS), /userText must be a string, got number/);
  assert.throws(() => buildPrompt("structured", "x", { name: "f" } as never), /tools must be an array of tool objects, got object/);
  assert.throws(() => renderTools([TOOLS[0], null as never]), /tools\[1\] must be an object, got null/);
  assert.throws(() => buildMessages(undefined as never), /prompt must be a string, got undefined/);
});

test("a missing template file names the file", () => {
  assert.throws(() => loadTemplates("/nonexistent/prompts.json"), /\/nonexistent\/prompts\.json: cannot read the prompt templates/);
});

test("messages are the single user turn evaluation sends", () => {
  assert.deepEqual(buildMessages("p"), [{ role: "user", content: "p" }]);
});

test("the adapter's model id is chosen when the track has an adapter", () => {
  const root = mkdtempSync(join(tmpdir(), "served-id-"));
  const [ftDir, modelsDir, base] = [join(root, "ft"), join(root, "models"), join(root, "models", "tiny")];
  mkdirSync(join(ftDir, "adapter_toolcall"), { recursive: true });
  mkdirSync(base, { recursive: true });
  writeFileSync(join(ftDir, "adapter_toolcall", "adapter_config.json"), "{}");
  const options = { baseModel: base, ftDir, modelsDir };
  assert.equal(servedModelId({ ...options, track: "structured" }), base);
  assert.equal(servedModelId({ ...options, track: "toolcall" }), join(modelsDir, "tiny-toolcall-merged"));
  assert.equal(servedModelId({ ...options, track: "toolcall", server: "vllm" }), "toolcall");
  assert.equal(servedModelId({ ...options, track: "structured", server: "vllm" }), base);
  assert.throws(() => servedModelId({ ...options, track: "structured", server: "tgi" as never }), /unknown server "tgi"/);
});

// Cases computed by slm_swap/serving/launch.py's served_model_id (tests/serving/test_mastra.py writes them).
const idCases = process.env.SLM_TEST_SERVED_IDS;
test("servedModelId agrees with Python's served_model_id", { skip: idCases ? false : "SLM_TEST_SERVED_IDS not set (tests/serving/test_mastra.py sets it)" }, () => {
  for (const item of JSON.parse(readFileSync(idCases as string, "utf8"))) {
    const { expected, ...options } = item;
    assert.equal(servedModelId(options), expected, JSON.stringify(options));
  }
});
