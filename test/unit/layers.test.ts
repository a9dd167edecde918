// The layers' rule, read from the import lines of every source file: the core imports no adapter (it names
// its ports in src/core/ports.ts and the composition root hands it their implementations), and no dialect
// reaches into the store (it goes through the core).
import { expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";

const SRC = resolve(import.meta.dir, "../../src");

/** Folders and files of src/ the core must not import: adapters, protocols and the composition root. */
const NOT_FROM_CORE = ["store/", "hub/", "bus/", "presence/", "http/", "dialects/", "transport/", "cluster/", "app.ts", "server.ts", "main.ts"];

/** Every module specifier of a file: static imports and re-exports (`import type` too), side-effect and dynamic imports. */
export function specifiers(source: string): string[] {
  const out: string[] = [];
  const patterns = [
    /^\s*(?:import|export)\b[^;]*?\bfrom\s*["']([^"']+)["']/gm,
    /^\s*import\s*["']([^"']+)["']/gm,
    /\bimport\s*\(\s*["']([^"']+)["']\s*\)/g,
  ];
  for (const re of patterns) for (const m of source.matchAll(re)) out.push(m[1]!);
  return out;
}

/** Path under src/ of what `spec` in the file `file` (a path under src/) names; undefined for a package. */
function target(file: string, spec: string): string | undefined {
  if (!spec.startsWith(".")) return undefined;
  return relative(SRC, resolve(SRC, dirname(file), spec)).split("\\").join("/");
}

/** The imports breaking the layers' rule, as "file -> import", for files given as (path under src/, source). */
export function violations(files: [string, string][]): string[] {
  const bad: string[] = [];
  for (const [file, source] of files) {
    for (const spec of specifiers(source)) {
      const to = target(file, spec);
      if (to === undefined) continue;
      const fromCore = file.startsWith("core/") && NOT_FROM_CORE.some((p) => (p.endsWith("/") ? to.startsWith(p) : to === p));
      const dialectToStore = file.startsWith("dialects/") && to.startsWith("store/");
      if (fromCore || dialectToStore) bad.push(`${file} -> ${spec}`);
    }
  }
  return bad;
}

function sources(): [string, string][] {
  return (readdirSync(SRC, { recursive: true }) as string[])
    .filter((f) => f.endsWith(".ts"))
    .map((f) => [f.split("\\").join("/"), readFileSync(join(SRC, f), "utf8")]);
}

test("the core imports no adapter, and no dialect imports the store", () => {
  const files = sources();
  expect(files.filter(([f]) => f.startsWith("core/")).length).toBeGreaterThan(10);
  expect(files.filter(([f]) => f.startsWith("dialects/")).length).toBeGreaterThan(3);
  expect(violations(files)).toEqual([]);
});

test("the check reads every form of import line", () => {
  const bad = violations([
    ["core/a.ts", 'import { x } from "../store/store.ts";'],
    ["core/b.ts", 'import type {\n  Y,\n} from "../hub/hub.ts";'],
    ["core/c.ts", 'export { z } from "../presence/redis.ts";'],
    ["core/d.ts", 'const m = await import("../bus/redis.ts");'],
    ["core/e.ts", 'import "../transport/server.ts";'],
    ["core/f.ts", 'import { ok } from "./ports.ts";\nimport { t } from "drizzle-orm";'],
    ["dialects/jim/index.ts", 'import { inboxOf } from "../../store/inbox.ts";'],
    ["dialects/jim/wire.ts", 'import { Chat } from "../../core/chat.ts";'],
    ["http/api.ts", 'import { Store } from "../store/store.ts";'],
  ]);
  expect(bad).toEqual([
    "core/a.ts -> ../store/store.ts",
    "core/b.ts -> ../hub/hub.ts",
    "core/c.ts -> ../presence/redis.ts",
    "core/d.ts -> ../bus/redis.ts",
    "core/e.ts -> ../transport/server.ts",
    "dialects/jim/index.ts -> ../../store/inbox.ts",
  ]);
});
