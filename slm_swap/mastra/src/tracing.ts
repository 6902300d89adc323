/**
 * Optional Langfuse tracing of SLM calls through @mastra/langfuse.
 *
 * On when LANGFUSE_PUBLIC_KEY, LANGFUSE_SECRET_KEY and LANGFUSE_HOST are set (the same
 * variables the Python side reads), off when none is; a partial set is an error, so a
 * typo never silently turns tracing off. The environment is read only where the caller
 * hands it in (`langfuseSettingsFromEnv(process.env)`).
 */

import type { Agent } from "@mastra/core/agent";
import { ConsoleLogger } from "@mastra/core/logger";
import { Mastra } from "@mastra/core/mastra";
import { LangfuseExporter } from "@mastra/langfuse";
import { Observability } from "@mastra/observability";

export const LANGFUSE_VARS = ["LANGFUSE_PUBLIC_KEY", "LANGFUSE_SECRET_KEY", "LANGFUSE_HOST"] as const;
export const SERVICE_NAME = "slm-swap-mastra";

export interface LangfuseSettings {
  publicKey: string;
  secretKey: string;
  baseUrl: string;
}

export function langfuseSettingsFromEnv(env: Record<string, string | undefined>): LangfuseSettings | null {
  const values = LANGFUSE_VARS.map((name) => (env[name] ?? "").trim());
  const missing = LANGFUSE_VARS.filter((_, index) => values[index] === "");
  if (missing.length === LANGFUSE_VARS.length) return null;
  if (missing.length > 0) {
    throw new Error(`Langfuse tracing is half configured: set ${missing.join(", ")} too, or unset all of ${LANGFUSE_VARS.join(", ")}`);
  }
  const [publicKey, secretKey, baseUrl] = values;
  if (!/^https?:\/\//.test(baseUrl)) throw new Error(`LANGFUSE_HOST must be an http(s) URL, got ${JSON.stringify(baseUrl)}`);
  return { publicKey, secretKey, baseUrl: baseUrl.replace(/\/+$/, "") };
}

/**
 * A Mastra instance holding the SLM agent, tracing to Langfuse when settings are given. It logs
 * warnings and errors only: Mastra's info lines ("Mastra shutdown completed") would otherwise
 * land on stdout beside the raw reply a script prints.
 */
export function createSlmMastra(agent: Agent, langfuse: LangfuseSettings | null): Mastra {
  const observability = langfuse
    ? new Observability({
        configs: {
          langfuse: { serviceName: SERVICE_NAME, exporters: [new LangfuseExporter({ ...langfuse, realtime: true })] },
        },
      })
    : undefined;
  const logger = new ConsoleLogger({ name: "Mastra", level: "warn" });
  return new Mastra({ agents: { [agent.id]: agent }, logger, ...(observability ? { observability } : {}) });
}
