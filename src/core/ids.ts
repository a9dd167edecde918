// Time-sortable 63-bit server ids: 41 bits of milliseconds since 2024-01-01, 10 bits of node, 12 bits of
// sequence (4096 ids per millisecond per node; past that the clock is borrowed from the next millisecond).
// The node bits are a slot: in a cluster each node leases a distinct one in Redis (presence/redis.ts);
// a lone node uses the hash of its id.
const EPOCH = 1_704_067_200_000n;

export class IdGen {
  private lastMs = 0n;
  private seq = 0n;
  private readonly node: bigint;

  constructor(nodeId: string, slot = slotOf(nodeId)) {
    this.node = BigInt(slot & 0x3ff);
  }

  next(now = Date.now()): bigint {
    let ms = BigInt(now) - EPOCH;
    if (ms <= this.lastMs) {
      ms = this.lastMs;
      this.seq = (this.seq + 1n) & 0xfffn;
      if (this.seq === 0n) ms = ++this.lastMs;
    } else {
      this.lastMs = ms;
      this.seq = 0n;
    }
    return (ms << 22n) | (this.node << 12n) | this.seq;
  }
}

/** The id slot a node id hashes to (0..1023): a lone node's, and a cluster node's first choice. */
export function slotOf(nodeId: string): number {
  let h = 0;
  for (let i = 0; i < nodeId.length; i++) h = (h * 31 + nodeId.charCodeAt(i)) >>> 0;
  return h & 0x3ff;
}

/** A user id is safe in conversation ids, Redis keys and URLs. */
export const USER_ID_RE = /^[\w.@-]{1,128}$/;
