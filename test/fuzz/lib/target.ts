// The server under fuzz: a real process (`bun src/main.ts`, so a crash shows as its exit) on a fresh
// Postgres database and the test Redis (its own key prefix), with send limits out of the way so mutated
// sends reach the core instead of the rate limiter.
import { freshPgUrl, redisUrl } from "../../helpers/services.ts";
import { startNode, userToken, type NodeProc } from "../../helpers/procs.ts";

export const MAX_FRAME_BYTES = 65536;

export async function fuzzTarget(name: string, env: Record<string, string> = {}): Promise<NodeProc> {
  return startNode({
    DATABASE_URL: await freshPgUrl(),
    REDIS_URL: redisUrl(),
    REDIS_PREFIX: `fz${process.pid}${name}:`,
    NODE_ID: `fz-${name}`,
    SEND_RATE: "1000000",
    SEND_BURST: "1000000",
    MAX_FRAME_BYTES: String(MAX_FRAME_BYTES),
    ...env,
  });
}

/** Users `ids` with tokens. */
export async function tokensFor(node: NodeProc, ids: string[], fields: Record<string, unknown> = {}): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const id of ids) out.set(id, await userToken(node, id, { nick: id.toUpperCase(), ...fields }));
  return out;
}

/** Frames per protocol in CI, the bounded wait for each answer and the number of parallel connections. */
export const CI_FRAMES = 3000;
export const WORKERS = Number(process.env.FUZZ_WORKERS ?? 4);
