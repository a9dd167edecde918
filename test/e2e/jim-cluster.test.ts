// J-IM online panels when a node dies (docs/jim.md, "Online and offline"): real server processes over one Redis
// and one Postgres; a node killed with SIGKILL closes nobody's connection, yet once its presence lease runs out its
// users are offline, and their groups' members on the other nodes are told with command 10. Against a single Redis
// and against the suite's Redis Cluster.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { protocols } from "../helpers/protocol/index.ts";
import { REDIS_MODES, TestCluster } from "../helpers/procs.ts";

const { jim } = protocols;
for (const mode of REDIS_MODES) {
  describe(`over ${mode}`, () => {
    const cluster = new TestCluster({}, mode);
    const { nodes, clients } = cluster;
    const tok: Record<string, string> = {};

    beforeAll(async () => {
      await cluster.start(2, "jk");
      for (const u of ["watch", "victim"]) tok[u] = await jim.register(nodes[0]!, u);
      expect((await nodes[0]!.api("/api/groups", { id: "crash", kind: "interest", owner: "watch", members: ["victim"] })).status).toBe(200);
    }, 60_000);

    afterAll(() => cluster.stop());

    describe("a node killed with SIGKILL", () => {
      test("its users' groups get command 10 once its lease is swept, and cmd 17 no longer lists them", async () => {
        const watch = await jim.login(nodes[0]!, "watch", { token: tok.watch, keep: clients });
        const victim = await jim.login(nodes[1]!, "victim", { token: tok.victim, keep: clients });
        const joined = await watch.next((f) => f.command === 9 && f.data.user.id === "victim");
        expect([joined.data.group, joined.user.userId]).toEqual(["crash", "victim"]);

        nodes[1]!.proc.kill("SIGKILL");
        await victim.closed;
        const left = await watch.next((f) => f.command === 10);
        expect(left).toEqual({ command: 10, data: { group: "crash", user: { id: "victim", nick: "VICTIM", userId: "victim" } }, group: "crash", user: { id: "victim", nick: "VICTIM", userId: "victim" } });
        const list = await watch.request({ cmd: 17, type: "0", userId: "watch" });
        expect(list.data.groups.find((g: any) => g.group_id === "crash").users.map((u: any) => u.id)).toEqual(["watch"]);
      }, 30_000);
    });
  });
}
