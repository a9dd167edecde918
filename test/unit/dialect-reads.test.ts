// A dialect reads through the core's services, never the store handle of the node: no dialect picks `store`
// from the App, and no dialect calls `store.` (profiles, a conversation's rows, history are core commands).
import { expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";

const DIALECTS = resolve(import.meta.dir, "../../src/dialects");

test("no dialect reads the store directly", () => {
  const bad: string[] = [];
  for (const entry of readdirSync(DIALECTS, { recursive: true }) as string[]) {
    if (!entry.endsWith(".ts")) continue;
    const lines = readFileSync(join(DIALECTS, entry), "utf8").split("\n");
    lines.forEach((line, i) => {
      const code = line.replace(/\/\/.*$/, "");
      if (/\bstore\s*\.\s*\w+\s*\(/.test(code) || /Pick<App,[^>]*"store"/.test(code) || /\{[^}]*\bstore\b[^}]*\}\s*=\s*app\b/.test(code)) bad.push(`${entry}:${i + 1}: ${line.trim()}`);
    });
  }
  expect(bad).toEqual([]);
});
